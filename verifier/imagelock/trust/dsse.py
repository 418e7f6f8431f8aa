"""DSSE v1: sign a payload into an envelope and find which keys signed one.

What is signed is PAE(payloadType, payload), never the JSON of the envelope, so an envelope can
be re-serialized freely and a payload can never be re-typed without breaking the signature.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imagelock.core.digest import canonical_json
from imagelock.core.errors import InputError, VerificationFailed
from imagelock.core.strict_json import loads
from imagelock.formats.attestation import (
    DSSE_INTOTO_PAYLOAD_TYPE,
    DSSEEnvelope,
    DSSESignature,
    dump,
    input_error,
)
from imagelock.trust.keys import PrivateKey, PublicKey

MAX_SIGNATURES = 64
"""Signatures of one envelope that are checked: each costs a verification per trusted key, so
a hostile envelope of a hundred thousand signatures would otherwise take minutes."""
MAX_SIGNATURES_READ = 1000
"""Signatures an envelope may carry at all; more is refused before they are modelled (a 4 MiB
envelope could otherwise hold 400,000 of them, and as many objects)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def sign_envelope(
    payload: bytes,
    keys: Sequence[PrivateKey],
    *,
    payload_type: str = DSSE_INTOTO_PAYLOAD_TYPE,
) -> DSSEEnvelope:
    """An envelope over `payload` with one signature per key, in the order given."""
    if not keys:
        raise InputError("nothing to sign with", hint="give at least one signing key")
    message = pae(payload_type, payload)
    return DSSEEnvelope(
        payload_type=payload_type,
        payload=base64.standard_b64encode(payload).decode("ascii"),
        signatures=[
            DSSESignature(keyid=k.keyid, sig=base64.standard_b64encode(k.sign(message)).decode())
            for k in keys
        ],
    )


def envelope_json(envelope: DSSEEnvelope) -> bytes:
    """The envelope as canonical JSON (one line, so it also fits an `.intoto.jsonl` file)."""
    return canonical_json(dump(envelope))


def parse_envelope(
    data: bytes | str | Mapping[str, Any],
    *,
    path: str | Path | None = None,
    line: int | None = None,
) -> DSSEEnvelope:
    """A DSSE envelope from JSON; anything malformed is an InputError naming file and field.

    An envelope with no signatures is well-formed (the spec allows it); it verifies as signed
    by no one.
    """
    doc: Any = data
    if isinstance(data, bytes | str):
        doc = loads(data, what="the DSSE envelope", path=path, line=line,
                    hint="give a DSSE envelope JSON file")
    signatures = doc.get("signatures") if isinstance(doc, Mapping) else None
    if isinstance(signatures, list) and len(signatures) > MAX_SIGNATURES_READ:
        raise InputError(f"the envelope carries {len(signatures)} signatures; imagelock reads "
                         f"at most {MAX_SIGNATURES_READ}", path=path, line=line,
                         field="signatures", hint="no genuine envelope has this many")
    try:
        envelope = DSSEEnvelope.model_validate(doc)
    except ValidationError as exc:
        err = input_error(exc, what="DSSE envelope", path=path)
        err.line = line
        raise err from exc
    # Decode once here so a bad base64 is reported as malformed input, not as a bad signature.
    decode_b64(envelope.payload, field="payload", path=path, line=line)
    for i, s in enumerate(envelope.signatures):
        decode_b64(s.sig, field=f"signatures[{i}].sig", path=path, line=line)
    return envelope


def decode_b64(
    value: str, *, field: str, path: str | Path | None = None, line: int | None = None
) -> bytes:
    """Standard or URL-safe base64, padded or not: the DSSE spec makes verifiers accept both."""
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(
            f"not valid base64: {exc}",
            path=path,
            line=line,
            field=field,
            hint="the envelope is damaged; get a fresh copy from its publisher",
        ) from exc


def payload_of(envelope: DSSEEnvelope) -> bytes:
    return decode_b64(envelope.payload, field="payload")


@dataclass(frozen=True)
class VerifiedPayload:
    """A payload whose signature checked out, and the keyids of the keys that signed it."""

    payload_type: str
    payload: bytes
    keyids: tuple[str, ...]


def verified_keyids(envelope: DSSEEnvelope, keys: Sequence[PublicKey]) -> tuple[str, ...]:
    """The keyids of the `keys` that produced a valid signature, each once, sorted.

    A signature's own keyid only orders the search: every key is tried, since the spec forbids
    trusting that hint and other tools leave it empty or use their own format.
    """
    message = pae(envelope.payload_type, payload_of(envelope))
    found: set[str] = set()
    for s in envelope.signatures[:MAX_SIGNATURES]:
        sig = decode_b64(s.sig, field="sig")
        for key in sorted(keys, key=lambda k: k.keyid != s.keyid):
            if key.keyid not in found and key.verify(sig, message):
                found.add(key.keyid)
                break
    return tuple(sorted(found))


def verify_envelope(
    envelope: DSSEEnvelope,
    keys: Sequence[PublicKey],
    *,
    threshold: int = 1,
    path: str | Path | None = None,
) -> VerifiedPayload:
    """The payload, if at least `threshold` distinct `keys` signed it; else VerificationFailed."""
    keyids = verified_keyids(envelope, keys)
    if len(keyids) < max(threshold, 1):
        raise VerificationFailed(
            f"the envelope is signed by {len(keyids)} of the given keys; {threshold} needed",
            path=path,
            hint="check that the public key is the right one and that the file was not modified",
        )
    return VerifiedPayload(envelope.payload_type, payload_of(envelope), keyids)
