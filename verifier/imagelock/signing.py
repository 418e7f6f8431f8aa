"""Signing what `build` and `rebuild` produced: provenance for a build, a VSA for a rebuild."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .attest import append_line, attestations_path, lock_digest, lock_pins, utc_now
from .oci.read import local_path
from .trust import (
    AttestationRef,
    build_provenance,
    build_vsa,
    envelope_json,
    sign_envelope,
    statement_bytes,
)

if TYPE_CHECKING:
    from .building import BuildResult
    from .rebuilding import RebuildResult
    from .trust import PrivateKey


def sign_build(res: BuildResult, lock_path: Path, key: PrivateKey) -> Path:
    """SLSA provenance for every platform built, signed, appended beside the output."""
    out = attestations_path(res.output)
    digest = lock_digest(lock_path)
    now = utc_now()
    archive_digest = None
    if res.fmt == "docker-archive":
        # A docker-archive has no manifest of its own: readers (and `verify`) identify it by the
        # canonical OCI manifest of its uncompressed layers, so that is what is signed.
        from .oci.archive_read import read_docker_archive

        archive_digest = read_docker_archive(res.output).manifest_digest
    for platform, d in res.platforms.items():
        if archive_digest is not None and platform != res.lock.platforms[0]:
            continue  # the archive holds the first platform only
        st = build_provenance(
            subject_name=res.lock.image.name,
            manifest_digest=archive_digest or d["manifest_digest"],
            lock_digest=digest,
            lock_uri=lock_path.name,
            pins=lock_pins(res.lock),
            finished_on=now,
            platform=platform,
            builder_version={"imagelock": __version__},
        )
        env = sign_envelope(statement_bytes(st), [key])
        append_line(out, envelope_json(env))
    return out




def provenance_refs(image_path: Path | None) -> list[AttestationRef]:
    """The vendor's provenance envelopes kept beside a local image, as VSA inputAttestations."""
    if image_path is None:
        return []
    path = attestations_path(image_path)
    if not path.is_file():
        return []
    refs = []
    for line in path.read_bytes().splitlines():
        if b"slsa.dev/provenance" not in _payload(line):
            continue
        refs.append(AttestationRef(hashlib.sha256(line).hexdigest(), path.name))
    return refs


def _payload(line: bytes) -> bytes:
    try:
        return base64.b64decode(json.loads(line)["payload"])
    except (ValueError, KeyError, TypeError):
        return b""


def sign_rebuild(
    res: RebuildResult, key: PrivateKey, *, out: Path, verifier_id: str | None = None
) -> bytes:
    """A VSA for the image the rebuild checked (the published one, else the lock's), signed and
    appended to `out`. PASSED on a match; FAILED only when the caller asks for it."""
    subject = res.published or res.rebuilt
    match = {"reproduced": "distribution", "reproduced-content": "content"}.get(res.verdict)
    st = build_vsa(
        subject_name=res.lock.image.name,
        manifest_digest=subject.manifest_digest,
        lock_digest=lock_digest(res.lock_path),
        lock_uri=res.lock_path.name,
        time_verified=utc_now(),
        match=match,  # type: ignore[arg-type]
        input_attestations=provenance_refs(local_path(res.image_ref) if res.image_ref else None),
        verifier_version={"imagelock": __version__},
        # A local path means nothing to others (and says where the rebuilder keeps files).
        resource_uri=res.image_ref if res.image_ref and local_path(res.image_ref) is None else None,
        **({"verifier_id": verifier_id} if verifier_id else {}),
    )
    line = envelope_json(sign_envelope(statement_bytes(st), [key]))
    append_line(out, line)
    return line
