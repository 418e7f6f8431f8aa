"""The images a fleet looks at: every tag of a registry repository, or the references listed in
a file, each resolved to image manifests by digest (an index to one manifest per platform).

A repository is read through the tags list API, at most `MAX_TAGS` tags (client.py). Tags of
the referrers fallback (`sha256-<hex>`, which a registry without the referrers API keeps for
attestations) are not images and are left out. Two tags of one digest are one image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.core.errors import ImagelockError, InputError
from imagelock.formats.oci import ConfigDoc, Index, Manifest
from imagelock.oci.blobio import INDEX_TYPES, MANIFEST_TYPES, parse_model
from imagelock.oci.platform import parse_platform, platform_string
from imagelock.oci.reference import Reference, parse_reference
from imagelock.oci.registry.client import MAX_TAGS, RegistryClient, client_for, get_checked

MAX_LIST_FILE = 4 << 20
"""Largest file of references read (4 MiB: tens of thousands of references)."""
_FALLBACK_TAG = re.compile(r"^sha256-[0-9a-f]{64}(\..*)?$")


@dataclass
class Image:
    """One image manifest to look at, by digest, and the tags that lead to it."""

    ref: Reference  # pinned to the manifest's digest
    platform: str | None
    tags: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return str(self.ref.digest)


def expand(sources: Sequence[str], *, platform: str | None, insecure: bool,
           notes: list[str]) -> list[Image]:
    """Every image manifest of `sources`, in their order, once each. A tag that cannot be read
    (deleted meanwhile, not an image) is a note, not a failure of the whole list."""
    if platform is not None:
        parse_platform(platform)
    seen: dict[str, Image] = {}
    for source in sources:
        for ref in _references(source, insecure=insecure, notes=notes):
            with client_for(ref, insecure=insecure) as client:
                try:
                    found = _manifests(client, ref, platform)
                except ImagelockError as e:
                    if ref.digest is None and ref.tag is not None and _is_listed(source):
                        notes.append(f"skipped {ref}: {e.message}")
                        continue
                    raise
            for image in found:
                key = f"{image.ref.name}@{image.subject}"
                if key in seen:
                    seen[key].tags += [t for t in image.tags if t not in seen[key].tags]
                else:
                    seen[key] = image
    return list(seen.values())


def _is_listed(source: str) -> bool:
    """Whether the source's tags were listed (a repository, or a file that may name one), so
    that a tag that went bad meanwhile is a note."""
    if Path(source).is_file():
        return True
    r = parse_reference(source)
    return r.tag is None and r.digest is None


def _references(source: str, *, insecure: bool, notes: list[str]) -> list[Reference]:
    path = Path(source)
    if path.is_file():
        out = []
        for r in _read_list(path):
            out += [r] if r.tag is not None or r.digest is not None else _tags(
                r, insecure=insecure, notes=notes)
        return out
    try:
        r = parse_reference(source)
    except InputError as e:
        raise InputError(f"{source!r} is neither a file of references nor a registry "
                         f"reference: {e.message}",
                         hint="give HOST/REPO (all its tags), HOST/REPO:TAG, "
                         "HOST/REPO@sha256:..., or a file with one reference a line") from None
    if r.tag is not None or r.digest is not None:
        return [r]
    return _tags(r, insecure=insecure, notes=notes)


def _tags(r: Reference, *, insecure: bool, notes: list[str]) -> list[Reference]:
    with client_for(r, insecure=insecure) as client:
        tags, more = client.tags(r.repository)
    if more:
        notes.append(f"{r.name} has more than {MAX_TAGS} tags; only the first {MAX_TAGS} were "
                     "read: split it, or list references in a file")
    return [Reference(r.host, r.repository, tag=t) for t in sorted(tags)
            if not _FALLBACK_TAG.match(t)]


def _read_list(path: Path) -> list[Reference]:
    if path.stat().st_size > MAX_LIST_FILE:
        raise InputError(f"{path} is larger than {MAX_LIST_FILE} bytes", path=path,
                         hint="split the list into several files")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(parse_reference(text))
        except InputError as e:
            raise InputError(f"line {n} is not an image reference: {e.message}", path=path,
                             field=f"line {n}", hint="one HOST/REPO:TAG or HOST/REPO@sha256:... "
                             "a line; # starts a comment") from None
    return out


def _manifests(client: RegistryClient, ref: Reference, platform: str | None) -> list[Image]:
    found = get_checked(client, ref)
    tags = [ref.tag] if ref.tag and ref.digest is None else []
    if found.media_type in INDEX_TYPES:
        index = parse_model(Index, found.data, f"image index {found.digest}", ref.name)
        out = []
        for d in index.manifests:
            if d.media_type not in MANIFEST_TYPES or d.platform is None:
                continue
            name = platform_string(d.platform.os, d.platform.architecture, d.platform.variant)
            if name == "unknown/unknown" or (platform is not None and name != platform):
                continue  # attestation manifests some builders put in an index
            out.append(Image(ref.at(d.digest), name, list(tags)))
        return out
    m = parse_model(Manifest, found.data, f"manifest {found.digest}", ref.name)
    p: str | None = None
    if m.config.size <= 1 << 20:
        data = client.read_blob(ref.repository, m.config.digest, m.config.size,
                                f"config {m.config.digest}")
        try:
            cfg = parse_model(ConfigDoc, data, f"config {m.config.digest}", ref.name)
            p = platform_string(cfg.os, cfg.architecture, None)
        except InputError:
            p = None  # an artifact or a config imagelock does not read: no platform to say
    if platform is not None and p != platform:
        return []
    return [Image(ref.at(found.digest), p, tags)]
