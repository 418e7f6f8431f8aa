"""Where a pinned .deb's bytes come from: the source's mirrors (spec, environment, --mirror, or the machine's apt sources), in order."""

from __future__ import annotations

from collections.abc import Mapping

from imagelock.core.errors import InputError
from imagelock.fetch.apt_sources import machine_mirrors
from imagelock.fetch.mirrors import join, mirrors_for, split_location
from imagelock.formats.debian import DebianPackagePin, DebianSource


def source_mirrors(
    name: str,
    source: DebianSource,
    suite: str,
    mirrors_cli: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """Mirror bases for one suite of a source: CLI > IMAGELOCK_MIRROR_<NAME> > spec > apt sources."""
    return mirrors_for(name, cli=mirrors_cli, spec=source.mirrors, machine=machine_mirrors(suite))


def package_urls(
    pin: DebianPackagePin,
    sources: Mapping[str, DebianSource],
    mirrors_cli: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """Every URL a pinned .deb may be fetched from, in order (for `imagelock fetch`)."""
    name, rel = split_location(pin.location)
    source = sources.get(name)
    if not isinstance(source, DebianSource):
        raise InputError(f"{pin.name}: location names source {name!r}, which is not a debian "
                         "source of the spec", hint="re-lock: the spec and the lock disagree")
    return [join(base, rel) for base in source_mirrors(name, source, pin.suite, mirrors_cli)]
