"""The consumer's policy (`policy.yaml`) and the result of evaluating it.

A person writes the policy, so unknown keys are errors (`extra="forbid"`): a misspelt
`treshold` must not silently weaken it. Paths in it are relative to the policy file.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from imagelock.formats.attestation import (
    PROVENANCE_PREDICATE_TYPE,
    SBOM_PREDICATE_TYPES,
    VSA_PREDICATE_TYPE,
)
from imagelock.formats.common import BoundedErrors

KNOWN_PREDICATE_TYPES = (PROVENANCE_PREDICATE_TYPE, VSA_PREDICATE_TYPE, *SBOM_PREDICATE_TYPES)
_AGE = re.compile(r"^\s*(\d{1,12})\s*([smhdw]?)\s*$")
MAX_AGE_SECONDS = 100 * 366 * 86400
"""Longest max_age (100 years): anything longer means "no limit", which is leaving it unset."""
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _UserWritten(BoundedErrors):
    """Base of what a person writes: an unknown (misspelt) key is an error, never ignored, and
    no value is coerced (`threshold: true` is not 1, `threshold: "2"` is not 2)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class KeylessIdentity(_UserWritten):
    """A keyless signer, as its Fulcio certificate names it."""

    identity: str = Field(
        min_length=1,
        description="Certificate SAN: an email, or a URI such as a CI workflow "
        "(`https://github.com/ORG/REPO/.github/workflows/release.yml@refs/tags/v1`). Exact match.",
    )
    issuer: str = Field(
        min_length=1,
        description="OIDC issuer that vouched for the identity, e.g. "
        "`https://token.actions.githubusercontent.com`. Exact match.",
    )


class TrustedSigner(_UserWritten):
    """Someone whose signatures count: one key (file or inline PEM) or one sigstore identity."""

    name: str = Field(
        min_length=1,
        description="Who this is. Entries with the same name are the same party (e.g. an old and "
        "a new key) and are counted once.",
    )
    key: str | None = Field(
        default=None,
        description="Path to a PEM public key (SubjectPublicKeyInfo), relative to the policy file.",
    )
    pem: str | None = Field(default=None, description="The PEM public key itself, inline.")
    keyid: str | None = Field(
        default=None,
        description="Optional pin: the hex sha256 of the DER public key. The policy is refused if "
        "`key`/`pem` is a different key, so a swapped key file cannot go unnoticed.",
    )
    sigstore: KeylessIdentity | None = Field(
        default=None, description="A keyless (sigstore) identity instead of a key."
    )

    @field_validator("keyid")
    @classmethod
    def _keyid_is_hex(cls, v: str | None) -> str | None:
        if v is not None and not _HEX64.match(v):
            raise ValueError("keyid must be 64 lowercase hex digits (sha256 of the DER key)")
        return v

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> TrustedSigner:
        kinds = [k for k in ("key", "pem", "sigstore") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of key, pem or sigstore"
                + (f" (got {', '.join(kinds)})" if kinds else "")
                + ("; a keyid alone cannot check a signature" if self.keyid and not kinds else "")
            )
        if self.keyid and self.sigstore is not None:
            raise ValueError("keyid pins a key; it does not apply to a sigstore identity")
        return self


class Vendor(TrustedSigner):
    """A party trusted to sign provenance for the image."""

    builder_id: str | None = Field(
        default=None,
        description="If set, this vendor's provenance counts only when runDetails.builder.id is "
        "exactly this (SLSA: accept only specific signer/builder pairs).",
    )


class Rebuilder(TrustedSigner):
    """A party trusted to rebuild the image independently and sign a VSA."""

    verifier_id: str | None = Field(
        default=None,
        description="If set, this rebuilder's VSAs count only when verifier.id is exactly this.",
    )


class RebuildersPolicy(_UserWritten):
    """How many independent rebuilders must have reproduced the image."""

    threshold: int = Field(
        ge=0,
        description="k: the number of distinct trusted rebuilders whose PASSED VSA is required. "
        "0 means no rebuild is required.",
    )
    trusted: list[Rebuilder] = Field(
        default_factory=list, description="The rebuilders whose VSAs count."
    )
    accept_reproduced_content: bool = Field(
        default=False,
        description="Count a rebuild that matched the content identity (config digest, "
        "diff_ids) but not the compressed bytes. Off: only a bit-for-bit manifest match counts.",
    )

    @model_validator(mode="after")
    def _threshold_reachable(self) -> RebuildersPolicy:
        names = {r.name for r in self.trusted}
        if self.threshold > len(names):
            raise ValueError(
                f"threshold {self.threshold} can never be met: only {len(names)} distinct "
                "rebuilders are trusted"
            )
        return self


