"""Snapshot archives as a last mirror: a Debian file that no suite lists any more is gone from
the ordinary mirrors, but a snapshot archive still serves the archive as it was at any moment.

A snapshot mirror is configuration, never a host in a lock: `--snapshot NAME=URL` (repeatable),
`IMAGELOCK_SNAPSHOT_<NAME>` (whitespace-separated URLs), or the `snapshots` of the source in
the spec, first non-empty wins. Its URL is the archive's base up to the timestamp, e.g.
`BASE/archive/debian` (or `BASE/archive/debian-security` for the security archive). The lock
records the `Date` of each signed index a pin came from; that moment selects the snapshot:
`URL/YYYYMMDDTHHMMSSZ/pool/...` and `URL/YYYYMMDDTHHMMSSZ/dists/SUITE/InRelease`.

Every byte fetched from a snapshot is checked against its pin like any other.
"""

from __future__ import annotations

import email.utils
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC

from imagelock.core.errors import InputError
from imagelock.fetch.mirrors import join


def env_name(source: str) -> str:
    return "IMAGELOCK_SNAPSHOT_" + re.sub(r"[^A-Za-z0-9]", "_", source).upper()


def parse_cli_snapshots(values: Sequence[str]) -> dict[str, list[str]]:
    """`NAME=URL` pairs of `--snapshot`, in order, grouped by source name."""
    out: dict[str, list[str]] = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not name or not url:
            raise InputError(f"--snapshot {v!r} is not NAME=URL",
                             hint="for example --snapshot bookworm=http://HOST/archive/debian")
        out.setdefault(name, []).append(url)
    return out


def snapshots_for(
    source: str, *, cli: Mapping[str, list[str]] | None = None, spec: Sequence[str] = ()
) -> list[str]:
    """The ordered snapshot bases for a source: CLI > IMAGELOCK_SNAPSHOT_<NAME> > spec."""
    if cli and cli.get(source):
        return list(cli[source])
    env = os.environ.get(env_name(source), "").split()
    if env:
        return env
    return list(spec)


def timestamp(date: str) -> str:
    """A Release `Date` (RFC 2822, e.g. `Sat, 11 Jul 2026 10:16:37 UTC`) as a snapshot timestamp
    (`20260711T101637Z`)."""
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise InputError(f"the index date {date!r} is not an RFC 2822 date",
                         field="debian.indexes.date",
                         hint="the lock records the Release file's Date verbatim") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def snapshot_url(base: str, date: str, rel: str) -> str:
    """Where a snapshot archive keeps `rel` (`pool/...`, `dists/...`) as it was at `date`."""
    return join(join(base, timestamp(date)), rel)
