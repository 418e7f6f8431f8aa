"""Where a named source's bytes come from: mirrors are configuration, never hard-coded hosts.

Order of precedence, first non-empty wins: `--mirror NAME=URL` on the command line (repeatable),
`IMAGELOCK_MIRROR_<NAME>` (whitespace-separated URLs), the spec's `mirrors` for that source, the
machine's own configuration (apt sources for Debian, pip's for Python indexes). Several mirrors are
tried in order. A location in the lock is `NAME:relative/path`, joined to each mirror in turn.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from imagelock.core.errors import InputError


def env_name(source: str) -> str:
    return "IMAGELOCK_MIRROR_" + re.sub(r"[^A-Za-z0-9]", "_", source).upper()


def parse_cli_mirrors(values: Sequence[str]) -> dict[str, list[str]]:
    """`NAME=URL` pairs from the command line, in order, grouped by source name."""
    out: dict[str, list[str]] = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not name or not url:
            raise InputError(
                f"--mirror {v!r} is not NAME=URL", hint="for example --mirror debian=http://HOST/debian"
            )
        out.setdefault(name, []).append(url)
    return out


def mirrors_for(
    source: str,
    *,
    cli: Mapping[str, list[str]] | None = None,
    spec: Sequence[str] = (),
    machine: Sequence[str] = (),
) -> list[str]:
    """The ordered mirror base URLs for a source."""
    if cli and cli.get(source):
        return list(cli[source])
    env = os.environ.get(env_name(source), "").split()
    if env:
        return env
    if spec:
        return list(spec)
    return list(machine)


def join(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel.lstrip("/")


def split_location(location: str) -> tuple[str, str]:
    """`NAME:path` -> (NAME, path)."""
    name, sep, rel = location.partition(":")
    if not sep or not name or not rel or "://" in location:
        raise InputError(f"location {location!r} is not SOURCE:relative/path")
    return name, rel
