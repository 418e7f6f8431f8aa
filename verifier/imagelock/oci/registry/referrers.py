"""Attestations that travel with an image in a registry: OCI 1.1 referrers.

An attestation is attached as an artifact manifest (an OCI image manifest with `artifactType`,
the empty config, one layer holding the attestation, and `subject` naming the image's manifest).
It is found again through the referrers API (`GET /v2/REPO/referrers/DIGEST`), or, on a
registry without it (distribution 2.8 answers 404), through the spec's fallback: an image index
tagged `sha256-<hex of the subject>` that the pusher keeps up to date, re-reading and merging
when another pusher updates it at the same time (`_add_to_fallback_index`).

The index only helps to find referrers; it is not trusted. `fetch_referrer` gets each artifact
by its digest and refuses one whose `subject` is not the image asked about.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from imagelock.core.digest import canonical_json
from imagelock.core.errors import FetchError, InputError
from imagelock.formats.oci import MT_EMPTY, MT_INDEX, MT_MANIFEST, Index, Manifest
from imagelock.oci.blobio import digest_hex, hash_digest, parse_json, parse_model
from imagelock.oci.reference import Reference
from imagelock.oci.registry.auth import Credentials
from imagelock.oci.registry.client import (
    ManifestRef,
    RegistryClient,
    as_reference,
    client_for,
    get_checked,
)

EMPTY = b"{}"
MERGE_ROUNDS = 20  # reads (and writes) of the fallback index per push, at most
SETTLE = (0.2, 0.5)  # seconds (plus twice our own read-to-write time) an entry must stay


@dataclass(frozen=True)
class Artifact:
    """One attached thing (an attestation): a single blob of `media_type`, typed `artifact_type`."""

    artifact_type: str  # e.g. application/vnd.in-toto+json
    media_type: str  # of the blob, e.g. application/vnd.dsse.envelope.v1+json
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Referrer:
    """An entry of the referrers list: an artifact manifest that names the image as subject."""

    digest: str
    size: int
    media_type: str
    artifact_type: str | None
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class ArtifactBlob:
    """One blob of a many-blob artifact (a recipe, an input bundle), streamed when uploaded."""

    media_type: str
    digest: str
    size: int
    opener: Callable[[], BinaryIO]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pushed:
    """What attaching an artifact did: its manifest digest, and which blobs had to be sent."""

    digest: str
    uploaded: int
    present: int
    bytes_uploaded: int


def artifact_manifest(subject: ManifestRef, artifact: Artifact) -> bytes:
    """The artifact manifest's exact bytes (canonical JSON: the same attestation attached to the
    same image always has the same digest)."""
    data = artifact.data
    blob = ArtifactBlob(artifact.media_type, hash_digest(data), len(data), lambda: io.BytesIO(data))
    return artifact_manifest_of(subject, artifact.artifact_type, [blob], artifact.annotations)


def artifact_manifest_of(
    subject: ManifestRef,
    artifact_type: str,
    blobs: Sequence[ArtifactBlob],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI 1.1 artifact manifest (empty config, `blobs` as layers, `subject` the image) as
    canonical JSON, so the same content attached to the same image has the same digest."""
    layers = []
    for b in blobs:
        entry: dict[str, object] = {"mediaType": b.media_type, "digest": b.digest, "size": b.size}
        if b.annotations:
            entry["annotations"] = dict(b.annotations)
        layers.append(entry)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": MT_EMPTY, "digest": hash_digest(EMPTY), "size": len(EMPTY)},
        "layers": layers,
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.size},
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


def fallback_tag(digest: str) -> str:
    """The tag of the referrers index on registries without the referrers API."""
    return "sha256-" + digest_hex(digest, "the subject")


