"""Attestation formats: the DSSE envelope, the in-toto Statement v1, SLSA Provenance v1 and VSA v1.

These are documents other tools write too, so the models follow the in-toto parsing rules:
unknown fields are ignored (`extra="ignore"`), never an error; a `null` is the same as an absent
field (SLSA: "consumers MUST treat null as unset"); nothing optional is invented. Types are
strict: a string is never read as a number or a boolean. Field names are the snake_case form of
the JSON names; dump with `by_alias=True`.

Specs: DSSE envelope (github.com/secure-systems-lab/dsse/envelope.md), in-toto Statement v1 and
ResourceDescriptor (github.com/in-toto/attestation/spec/v1), SLSA Provenance v1
(slsa.dev/provenance/v1) and Verification Summary v1 (slsa.dev/verification_summary/v1).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from imagelock.core.errors import InputError
from imagelock.core.strict_json import short
from imagelock.formats.common import BoundedErrors
from imagelock.formats.load import MAX_MESSAGE, field_path

DSSE_INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The in-toto media type: a DSSE envelope's payloadType, and the artifactType of an
attestation attached to an image as an OCI referrer."""
DSSE_ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
"""Every sigstore bundle version's media type starts so (`...bundle+json;version=0.2`,
`...bundle.v0.3+json`)."""
SIGSTORE_BUNDLE_MEDIA_TYPE = SIGSTORE_BUNDLE_MEDIA_TYPE_PREFIX + ".v0.3+json"
STATEMENT_TYPE: Literal["https://in-toto.io/Statement/v1"] = "https://in-toto.io/Statement/v1"
PROVENANCE_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"


def _rfc3339(value: Any) -> Any:
    # Lax datetime parsing would also take a number of seconds; the specs say RFC 3339 text.
    if isinstance(value, str | datetime):
        return value
    raise ValueError(f"a time is an RFC 3339 string, not {short(value)}")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339), Field(strict=False)]


class _Foreign(BoundedErrors):
    """Base of documents other tools write: unknown fields ignored and nulls unset (in-toto and
    SLSA parsing rules), types strict."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, strict=True,
                              defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class DSSESignature(_Foreign):
    """One signature over PAE(payloadType, payload)."""

    keyid: str = Field(
        default="",
        description="Unauthenticated hint naming the key that signed: imagelock writes the hex "
        "sha256 of the DER SubjectPublicKeyInfo. Never used for a trust decision. Unset, null "
        "and empty are the same.",
    )
    sig: str = Field(description="The signature, base64 (standard or URL-safe alphabet).")


class DSSEEnvelope(_Foreign):
    """A DSSE v1 envelope: a typed payload and the signatures over its pre-authentication encoding."""

    payload_type: str = Field(
        alias="payloadType",
        description="How to interpret the payload; `application/vnd.in-toto+json` for in-toto "
        "Statements, the only type imagelock accepts.",
    )
    payload: str = Field(
        description="The serialized body, base64 (standard alphabet when written)."
    )
    signatures: list[DSSESignature] = Field(
        description="Signatures over PAE(payloadType, payload). The spec allows none: such an "
        "envelope is read, and counts for nothing."
    )


class ResourceDescriptor(_Foreign):
    """An in-toto ResourceDescriptor: a name, and a URI, a digest set or the content of one
    artifact."""

    name: str | None = Field(default=None, description="Identifier local to the attestation.")
    uri: str | None = Field(default=None, description="URI identifying the resource globally.")
    digest: dict[str, str] | None = Field(
        default=None, description="Digest set: algorithm name -> lowercase hex value."
    )
    content: str | None = Field(
        default=None, description="The artifact itself, base64 (for small ones)."
    )
    download_location: str | None = Field(
        default=None, alias="downloadLocation", description="Where to fetch it, if not `uri`."
    )
    media_type: str | None = Field(
        default=None, alias="mediaType", description="Media type of the resource."
    )
    annotations: dict[str, Any] | None = Field(
        default=None, description="Extra producer-defined information."
    )

    @model_validator(mode="after")
    def _has_identity(self) -> ResourceDescriptor:
        # The spec's floor: a descriptor that names nothing is meaningless.
        if not self.uri and not self.digest and self.content is None:
            raise ValueError("a resource descriptor needs a uri, a digest or a content")
        return self

    def sha256(self) -> str | None:
        """The lowercase sha256 hex of the digest set, if it has one."""
        if not self.digest:
            return None
        value = self.digest.get("sha256")
        return value.lower() if isinstance(value, str) else None


class Statement(_Foreign):
    """An in-toto Statement v1: which artifacts (subject) a typed predicate speaks about."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(
        alias="_type", description="Always `https://in-toto.io/Statement/v1`."
    )
    subject: list[ResourceDescriptor] = Field(
        min_length=1, description="The artifacts the predicate applies to; each carries a digest."
    )
    predicate_type: str = Field(alias="predicateType", description="URI naming the predicate.")
    predicate: dict[str, Any] = Field(
        default_factory=dict, description="The predicate; its schema is named by predicateType."
    )

    @model_validator(mode="after")
    def _subjects_have_digests(self) -> Statement:
        for s in self.subject:
            if not s.digest:
                raise ValueError("every subject must carry a digest")
        return self