class Policy(_UserWritten):
    """What a consumer requires before running an image."""

    version: Literal[1] = Field(description="Policy format version; 1.")
    trusted_root: str | None = Field(
        default=None,
        description="Sigstore trusted root JSON, relative to the policy file. Required when any "
        "signer is a sigstore identity; verification never goes online to fetch one.",
    )
    vendors: list[Vendor] = Field(
        default_factory=list, description="Who may sign provenance for the image."
    )
    rebuilders: RebuildersPolicy = Field(description="Independent rebuilders and the threshold.")
    required_predicate_types: list[str] = Field(
        default_factory=lambda: [PROVENANCE_PREDICATE_TYPE],
        description="Predicate types of which at least one trusted attestation must be present. "
        f"Known: {', '.join(KNOWN_PREDICATE_TYPES)} (an SBOM counts when a trusted vendor "
        "signed it, about this image).",
    )
    max_age: int | str | None = Field(
        default=None,
        description="Oldest acceptable attestation, by its own time (provenance finishedOn, VSA "
        "timeVerified): seconds, or a number with s/m/h/d/w, e.g. `30d`. Unset: no limit.",
    )
    every_platform: bool = Field(
        default=False,
        description="For a multi-platform image (an image index): judge every platform's "
        "manifest by the rules above, each with its own attestations (so each must be "
        "reproduced by the rebuilders the threshold asks for), and pass only when all pass; "
        "`--platform` does not narrow it. Off: only the manifest of `--platform` (default "
        "linux/amd64) is judged. An image of one platform is judged as it is.",
    )

    @field_validator("required_predicate_types")
    @classmethod
    def _known_types(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in KNOWN_PREDICATE_TYPES]
        if unknown:
            raise ValueError(
                f"unknown predicate type {unknown[0]!r}; imagelock evaluates "
                + ", ".join(KNOWN_PREDICATE_TYPES)
            )
        return v

    @field_validator("max_age")
    @classmethod
    def _age_parses(cls, v: int | str | None) -> int | str | None:
        if v is not None:
            parse_age(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        signers: list[TrustedSigner] = [*self.vendors, *self.rebuilders.trusted]
        if any(s.sigstore for s in signers) and not self.trusted_root:
            raise ValueError("sigstore identities are trusted, so trusted_root must be set")
        if PROVENANCE_PREDICATE_TYPE in self.required_predicate_types and not self.vendors:
            raise ValueError("provenance is required but no vendor is trusted to sign it")
        if set(SBOM_PREDICATE_TYPES) & set(self.required_predicate_types) and not self.vendors:
            raise ValueError("an SBOM is required but no vendor is trusted to sign it")
        if VSA_PREDICATE_TYPE in self.required_predicate_types and self.rebuilders.threshold < 1:
            raise ValueError("a VSA is required but rebuilders.threshold is 0")
        if not self.required_predicate_types and self.rebuilders.threshold < 1:
            # Fail closed: such a policy would pass an image without a single attestation.
            raise ValueError("the policy requires nothing: require a predicate type or set "
                             "rebuilders.threshold to 1 or more")
        return self

    def max_age_seconds(self) -> int | None:
        return None if self.max_age is None else parse_age(self.max_age)


def parse_age(value: int | str) -> int:
    """Seconds from `3600`, `"90m"`, `"12h"`, `"30d"` or `"2w"`."""
    if isinstance(value, bool):
        # ValueError, not TypeError: pydantic reports only ValueError as a field error.
        raise ValueError("max_age must be a duration, not a boolean")  # noqa: TRY004
    if isinstance(value, int):
        seconds = value
    else:
        m = _AGE.match(value)
        if not m:
            raise ValueError(f"max_age {value[:40]!r} is not a duration like 3600, 12h, 30d or 2w")
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds <= 0:
        raise ValueError("max_age must be positive")
    if seconds > MAX_AGE_SECONDS:
        raise ValueError("max_age is longer than 100 years; leave it unset for no limit")
    return seconds


# --- evaluation result ------------------------------------------------------------------------


class RuleOutcome(BaseModel):
    """One rule of the policy and whether the counted attestations satisfy it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    rule: str = Field(description="Rule name, e.g. `rebuilder-threshold`.")
    passed: bool = Field(description="Whether the rule is satisfied.")
    reason: str = Field(description="Why, in a sentence a person can act on.")


class AttestationNote(BaseModel):
    """What became of one attestation: counted, or why not."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    source: str = Field(description="File (and `:line` for JSON lines) the attestation came from.")
    sha256: str = Field(description="sha256 hex of the attestation's bytes.")
    predicate_type: str | None = Field(
        default=None, description="Its predicate type, once its signature was checked."
    )
    signers: list[str] = Field(
        default_factory=list, description="Names of the trusted signers whose signature verified."
    )
    counted: bool = Field(description="Whether it counts toward the rules.")
    reason: str = Field(description="Why it counts or why it does not.")


class PolicyResult(BaseModel):
    """The verdict on one image: pass only if every rule passed."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    passed: bool = Field(description="True only if every rule passed.")
    subject_name: str = Field(description="The image name evaluated.")
    subject_digest: str = Field(description="Its manifest digest, `sha256:<hex>`.")
    rules: list[RuleOutcome] = Field(description="Every rule, in evaluation order.")
    attestations: list[AttestationNote] = Field(description="Every attestation that was read.")

    def human(self) -> str:
        """What `imagelock verify` prints: the verdict, each rule, what became of each
        attestation."""
        lines = [f"{'PASSED' if self.passed else 'REFUSED'}: {self.subject_name} "
                 f"({self.subject_digest})"]
        lines += [f"  [{'ok' if o.passed else 'FAIL'}] {o.rule}: {o.reason}" for o in self.rules]
        for a in self.attestations:
            who = ", ".join(a.signers) or "no trusted signer"
            lines.append(f"  {'counted' if a.counted else 'ignored'}: {a.source} "
                         f"({a.predicate_type or '?'}; {who}): {a.reason}")
        return "\n".join(lines)
