"""SLSA Verification Summary v1 for a rebuild: "I rebuilt this lock and got this image".

The policy the rebuilder verified against is the lock (`policy.digest`); its inputs are the
vendor's attestations (`inputAttestations`). What kind of match it saw is a level of its own
track in `verifiedLevels`, so a consumer that ignores imagelock's levels still sees PASSED or
FAILED, and one that reads them can refuse a content-only match:

- IMAGELOCK_REPRODUCED_DISTRIBUTION: the rebuilt manifest digest equals the subject's.
- IMAGELOCK_REPRODUCED_CONTENT: the config digest (hence every diff_id) matches, the compressed
  bytes do not, and the published blobs were shown to decompress to the rebuilt diff_ids.

Which SLSA Build levels are claimed, and why only L1, is explained in docs/trust.md.
Pure builder: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from imagelock.core.errors import InputError
from imagelock.formats.attestation import (
    VSA_PREDICATE_TYPE,
    ResourceDescriptor,
    Statement,
    VerificationSummary,
    VerifierInfo,
    dump,
    input_error,
)
from imagelock.trust.statement import make_statement, sha256_hex
from imagelock.trust.uris import purl, relative_reference

Match = Literal["distribution", "content"]
REPRODUCED_DISTRIBUTION = "IMAGELOCK_REPRODUCED_DISTRIBUTION"
REPRODUCED_CONTENT = "IMAGELOCK_REPRODUCED_CONTENT"
SLSA_BUILD_LEVEL = "SLSA_BUILD_LEVEL_1"
DEFAULT_VERIFIER_ID = "https://imagelock.dev/verifiers/rebuild/v1"


@dataclass(frozen=True)
class AttestationRef:
    """An attestation the verification used: the sha256 of its file and where it can be found."""

    sha256: str
    uri: str | None = None


def verified_levels(match: Match | None) -> list[str]:
    """The levels a rebuild earns: L1 plus the kind of match, or FAILED when it did not match."""
    if match is None:
        return ["FAILED"]
    return [
        SLSA_BUILD_LEVEL,
        REPRODUCED_DISTRIBUTION if match == "distribution" else REPRODUCED_CONTENT,
    ]


def build_vsa(
    *,
    subject_name: str,
    manifest_digest: str,
    lock_digest: str,
    lock_uri: str,
    time_verified: datetime,
    match: Match | None,
    input_attestations: Sequence[AttestationRef] = (),
    verifier_id: str = DEFAULT_VERIFIER_ID,
    verifier_version: Mapping[str, str] | None = None,
    resource_uri: str | None = None,
) -> Statement:
    """The VSA statement for one rebuilt image; `match=None` records a FAILED rebuild.

    `resource_uri` defaults to the image's package URL (`pkg:oci/NAME@sha256%3AHEX`); a rebuilder
    that compared a registry image passes its `oci://` URI (`trust.uris`). `lock_uri` and each
    input's `uri` are file names, written as relative references.
    """
    if time_verified.tzinfo is None:
        raise ValueError("time_verified must be timezone-aware")
    hexd = sha256_hex(manifest_digest, field="manifest_digest")
    predicate = VerificationSummary(
        verifier=VerifierInfo(
            id=verifier_id, version=dict(verifier_version) if verifier_version else None
        ),
        time_verified=time_verified.astimezone(UTC),
        resource_uri=resource_uri or purl(subject_name, hexd),
        # The spec requires policy.uri; the digest is what a consumer compares.
        policy=ResourceDescriptor(
            uri=relative_reference(lock_uri),
            digest={"sha256": sha256_hex(lock_digest, field="lock_digest")},
        ),
        input_attestations=[
            ResourceDescriptor(uri=relative_reference(a.uri) if a.uri else None,
                               digest={"sha256": sha256_hex(a.sha256, field="input")})
            for a in input_attestations
        ]
        or None,
        verification_result="PASSED" if match else "FAILED",
        verified_levels=verified_levels(match),
        slsa_version="1.0",
    )
    return make_statement(subject_name, manifest_digest, VSA_PREDICATE_TYPE, dump(predicate))


def parse_vsa(statement: Statement) -> VerificationSummary:
    """The predicate of a VSA statement; InputError if it is not SLSA VSA v1."""
    if statement.predicate_type != VSA_PREDICATE_TYPE:
        raise InputError(
            f"not a SLSA Verification Summary v1 (predicateType {statement.predicate_type!r})",
            field="predicateType",
        )
    try:
        return VerificationSummary.model_validate(statement.predicate)
    except ValidationError as exc:
        raise input_error(exc, what="SLSA verification summary", path=None) from exc


def match_of(vsa: VerificationSummary) -> Match | None:
    """Which match a PASSED imagelock VSA records; None for FAILED or a VSA that says neither."""
    if vsa.verification_result != "PASSED":
        return None
    if REPRODUCED_DISTRIBUTION in vsa.verified_levels:
        return "distribution"
    if REPRODUCED_CONTENT in vsa.verified_levels:
        return "content"
    return None


def lock_digest_of_vsa(vsa: VerificationSummary) -> str | None:
    """The sha256 hex of the lock the rebuild verified against, if the VSA names one."""
    value = vsa.policy.sha256()
    return value if value and len(value) == 64 else None