# --- SLSA Provenance v1 -------------------------------------------------------------------


class BuildDefinition(_Foreign):
    """What was built and from which inputs."""

    build_type: str = Field(
        alias="buildType", description="URI of the build template; imagelock's is BUILD_TYPE."
    )
    external_parameters: dict[str, Any] = Field(
        alias="externalParameters",
        description="Inputs under the caller's control; for imagelock, the lock digest.",
    )
    internal_parameters: dict[str, Any] | None = Field(
        default=None, alias="internalParameters", description="Builder-controlled parameters."
    )
    resolved_dependencies: list[ResourceDescriptor] = Field(
        default_factory=list,
        alias="resolvedDependencies",
        description="Every artifact fetched for the build; for imagelock, every pinned input.",
    )


class Builder(_Foreign):
    """The build platform trusted to have run the build and written the provenance."""

    id: str = Field(description="URI naming the build platform (its trust boundary).")
    version: dict[str, str] | None = Field(
        default=None, description="Versions of the platform's components."
    )
    builder_dependencies: list[ResourceDescriptor] | None = Field(
        default=None, alias="builderDependencies", description="Tools the platform ran outside."
    )


class BuildMetadata(_Foreign):
    """When and as which invocation the build ran."""

    invocation_id: str | None = Field(
        default=None, alias="invocationId", description="Opaque id of this build run."
    )
    started_on: Timestamp | None = Field(
        default=None, alias="startedOn", description="When the build started (RFC 3339)."
    )
    finished_on: Timestamp | None = Field(
        default=None, alias="finishedOn", description="When the build finished (RFC 3339)."
    )


class RunDetails(_Foreign):
    """Details of this particular execution."""

    builder: Builder = Field(description="The build platform.")
    metadata: BuildMetadata | None = Field(default=None, description="Timing and invocation id.")
    byproducts: list[ResourceDescriptor] | None = Field(
        default=None, description="Other artifacts the build produced (logs, the lock itself)."
    )


class Provenance(_Foreign):
    """SLSA Provenance v1 predicate."""

    build_definition: BuildDefinition = Field(
        alias="buildDefinition", description="The inputs to the build."
    )
    run_details: RunDetails = Field(alias="runDetails", description="The run that produced it.")


# --- SLSA Verification Summary v1 ---------------------------------------------------------

VerificationResult = Literal["PASSED", "FAILED"]


class VerifierInfo(_Foreign):
    """The entity that verified."""

    id: str = Field(description="URI naming the verifier.")
    version: dict[str, str] | None = Field(
        default=None, description="Versions of the verifier's components."
    )


class VerificationSummary(_Foreign):
    """SLSA Verification Summary (VSA) v1 predicate."""

    verifier: VerifierInfo = Field(description="Who verified.")
    time_verified: Timestamp | None = Field(
        default=None,
        alias="timeVerified",
        description="When the verification ran (RFC 3339). Optional since VSA 1.1; a policy "
        "with max_age refuses a VSA without it.",
    )
    resource_uri: str = Field(alias="resourceUri", description="URI of the verified artifact.")
    policy: ResourceDescriptor = Field(
        description="What the subject was verified against; for imagelock, the lock (uri, digest)."
    )
    input_attestations: list[ResourceDescriptor] | None = Field(
        default=None,
        alias="inputAttestations",
        description="Every attestation the verification used, by digest.",
    )
    verification_result: VerificationResult = Field(
        alias="verificationResult", description="PASSED or FAILED."
    )
    verified_levels: list[str] = Field(
        alias="verifiedLevels",
        description="Highest level per track verified (SLSA_BUILD_LEVEL_n, IMAGELOCK_REPRODUCED_*), "
        "or FAILED.",
    )
    dependency_levels: dict[str, int] | None = Field(
        default=None, alias="dependencyLevels", description="Count of dependencies per level."
    )
    slsa_version: str | None = Field(
        default=None, alias="slsaVersion", description="SLSA spec version used, e.g. `1.0`."
    )


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON form of a model as the specs spell it: aliases, no unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def input_error(exc: ValidationError, *, what: str, path: str | Path | None) -> InputError:
    """Turn pydantic's first complaint into an InputError that names the file and the field."""
    first = exc.errors()[0]
    field = field_path(tuple(first["loc"]))
    extra = exc.error_count() - 1
    msg = str(first["msg"])[:MAX_MESSAGE]
    message = f"{what}: {msg}" + (f" (and {extra} more problems)" if extra else "")
    return InputError(
        message,
        path=path,
        field=field or None,
        hint=f"fix the {what} file; its format is described in docs/trust.md",
    )
