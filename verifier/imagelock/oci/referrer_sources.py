"""Where an image's referrers are read from: a registry, or the `DIR.referrers/` layout that
`imagelock pull --with-inputs -o DIR` writes beside a pulled image.

Both look alike to their users: list the artifacts attached to the image, read an artifact's
manifest (checked against its digest and refused unless its `subject` is the image), read a small
blob into memory or stream a large one into the store, each checked against its digest. Nothing
a referrers list says is trusted: it only says where to look.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from imagelock.core.atomic import atomic_dir
from imagelock.core.digest import canonical_json
from imagelock.core.errors import FetchError, InputError, IntegrityError
from imagelock.fetch.store import Store
from imagelock.formats.oci import MT_INDEX, MT_MANIFEST, Descriptor, Index, Manifest
from imagelock.formats.recipe import REFERRERS_DIR_SUFFIX
from imagelock.oci.blobio import check_document_size, digest_hex, hash_digest, parse_json, parse_model
from imagelock.oci.layout import OCI_LAYOUT
from imagelock.oci.layout_read import DirSource, document, read_index
from imagelock.oci.reference import Reference
from imagelock.oci.registry.client import RegistryClient, client_for, get_checked
from imagelock.oci.registry.referrers import EMPTY, Referrer, fallback_tag


@dataclass(frozen=True)
class ArtifactManifest:
    """An artifact attached to the image: its manifest, checked, and the blobs it lists."""

    digest: str
    artifact_type: str | None
    layers: list[Descriptor]
    annotations: dict[str, str]
    data: bytes


class Referrers(Protocol):
    """An image's referrers and their blobs, wherever they are kept."""

    where: str
    subject: str  # the image's manifest digest

    def list(self, artifact_type: str | None = None) -> list[Referrer]: ...

    def artifact(self, referrer: Referrer) -> ArtifactManifest: ...

    def read_blob(self, desc: Descriptor, what: str) -> bytes: ...

    def blob_to_store(self, digest: str, size: int, store: Store, what: str) -> None: ...

    def has_blob(self, digest: str) -> bool: ...

    def close(self) -> None: ...


def _filter(index: Index, artifact_type: str | None) -> list[Referrer]:
    out = []
    for d in index.manifests:
        extra = d.model_extra or {}
        kind = extra.get("artifactType")
        kind = kind if isinstance(kind, str) else None
        if artifact_type is None or kind == artifact_type:
            out.append(Referrer(d.digest, d.size, d.media_type, kind, dict(d.annotations or {})))
    return out


def check_artifact(data: bytes, digest: str, subject: str, where: str) -> ArtifactManifest:
    """An artifact manifest's bytes, checked: its digest, its shape, and that it is attached to
    `subject` (a referrers list naming another image's artifact is refused)."""
    what = f"artifact {digest}"
    if hash_digest(data) != digest:
        raise IntegrityError(f"{what} in {where} has digest {hash_digest(data)}",
                             hint="the artifact was altered: do not use it")
    m = parse_model(Manifest, data, what, where)
    doc = parse_json(data, what, where)
    named = doc.get("subject", {}).get("digest") if isinstance(doc.get("subject"), dict) else None
    if named != subject:
        raise InputError(f"{what} in {where} is attached to {named}, not to {subject}",
                         hint="the referrers list names an artifact of another image: ignore it")
    kind = doc.get("artifactType")
    return ArtifactManifest(digest, kind if isinstance(kind, str) else None, list(m.layers),
                            dict(m.annotations or {}), data)


