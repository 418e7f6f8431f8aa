"""A lock is never trusted to name arbitrary Debian packages: every pin is checked against the
signed index the lock says it came from.

For each index the lock records: its InRelease (the exact bytes, by the lock's sha256) must carry
a good signature by a key of the keyring the rebuilder trusts, its Release must be the suite's,
dated as the lock says, and must list the lock's Packages file; that file (fetched by the sha256
the signed Release lists) must decompress to the lock's `packages_sha256`. Then every package pin
must be a stanza of that index with the same name, version, architecture, file name, size and
sha256. Anything else is a refusal (exit 1) naming the index or the pin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imagelock.core.errors import VerificationFailed
from imagelock.fetch.mirrors import split_location
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianIndexPin, DebianPlatformLock
from imagelock.lock.debian.index import Record, cached_records, decompress, parse_checked
from imagelock.lock.debian.release import IndexFile, Signature, parse_release, verify_signed


class IndexFiles(Protocol):
    """Where the exact index files come from (the caller's fetch order), each hash-checked."""

    def inrelease(self, pin: DebianIndexPin) -> bytes:
        """The InRelease whose sha256 is `pin.inrelease_sha256`."""

    def packages(self, pin: DebianIndexPin, entry: IndexFile) -> bytes:
        """The Packages file `pin.packages_path`, as the signed Release lists it (`entry`)."""


@dataclass(frozen=True)
class IndexChecked:
    """One signed index, verified: which keys signed it, when, and how many pins it vouched for."""

    source: str
    suite: str
    component: str
    architecture: str
    date: str
    keyring: str
    signatures: tuple[Signature, ...]
    pins: int

    def as_json(self) -> dict[str, object]:
        return {"source": self.source, "suite": self.suite, "component": self.component,
                "architecture": self.architecture, "date": self.date, "keyring": self.keyring,
                "pins": self.pins,
                "signatures": [{"fingerprint": s.fingerprint, "primary": s.primary,
                                "created": s.created, "key_expired": s.expired}
                               for s in self.signatures]}


def _name(pin: DebianIndexPin) -> str:
    return f"{pin.source}/{pin.suite} {pin.component}/binary-{pin.architecture}"


def signed_entry(pin: DebianIndexPin, data: bytes, keyring: Path
                 ) -> tuple[IndexFile, tuple[Signature, ...]]:
    """Check an index's InRelease (`data`, the lock's exact bytes) against the keyring and the
    lock's record of it; returns the signed Release's entry for the lock's Packages file."""
    what = f"the InRelease of {pin.suite} (index {_name(pin)}, sha256 {pin.inrelease_sha256})"
    if hashlib.sha256(data).hexdigest() != pin.inrelease_sha256:
        raise VerificationFailed(f"{what} does not hash to the lock's sha256",
                                 hint="internal: the fetch should have refused these bytes")
    signed = verify_signed(data, keyring, what=what, valid_when_signed=True)
    rel = parse_release(signed.content, pin.suite)
    if rel.date != pin.date:
        raise VerificationFailed(
            f"the lock dates index {_name(pin)} {pin.date!r}, but its signed Release says "
            f"{rel.date!r}", field="debian.indexes.date",
            hint="the lock was edited: a snapshot chosen by its date would be the wrong one")
    plain_path = f"{pin.component}/binary-{pin.architecture}/Packages"
    plain = rel.files.get(plain_path)
    if plain is not None and plain.sha256 != pin.packages_sha256:
        raise VerificationFailed(
            f"the Packages file the lock records for index {_name(pin)} (sha256 "
            f"{pin.packages_sha256}) does not match its InRelease, which lists {plain.sha256}",
            field="debian.indexes.packages_sha256",
            hint="the lock names an index the archive never signed: do not trust its pins")
    entry = rel.files.get(pin.packages_path)
    if entry is None:
        raise VerificationFailed(
            f"the signed Release of {pin.suite} lists no {pin.packages_path} (index {_name(pin)})",
            field="debian.indexes.packages_path",
            hint="the lock names an index the archive never signed: do not trust its pins")
    return entry, signed.signatures


def _records(store: Store, pin: DebianIndexPin, files: IndexFiles, keyring: Path
             ) -> tuple[list[Record], tuple[Signature, ...]]:
    entry, signatures = signed_entry(pin, files.inrelease(pin), keyring)
    records = cached_records(store, pin.packages_sha256)
    if records is None:
        raw = decompress(pin.packages_path, files.packages(pin, entry))
        got = hashlib.sha256(raw).hexdigest()
        if got != pin.packages_sha256:
            raise VerificationFailed(
                f"the Packages file of index {_name(pin)} decompresses to sha256 {got}, not the "
                f"lock's {pin.packages_sha256}", field="debian.indexes.packages_sha256",
                hint="the lock names an index the archive never signed: do not trust its pins")
        records = parse_checked(store, raw, got)
    return records, signatures


def check_debian_pins(
    platform: str,
    plock: DebianPlatformLock,
    *,
    store: Store,
    files: IndexFiles,
    keyring: Callable[[str], Path],
) -> list[IndexChecked]:
    """Verify every index and every package pin of one platform (see the module docstring)."""
    listed: dict[tuple[str, str], dict[tuple[str, str, str], list[Record]]] = {}
    checked: list[tuple[DebianIndexPin, Path, tuple[Signature, ...]]] = []
    for pin in plock.indexes:
        ring = keyring(pin.source)
        records, sigs = _records(store, pin, files, ring)
        into = listed.setdefault((pin.source, pin.suite), {})
        for r in records:
            into.setdefault((r.get("Package", ""), r.get("Version", ""),
                              r.get("Architecture", "")), []).append(r)
        checked.append((pin, ring, sigs))
    counts: dict[tuple[str, str], int] = {}
    # The Essential set the maintainer scripts ran with is checked like the image's own pins: a
    # build that runs a script again installs it.
    pinned = {p.sha256: (p, "debian.packages") for p in plock.packages}
    for t in plock.script_tools:
        pinned.setdefault(t.sha256, (t, "debian.script_tools"))
    for p, field in pinned.values():
        what = f"package {p.name} {p.version} ({p.architecture}, sha256 {p.sha256}) of {platform}"
        table = listed.get((p.source, p.suite))
        if table is None:
            raise VerificationFailed(
                f"{what} comes from {p.source}/{p.suite}, an index the lock does not record",
                field=field, hint="the lock was edited: do not trust its pins")
        _, rel = split_location(p.location)
        stanzas = table.get((p.name, p.version, p.architecture), [])
        if not any(r.get("SHA256", "").lower() == p.sha256 and r.get("Size") == str(p.size)
                   and r.get("Filename") == rel for r in stanzas):
            said = ("is not listed in" if not stanzas else
                    "is listed with other bytes (" + ", ".join(
                        f"sha256 {r.get('SHA256')}, {r.get('Filename')}" for r in stanzas[:2])
                    + ") in")
            raise VerificationFailed(
                f"{what} {said} the signed index of {p.source}/{p.suite}",
                field=field,
                hint="the lock pins a .deb the archive never signed: do not trust this lock")
        counts[(p.source, p.suite)] = counts.get((p.source, p.suite), 0) + 1
    out = []
    seen: set[tuple[str, str]] = set()
    for pin, ring, sigs in checked:
        key = (pin.source, pin.suite)
        n = counts.get(key, 0) if key not in seen else 0
        seen.add(key)
        out.append(IndexChecked(pin.source, pin.suite, pin.component, pin.architecture, pin.date,
                                str(ring), sigs, n))
    return out