def push_referrer(
    ref: str | Reference,
    artifact: Artifact,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> str:
    """Attach `artifact` to the image `ref` names; returns the artifact manifest's digest."""
    data = artifact.data
    blob = ArtifactBlob(artifact.media_type, hash_digest(data), len(data), lambda: io.BytesIO(data))
    return push_artifact(ref, artifact.artifact_type, [blob], annotations=artifact.annotations,
                         insecure=insecure, credentials=credentials).digest


def push_artifact(
    ref: str | Reference,
    artifact_type: str,
    blobs: Sequence[ArtifactBlob],
    *,
    annotations: Mapping[str, str] | None = None,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> Pushed:
    """Attach an artifact of many blobs to the image `ref` names. A blob the repository already
    holds (asked with HEAD) is not sent again, so inputs shared by several images of a
    repository are stored once."""
    r = as_reference(ref)
    uploaded = present = sent = 0
    with client_for(r, insecure=insecure, credentials=credentials) as client:
        subject = get_checked(client, r)
        client.upload_blob(r.repository, hash_digest(EMPTY), len(EMPTY), lambda: io.BytesIO(EMPTY))
        seen: set[str] = set()
        for b in blobs:
            if b.digest in seen:
                continue
            seen.add(b.digest)
            if client.upload_blob(r.repository, b.digest, b.size, b.opener):
                uploaded += 1
                sent += b.size
            else:
                present += 1
        manifest = artifact_manifest_of(subject, artifact_type, blobs, annotations)
        digest = hash_digest(manifest)
        headers = client.put_manifest(r.repository, digest, manifest, MT_MANIFEST)
        if headers.get("OCI-Subject") != subject.digest:
            # The registry does not index referrers itself: keep the fallback index.
            entry = {"mediaType": MT_MANIFEST, "digest": digest, "size": len(manifest),
                     "artifactType": artifact_type}
            if annotations:
                entry["annotations"] = dict(annotations)
            _add_to_fallback_index(client, r, subject.digest, entry)
    return Pushed(digest, uploaded, present, sent)


def _read_fallback_index(client: RegistryClient, ref: Reference, tag: str) -> list[object]:
    found = client.find_manifest(ref.repository, tag, missing_ok=True)
    if found is None:
        return []
    doc = parse_json(found[0], f"the referrers index {tag}", ref.name)
    listed = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(listed, list):
        raise InputError(f"the tag {tag} in {ref.name} is not a referrers index",
                         hint="something else uses the fallback tag: delete it, then push again")
    return listed


def _digest_of(m: object) -> str | None:
    d = m.get("digest") if isinstance(m, dict) else None
    return d if isinstance(d, str) else None


def _add_to_fallback_index(
    client: RegistryClient, ref: Reference, subject: str, entry: dict[str, object]
) -> None:
    """Add `entry` to the fallback index, safely when other pushers update it at the same time.

    A registry without the referrers API offers no compare-and-swap on a tag: two pushers that
    each read the index, add their entry and write it back erase one another's entry. So the
    index is written with every entry seen during this push, then read back until our entry
    (and those seen) stay through a pause longer than another pusher's read-to-write gap; when
    one is gone, it is merged in and written again.
    """
    tag = fallback_tag(subject)
    seen: dict[str, object] = {}
    pause = random.uniform(*SETTLE)
    confirmed = False
    for _ in range(MERGE_ROUNDS):
        started = time.monotonic()
        manifests = _read_fallback_index(client, ref, tag)
        present = {_digest_of(m) for m in manifests}
        for m in manifests:
            digest = _digest_of(m)
            if digest is not None:
                seen.setdefault(digest, m)
        missing = [m for d, m in seen.items() if d not in present]
        if entry["digest"] in present and not missing:
            if confirmed:
                return
            confirmed = True  # ours is there: make sure no stale write takes it away
            time.sleep(pause)
            continue
        confirmed = False
        if entry["digest"] not in present:
            missing.append(entry)
        seen.setdefault(str(entry["digest"]), entry)
        index = canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX,
                                "manifests": [*manifests, *missing]})
        client.put_manifest(ref.repository, tag, index, MT_INDEX)
        pause = 2 * (time.monotonic() - started) + random.uniform(*SETTLE)
    raise FetchError(f"the referrers index {tag} in {ref.name} kept changing under other pushes "
                     f"({MERGE_ROUNDS} rounds)", hint="push again when the others are done")


def list_referrers(
    ref: str | Reference,
    artifact_type: str | None = None,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> list[Referrer]:
    """The artifacts attached to the image `ref` names (of `artifact_type`, if given): from the
    referrers API, or from the fallback tag where the registry lacks the API."""
    r = as_reference(ref)
    with client_for(r, insecure=insecure, credentials=credentials) as client:
        subject = r.digest or get_checked(client, r).digest
        data = client.get_referrers(r.repository, subject, artifact_type)
        if data is None:
            found = client.find_manifest(r.repository, fallback_tag(subject), missing_ok=True)
            if found is None:
                return []
            data = found[0]
    index = parse_model(Index, data, f"the referrers of {subject}", r.name)
    out = []
    for d in index.manifests:
        extra = d.model_extra or {}
        kind = extra.get("artifactType")
        kind = kind if isinstance(kind, str) else None
        if artifact_type is None or kind == artifact_type:
            out.append(Referrer(d.digest, d.size, d.media_type, kind, dict(d.annotations or {})))
    return out


def fetch_referrer(
    ref: str | Reference,
    referrer: Referrer | str,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> Artifact:
    """The artifact `referrer` (or its digest), checked: its manifest hashes to the digest, names
    the image `ref` as its subject, and holds one blob that hashes right."""
    r = as_reference(ref)
    digest = referrer.digest if isinstance(referrer, Referrer) else referrer
    with client_for(r, insecure=insecure, credentials=credentials) as client:
        subject = r.digest or get_checked(client, r).digest
        found = get_checked(client, r.at(digest))
        what = f"artifact {digest}"
        m = parse_model(Manifest, found.data, what, r.name)
        doc = parse_json(found.data, what, r.name)
        named = doc.get("subject", {}).get("digest") if isinstance(doc.get("subject"), dict) else None
        if named != subject:
            raise InputError(f"{what} in {r.name} is attached to {named}, not to {subject}",
                             hint="the referrers list names an artifact of another image: ignore it")
        if len(m.layers) != 1:
            raise InputError(f"{what} in {r.name} has {len(m.layers)} blobs, not one",
                             hint="imagelock attaches one attestation per artifact")
        layer = m.layers[0]
        data = client.read_blob(r.repository, layer.digest, layer.size, f"the blob of {what}")
    kind = doc.get("artifactType")
    return Artifact(artifact_type=kind if isinstance(kind, str) else m.config.media_type,
                    media_type=layer.media_type, data=data,
                    annotations=dict(m.annotations or {}))