class RegistryReferrers:
    """Referrers of an image in a registry, through one client for the whole session."""

    def __init__(self, ref: Reference, *, insecure: bool = False) -> None:
        self.ref = ref
        self.client: RegistryClient = client_for(ref, insecure=insecure)
        self.subject = ref.digest or get_checked(self.client, ref).digest
        self.where = ref.name

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def list(self, artifact_type: str | None = None) -> list[Referrer]:
        data = self.client.get_referrers(self.ref.repository, self.subject, artifact_type)
        if data is None:
            found = self.client.find_manifest(self.ref.repository, fallback_tag(self.subject),
                                              missing_ok=True)
            if found is None:
                return []
            data = found[0]
        index = parse_model(Index, data, f"the referrers of {self.subject}", self.where)
        return _filter(index, artifact_type)

    def artifact(self, referrer: Referrer) -> ArtifactManifest:
        found = get_checked(self.client, self.ref.at(referrer.digest), size=referrer.size)
        return check_artifact(found.data, referrer.digest, self.subject, self.where)

    def read_blob(self, desc: Descriptor, what: str) -> bytes:
        return self.client.read_blob(self.ref.repository, desc.digest, desc.size, what)

    def blob_to_store(self, digest: str, size: int, store: Store, what: str) -> None:
        self.client.download_blob(self.ref.repository, digest, size, store, what)

    def has_blob(self, digest: str) -> bool:
        return self.client.blob_exists(self.ref.repository, digest)


class LayoutReferrers:
    """Referrers kept beside a pulled image in `DIR.referrers/` (an OCI layout: index.json lists
    the artifact manifests as the referrers API would; blobs/sha256/ holds them and their blobs)."""

    def __init__(self, root: Path, subject: str) -> None:
        self.root = root
        self.source = DirSource(root)
        self.subject = subject
        self.where = f"referrers kept in {root}"

    def close(self) -> None:
        pass

    def list(self, artifact_type: str | None = None) -> list[Referrer]:
        return _filter(read_index(self.source), artifact_type)

    def artifact(self, referrer: Referrer) -> ArtifactManifest:
        desc = Descriptor.model_validate({"mediaType": referrer.media_type,
                                          "digest": referrer.digest, "size": referrer.size})
        data = document(self.source, desc, f"artifact {referrer.digest}")
        return check_artifact(data, referrer.digest, self.subject, self.where)

    def _path(self, digest: str, what: str) -> Path | None:
        return self.source.path(f"blobs/sha256/{digest_hex(digest, what)}")

    def read_blob(self, desc: Descriptor, what: str) -> bytes:
        check_document_size(desc.size, what, self.where)
        return document(self.source, desc, what)

    def blob_to_store(self, digest: str, size: int, store: Store, what: str) -> None:
        path = self._path(digest, what)
        if path is None:
            raise FetchError(f"{what} is not in {self.where}",
                             hint="pull again with --with-inputs")
        store.add_file(path, sha256=digest_hex(digest, what), what=f"{what} from {self.where}")

    def has_blob(self, digest: str) -> bool:
        return self._path(digest, digest) is not None


def referrers_dir(image_dir: Path) -> Path:
    """Where `pull --with-inputs` keeps the referrers of the image pulled into `image_dir`."""
    return image_dir.with_name(image_dir.name + REFERRERS_DIR_SUFFIX)


def copy_referrers(source: Referrers, kinds: set[str], dest: Path) -> list[ArtifactManifest]:
    """Copy the artifacts of `kinds` attached to the image, with every blob, into an OCI layout at
    `dest` (written atomically); returns what was copied."""
    copied: list[ArtifactManifest] = []
    entries: list[dict[str, object]] = []
    with atomic_dir(dest, replaceable="oci-layout") as tmp:
        blobs = Store(tmp / "blobs")
        for r in source.list():
            if r.artifact_type not in kinds:
                continue
            art = source.artifact(r)
            blobs.add_chunks([art.data], sha256=digest_hex(art.digest, "artifact"))
            blobs.add_chunks([EMPTY], sha256=digest_hex(hash_digest(EMPTY), "config"))
            for d in art.layers:
                source.blob_to_store(d.digest, d.size, blobs, f"blob {d.digest} of {r.digest}")
            entry: dict[str, object] = {"mediaType": MT_MANIFEST, "digest": art.digest,
                                        "size": len(art.data), "artifactType": r.artifact_type}
            if r.annotations:
                entry["annotations"] = dict(r.annotations)
            entries.append(entry)
            copied.append(art)
        shutil.rmtree(tmp / "blobs" / "tmp", ignore_errors=True)
        (tmp / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (tmp / "oci-layout").write_bytes(OCI_LAYOUT)
        (tmp / "index.json").write_bytes(
            canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}))
        for p in (tmp / "oci-layout", tmp / "index.json"):
            os.chmod(p, 0o644)
    return copied
