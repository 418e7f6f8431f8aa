"""One neutral description of an image for both SBOM formats: the image, its layers, its
components with what their bytes say of them, and who depends on whom.

Everything comes from the lock (the components of `items`, the expected digests) and the pinned
bytes (`metadata`), never from the built image, so the same lock gives the same description on
any machine. Dependencies are the ones the lock's resolution followed, found again from the
pinned packages' own fields: a .deb's Pre-Depends and Depends, each or-group satisfied by the
first locked package named (or providing the name); a wheel's Requires-Dist whose marker holds
for the image's Python and platform.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from packageurl import PackageURL
from packaging.markers import InvalidMarker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.files import lock_bytes
from imagelock.formats.lock import Lock
from imagelock.sbom.items import Item, items, platform_of
from imagelock.sbom.metadata import Metadata, read_metadata

_MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm64/v8": "aarch64",
             "linux/386": "i686", "linux/ppc64le": "ppc64le", "linux/s390x": "s390x",
             "linux/arm/v7": "armv7l", "linux/riscv64": "riscv64"}


@dataclass(frozen=True)
class Layer:
    """One layer of the image, as the lock expects it."""

    name: str
    digest: str  # of the compressed blob
    diff_id: str
    size: int
    purl: str


@dataclass
class Entry:
    """A component with what its bytes state, and the components it depends on (by ref)."""

    item: Item
    meta: Metadata
    depends_on: list[str] = field(default_factory=list)


@dataclass
class Bom:
    """The image and everything in it."""

    name: str
    tag: str
    platform: str
    manifest_digest: str
    config_digest: str
    purl: str
    created: datetime
    lock_sha256: str
    layers: list[Layer]
    entries: list[Entry]


def _oci_purl(name: str, digest: str, platform: str, tag: str | None = None) -> str:
    qualifiers = {"arch": platform.split("/")[1] if "/" in platform else platform,
                  "repository_url": name}
    if tag:
        qualifiers["tag"] = tag
    return PackageURL(type="oci", name=name.rsplit("/", 1)[-1].lower(), version=digest,
                      qualifiers=qualifiers).to_string()


def _debian_depends(entries: Sequence[Entry]) -> None:
    by_name = {e.item.name: e.item.ref for e in entries}
    providers: dict[str, str] = {}
    for e in entries:
        for virtual in e.meta.provides:
            providers.setdefault(virtual, e.item.ref)
    for e in entries:
        deps: list[str] = []
        for group in e.meta.relations:
            ref = next((by_name.get(n) or providers.get(n) for n in group
                        if n in by_name or n in providers), None)
            if ref is not None and ref != e.item.ref and ref not in deps:
                deps.append(ref)
        e.depends_on = deps


def _wheel_depends(entries: Sequence[Entry], python_version: str, platform: str) -> None:
    by_name = {canonicalize_name(e.item.name): e.item.ref for e in entries}
    env = {"python_version": python_version, "python_full_version": f"{python_version}.0",
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "platform_machine": _MACHINES.get(platform, ""), "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    for e in entries:
        deps: list[str] = []
        for line in e.meta.requires:
            try:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidRequirement, InvalidMarker, UndefinedEnvironmentName):
                continue  # not understood: no edge rather than a wrong one
            ref = by_name.get(canonicalize_name(req.name))
            if ref is not None and ref != e.item.ref and ref not in deps:
                deps.append(ref)
        e.depends_on = sorted(deps)


def make_bom(lock: Lock, store: Store, platform: str | None = None) -> Bom:
    """The description of `platform`'s image (default the lock's first) from the lock and the
    pinned bytes in `store` (each hash checked as it is read)."""
    plat = platform_of(lock, platform)
    listed = items(lock, plat)
    meta = read_metadata(listed, store)
    entries = [Entry(i, meta.get(i.ref, Metadata())) for i in listed]
    _debian_depends([e for e in entries if e.item.kind == "debian"])
    if lock.python_install is not None:
        _wheel_depends([e for e in entries if e.item.kind == "python"],
                       lock.python_install.python_version, plat)
    exp = lock.expected.get(plat)
    if exp is None:
        raise InputError(f"the lock records no expected digests for {plat}",
                         hint="re-lock with `imagelock lock`: a lock written by it records them")
    layers = [Layer(layer.name, layer.digest, layer.diff_id, layer.size,
                    _oci_purl(lock.image.name, layer.digest, plat)) for layer in exp.layers]
    return Bom(
        name=lock.image.name, tag=lock.image.tag, platform=plat,
        manifest_digest=exp.manifest_digest, config_digest=exp.config_digest,
        purl=_oci_purl(lock.image.name, exp.manifest_digest, plat, lock.image.tag),
        created=datetime.fromtimestamp(lock.source_date_epoch, UTC),
        lock_sha256=hashlib.sha256(lock_bytes(lock)).hexdigest(),
        layers=layers, entries=entries)
