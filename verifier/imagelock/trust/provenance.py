"""SLSA Provenance v1 for an imagelock build: the lock it was built from and every pinned input.

The build type `https://imagelock.dev/build/v1` (documented in docs/trust.md) means: the image was
assembled by `imagelock build` from the lock whose sha256 is `externalParameters.lock.digest`,
and nothing else under the caller's control. The lock pins every input, so the lock digest is
the whole external interface; `resolvedDependencies` repeats the pins so that tools which do not
read locks can still walk the inputs.

Pure builder: the caller passes the times, so the same inputs give the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from imagelock.core.errors import InputError
from imagelock.formats.attestation import (
    PROVENANCE_PREDICATE_TYPE,
    BuildDefinition,
    Builder,
    BuildMetadata,
    Provenance,
    ResourceDescriptor,
    RunDetails,
    Statement,
    dump,
    input_error,
)
from imagelock.trust.statement import make_statement, sha256_hex
from imagelock.trust.uris import relative_reference

BUILD_TYPE = "https://imagelock.dev/build/v1"
DEFAULT_BUILDER_ID = "https://imagelock.dev/builders/cli/v1"
"""A build run by the imagelock CLI on a machine the vendor controls (see docs/trust.md)."""


@dataclass(frozen=True)
class Pin:
    """One pinned input of the lock: its name, sha256 and, if it has one, where it comes from."""

    name: str
    sha256: str
    uri: str | None = None


PinLike = Pin | tuple[str, str] | tuple[str, str, str | None]


def _pin(p: PinLike) -> Pin:
    if isinstance(p, Pin):
        return p
    name, digest, *rest = p
    return Pin(name, digest, rest[0] if rest else None)


def build_provenance(
    *,
    subject_name: str,
    manifest_digest: str,
    lock_digest: str,
    pins: Iterable[PinLike],
    finished_on: datetime,
    started_on: datetime | None = None,
    builder_id: str = DEFAULT_BUILDER_ID,
    builder_version: Mapping[str, str] | None = None,
    lock_uri: str | None = None,
    platform: str | None = None,
    invocation_id: str | None = None,
    byproducts: Sequence[ResourceDescriptor] = (),
) -> Statement:
    """The provenance statement for one built image (one platform's manifest)."""
    lock: dict[str, Any] = {"digest": {"sha256": sha256_hex(lock_digest, field="lock_digest")}}
    if lock_uri:
        lock["uri"] = relative_reference(lock_uri)
    external: dict[str, Any] = {"lock": lock}
    if platform:
        external["platform"] = platform
    deps = sorted(
        (_pin(p) for p in pins),
        key=lambda p: (p.name, p.sha256),
    )
    predicate = Provenance(
        build_definition=BuildDefinition(
            build_type=BUILD_TYPE,
            external_parameters=external,
            resolved_dependencies=[
                ResourceDescriptor(
                    name=p.name,
                    uri=p.uri,
                    digest={"sha256": sha256_hex(p.sha256, field=f"pins.{p.name}")},
                )
                for p in deps
            ],
        ),
        run_details=RunDetails(
            builder=Builder(
                id=builder_id, version=dict(builder_version) if builder_version else None
            ),
            metadata=BuildMetadata(
                invocation_id=invocation_id,
                started_on=_utc(started_on) if started_on else None,
                finished_on=_utc(finished_on),
            ),
            byproducts=list(byproducts) or None,
        ),
    )
    return make_statement(subject_name, manifest_digest, PROVENANCE_PREDICATE_TYPE, dump(predicate))


def parse_provenance(statement: Statement) -> Provenance:
    """The predicate of a provenance statement; InputError if it is not SLSA Provenance v1."""
    if statement.predicate_type != PROVENANCE_PREDICATE_TYPE:
        raise InputError(
            f"not a SLSA Provenance v1 statement (predicateType {statement.predicate_type!r})",
            field="predicateType",
        )
    try:
        return Provenance.model_validate(statement.predicate)
    except ValidationError as exc:
        raise input_error(exc, what="SLSA provenance", path=None) from exc


def lock_digest_of(provenance: Provenance) -> str:
    """The sha256 hex of the lock an imagelock provenance was built from.

    Refuses other build types: their externalParameters mean something else, and the SLSA spec
    asks verifiers to reject parameters they do not recognise rather than guess.
    """
    definition = provenance.build_definition
    if definition.build_type != BUILD_TYPE:
        raise InputError(
            f"build type {definition.build_type!r} is not imagelock's ({BUILD_TYPE})",
            field="predicate.buildDefinition.buildType",
            hint="only provenance written by `imagelock build` names a lock",
        )
    lock = definition.external_parameters.get("lock")
    digest = lock.get("digest") if isinstance(lock, dict) else None
    value = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(value, str):
        raise InputError(
            "the provenance names no lock digest",
            field="predicate.buildDefinition.externalParameters.lock.digest.sha256",
        )
    return sha256_hex(value, field="externalParameters.lock.digest.sha256")


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return t.astimezone(UTC)
