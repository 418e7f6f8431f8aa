"""in-toto Statement v1: bind a predicate to the image it speaks about (by manifest digest).

The subject of every imagelock attestation is the image: its name and its manifest digest (the
distribution identity), so a consumer checks exactly the bytes it is about to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imagelock.core.digest import canonical_json, hex_of, is_sha256_hex
from imagelock.core.errors import InputError
from imagelock.core.strict_json import loads
from imagelock.formats.attestation import (
    STATEMENT_TYPE,
    ResourceDescriptor,
    Statement,
    dump,
    input_error,
)


def sha256_hex(digest: str, *, field: str = "digest") -> str:
    """The hex of `sha256:<hex>` or of a bare hex string; InputError for anything else."""
    value = digest.strip().lower()
    if is_sha256_hex(value):
        return value
    try:
        return hex_of(value)
    except ValueError:
        raise InputError(
            f"not a sha256 digest: {digest!r}",
            field=field,
            hint="write it as sha256:<64 hex digits>",
        ) from None


def make_statement(
    subject_name: str, subject_digest: str, predicate_type: str, predicate: dict[str, Any]
) -> Statement:
    """A Statement about one image."""
    return Statement(
        type_=STATEMENT_TYPE,
        subject=[
            ResourceDescriptor(
                name=subject_name, digest={"sha256": sha256_hex(subject_digest, field="subject")}
            )
        ],
        predicate_type=predicate_type,
        predicate=predicate,
    )


def statement_bytes(statement: Statement) -> bytes:
    """The payload to sign: canonical JSON, so the same statement always signs the same bytes."""
    return canonical_json(dump(statement))


def parse_statement(payload: bytes, *, path: str | Path | None = None) -> Statement:
    """A Statement from a (verified) payload; InputError if it is not one, or if it is JSON that
    two readers could read differently (a duplicate key)."""
    doc = loads(payload, what="the payload", path=path,
                hint="the payload must be an in-toto Statement")
    try:
        return Statement.model_validate(doc)
    except ValidationError as exc:
        raise input_error(exc, what="in-toto Statement", path=path) from exc


def names_subject(statement: Statement, subject_digest: str) -> bool:
    """Whether the statement is about the artifact with this sha256 (names are not compared:
    in-toto matches subjects by digest, and an image's name changes with every mirror)."""
    want = sha256_hex(subject_digest)
    return any(s.sha256() == want for s in statement.subject)
