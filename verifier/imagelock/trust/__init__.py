"""Trust: keys, DSSE envelopes, in-toto statements, SLSA provenance and VSAs, sigstore, policy.

Builders here are pure (time and inputs are arguments); reading files and verifying signatures
happen at the edges (`keys`, `dsse`, `sigstore_bundle`, `policy`). docs/trust.md explains the
model. The functions the CLI needs for keys and signing are re-exported below; policy
evaluation and sigstore live in `trust.policy` and `trust.sigstore_bundle`, imported only by the
commands that need them (importing sigstore costs a few hundred milliseconds).
"""

from __future__ import annotations

from imagelock.trust.dsse import envelope_json, parse_envelope, sign_envelope, verify_envelope
from imagelock.trust.keys import (
    PrivateKey,
    PublicKey,
    generate,
    load_private_key_file,
    load_public_key_file,
    passphrase_from_env_or_prompt,
    write_key_pair,
)
from imagelock.trust.provenance import BUILD_TYPE, Pin, build_provenance
from imagelock.trust.statement import parse_statement, statement_bytes
from imagelock.trust.vsa import AttestationRef, build_vsa

__all__ = [
    "BUILD_TYPE",
    "AttestationRef",
    "Pin",
    "PrivateKey",
    "PublicKey",
    "build_provenance",
    "build_vsa",
    "envelope_json",
    "generate",
    "load_private_key_file",
    "load_public_key_file",
    "parse_envelope",
    "parse_statement",
    "passphrase_from_env_or_prompt",
    "sign_envelope",
    "statement_bytes",
    "verify_envelope",
    "write_key_pair",
]
