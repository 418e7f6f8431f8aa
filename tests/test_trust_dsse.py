"""DSSE envelopes: the spec's PAE vector, multi-key signing, tampering, interop with
securesystemslib, and the statements (provenance, VSA) that go inside."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from imagelock.core.errors import InputError, VerificationFailed
from imagelock.formats.attestation import (
    PROVENANCE_PREDICATE_TYPE,
    VSA_PREDICATE_TYPE,
    DSSEEnvelope,
    DSSESignature,
    dump,
)
from imagelock.trust import keys
from imagelock.trust.dsse import (
    decode_b64,
    envelope_json,
    pae,
    parse_envelope,
    sign_envelope,
    verified_keyids,
    verify_envelope,
)
from imagelock.trust.keys import PublicKey, generate, keyid_of
from imagelock.trust.provenance import BUILD_TYPE, lock_digest_of, parse_provenance
from imagelock.trust.statement import parse_statement, statement_bytes
from imagelock.trust.uris import oci_uri
from imagelock.trust.vsa import AttestationRef, build_vsa, lock_digest_of_vsa, match_of, parse_vsa
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]
from sigstore import dsse as sigstore_dsse
from trust_helpers import IMAGE, LOCK, MANIFEST, NOW, provenance, vsa

# secure-systems-lab/dsse protocol.md, "Test Vectors".
SPEC_TYPE = "http://example.com/HelloWorld"
SPEC_BODY = b"hello world"
SPEC_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_SIG_RAW = (
    "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
)


def _spec_public_key() -> PublicKey:
    key = ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1()).public_key()
    return PublicKey(key, "ecdsa-p256", keyid_of(key))


def _spec_sig_der() -> bytes:
    raw = base64.b64decode(SPEC_SIG_RAW)
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def test_pae_matches_the_dsse_spec_example_byte_for_byte() -> None:
    assert pae(SPEC_TYPE, SPEC_BODY) == SPEC_PAE


def test_the_spec_example_signature_verifies_over_our_pae() -> None:
    # The spec signed its PAE with this key; if our PAE differed by one byte this would fail.
    assert _spec_public_key().verify(_spec_sig_der(), pae(SPEC_TYPE, SPEC_BODY))
    env = DSSEEnvelope(
        payload_type=SPEC_TYPE,
        payload=base64.b64encode(SPEC_BODY).decode(),
        signatures=[DSSESignature(sig=base64.b64encode(_spec_sig_der()).decode())],
    )
    got = verify_envelope(env, [_spec_public_key()])
    assert got.payload == SPEC_BODY and got.keyids == (_spec_public_key().keyid,)


# --- the DSSE repository's own vectors (tests/fixtures/dsse, Apache-2.0) ------------------------

DSSE_FIXTURES = Path(__file__).parent / "fixtures" / "dsse"
VECTORS = json.loads((DSSE_FIXTURES / "vectors.json").read_text(encoding="utf-8"))


def _vector_key(name: str) -> tuple[ed25519.Ed25519PrivateKey, PublicKey]:
    seed = bytes.fromhex(VECTORS["keys"][name]["seed"])
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key()
    return private, PublicKey(public, "ed25519", keyid_of(public))


def test_the_vectors_keys_are_the_rfc_8032_keys_they_claim() -> None:
    for name, key in VECTORS["keys"].items():
        _, public = _vector_key(name)
        raw = public.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert raw.hex() == key["public"], name


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["id"])
def test_dsse_spec_vector(vector: dict[str, Any]) -> None:
    env = parse_envelope(json.dumps(vector["envelope"]))
    body = decode_b64(env.payload, field="payload")
    # The PAE the signatures cover: ours must be byte-identical for the vector's claim.
    if vector["expect"] == "accept":
        assert pae(env.payload_type, body).hex() == vector["pae"]
    trusted = [_vector_key(k)[1] for k in vector["trustedKeys"]]
    try:
        verified = verify_envelope(env, trusted, threshold=vector["threshold"])
        accepted = verified.payload_type in vector["supportedPayloadTypes"]
    except VerificationFailed:
        accepted = False
    assert accepted == (vector["expect"] == "accept")


def test_the_vectors_signatures_are_what_their_keys_sign() -> None:
    # Ed25519 is deterministic: re-signing the PAE reproduces each signature, so the fixture's
    # expectations rest on nothing but the RFC 8032 keys.
    for vector in VECTORS["vectors"]:
        for sig in vector["envelope"]["signatures"]:
            signed_by = [k for k in VECTORS["keys"]
                         if _vector_key(k)[0].sign(bytes.fromhex(vector["pae"]))
                         == decode_b64(sig["sig"], field="sig")]
            assert signed_by, vector["id"]


def test_the_specs_own_ecdsa_example_with_a_raw_signature_verifies() -> None:
    # protocol.md's example: r||s (64 bytes), as pycryptodome and WebCrypto write it, not DER.
    env = parse_envelope((DSSE_FIXTURES / "protocol-example.json").read_bytes())
    assert len(decode_b64(env.signatures[0].sig, field="sig")) == 64
    got = verify_envelope(env, [_spec_public_key()])
    assert got.payload == SPEC_BODY and got.payload_type == SPEC_TYPE
    # A raw signature of the wrong bytes still fails.
    assert not _spec_public_key().verify(decode_b64(env.signatures[0].sig, field="sig"), b"x")


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"
    assert pae("t", b"") == b"DSSEv1 1 t 0 "


def test_pae_agrees_with_sigstore() -> None:
    body = statement_bytes(provenance())
    assert pae("application/vnd.in-toto+json", body) == sigstore_dsse._pae(
        "application/vnd.in-toto+json", body
    )


def test_envelope_signed_by_two_keys_names_both_keyids() -> None:
    a, b = generate(), generate("ed25519")
    env = sign_envelope(b"{}", [a, b])
    assert env.payload_type == "application/vnd.in-toto+json"
    assert [s.keyid for s in env.signatures] == [a.keyid, b.keyid]
    got = verify_envelope(env, [a.public, b.public], threshold=2)
    assert set(got.keyids) == {a.keyid, b.keyid}
    # A verifier that trusts only one of them sees only that one.
    assert verified_keyids(env, [b.public]) == (b.keyid,)
    with pytest.raises(VerificationFailed, match="1 of the given keys; 2 needed"):
        verify_envelope(env, [b.public], threshold=2)


def test_envelope_json_is_the_dsse_layout_with_standard_base64() -> None:
    key = generate()
    env = sign_envelope(b"\xfb\xff payload", [key])
    doc = json.loads(envelope_json(env))
    assert set(doc) == {"payloadType", "payload", "signatures"}
    assert doc["payload"] == base64.standard_b64encode(b"\xfb\xff payload").decode()
    assert doc["signatures"][0]["keyid"] == key.keyid
    assert set(doc["signatures"][0]) == {"keyid", "sig"}
    assert parse_envelope(envelope_json(env)) == env


def test_url_safe_base64_is_accepted_as_the_spec_requires() -> None:
    key = generate()
    env = sign_envelope(b"\xfb\xff\xfe payload with +/ bytes", [key])
    doc = dump(env)
    doc["payload"] = doc["payload"].replace("+", "-").replace("/", "_").rstrip("=")
    got = verify_envelope(parse_envelope(doc), [key.public])
    assert got.payload == b"\xfb\xff\xfe payload with +/ bytes"


def test_tampered_payload_fails_verification() -> None:
    key = generate()
    doc = dump(sign_envelope(b'{"a":1}', [key]))
    doc["payload"] = base64.b64encode(b'{"a":2}').decode()
    with pytest.raises(VerificationFailed):
        verify_envelope(parse_envelope(doc), [key.public])


def test_tampered_signature_fails_verification() -> None:
    key = generate("ed25519")
    doc = dump(sign_envelope(b'{"a":1}', [key]))
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[10] ^= 1
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(VerificationFailed):
        verify_envelope(parse_envelope(doc), [key.public])


def test_payload_type_is_authenticated() -> None:
    key = generate()
    doc = dump(sign_envelope(b"{}", [key]))
    doc["payloadType"] = "application/json"
    assert verified_keyids(parse_envelope(doc), [key.public]) == ()


def test_keyid_is_only_a_hint() -> None:
    key = generate()
    doc = dump(sign_envelope(b"{}", [key]))
    doc["signatures"][0]["keyid"] = "someone-else"
    assert verified_keyids(parse_envelope(doc), [key.public]) == (key.keyid,)
    doc["signatures"][0]["keyid"] = generate().keyid
    assert verified_keyids(parse_envelope(doc), [generate().public]) == ()


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"payload": "e30=", "signatures": [{"sig": "AA=="}]}, "payloadType"),
        (
            {"payloadType": "t", "payload": "e30=", "signatures": [{"keyid": "k"}]},
            "signatures[0].sig",
        ),
        (
            {"payloadType": "t", "payload": "not base64!", "signatures": [{"sig": "AA=="}]},
            "payload",
        ),
        (
            {"payloadType": "t", "payload": "e30=", "signatures": [{"sig": "A*=="}]},
            "signatures[0].sig",
        ),
    ],
)
def test_malformed_envelope_is_an_input_error_naming_the_field(
    doc: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as err:
        parse_envelope(json.dumps(doc), path="x.intoto.json")
    assert err.value.field == field
    assert err.value.path == "x.intoto.json"


def test_an_envelope_without_signatures_or_keyids_is_well_formed_as_the_spec_says() -> None:
    env = parse_envelope(json.dumps({"payloadType": "t", "payload": "e30=", "signatures": []}))
    assert env.signatures == []
    env = parse_envelope(json.dumps({"payloadType": "t", "payload": "e30=",
                                     "signatures": [{"keyid": None, "sig": "AA=="}]}))
    assert env.signatures[0].keyid == ""


def test_envelope_that_is_not_json_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not JSON"):
        parse_envelope(b"{not json", path="x.json")


def test_signing_with_no_key_is_refused() -> None:
    with pytest.raises(InputError):
        sign_envelope(b"{}", [])


# --- interop with securesystemslib -----------------------------------------------------------


def _sslib_key(pub: PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(pub.key, keyid=pub.keyid)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_securesystemslib_verifies_our_envelopes(algorithm: keys.Algorithm) -> None:
    key = generate(algorithm)
    ours = sign_envelope(statement_bytes(provenance()), [key])
    theirs = SslibEnvelope.from_dict(json.loads(envelope_json(ours)))
    accepted = theirs.verify([_sslib_key(key.public)], 1)
    assert list(accepted) == [key.keyid]
    assert theirs.payload == statement_bytes(provenance())


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_securesystemslib_refuses_our_envelope_when_tampered(algorithm: keys.Algorithm) -> None:
    key = generate(algorithm)
    doc = json.loads(envelope_json(sign_envelope(b'{"a":1}', [key])))
    doc["payload"] = base64.b64encode(b'{"a":2}').decode()
    with pytest.raises(SslibVerificationError):
        SslibEnvelope.from_dict(doc).verify([_sslib_key(key.public)], 1)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_we_verify_securesystemslib_envelopes(algorithm: keys.Algorithm) -> None:
    key = generate(algorithm)
    signer = CryptoSigner(key.key, _sslib_key(key.public))
    env = SslibEnvelope(statement_bytes(vsa()), "application/vnd.in-toto+json", {})
    env.sign(signer)
    got = verify_envelope(parse_envelope(env.to_dict()), [key.public])
    assert got.keyids == (key.keyid,)
    assert parse_statement(got.payload).predicate_type == VSA_PREDICATE_TYPE


# --- what goes inside: Statement, Provenance v1, VSA v1 -------------------------------------


def test_provenance_statement_has_the_slsa_v1_shape() -> None:
    doc = json.loads(statement_bytes(provenance()))
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["subject"] == [{"name": IMAGE, "digest": {"sha256": MANIFEST[7:]}}]
    assert doc["predicateType"] == PROVENANCE_PREDICATE_TYPE == "https://slsa.dev/provenance/v1"
    bd = doc["predicate"]["buildDefinition"]
    assert bd["buildType"] == BUILD_TYPE
    assert bd["externalParameters"] == {
        "lock": {"uri": "imagelock.lock", "digest": {"sha256": LOCK}}
    }
    assert bd["resolvedDependencies"] == [
        {
            "name": "debian:libc6=2.36-9",
            "uri": "debian:pool/main/g/glibc/libc6_2.36-9_amd64.deb",
            "digest": {"sha256": "33" * 32},
        },
        {"name": "python:requests==2.31.0", "digest": {"sha256": "44" * 32}},
    ]
    run = doc["predicate"]["runDetails"]
    assert run["builder"]["id"].startswith("https://")
    assert run["metadata"]["finishedOn"] == "2025-05-31T12:00:00Z"


def test_provenance_is_deterministic_and_names_its_lock() -> None:
    assert statement_bytes(provenance()) == statement_bytes(provenance())
    st = parse_statement(statement_bytes(provenance()))
    assert lock_digest_of(parse_provenance(st)) == LOCK


def test_provenance_of_another_build_type_names_no_lock() -> None:
    st = parse_statement(statement_bytes(provenance()))
    predicate = dict(st.predicate)
    predicate["buildDefinition"] = dict(predicate["buildDefinition"], buildType="https://x/y")
    other = st.model_copy(update={"predicate": predicate})
    with pytest.raises(InputError, match="not imagelock's"):
        lock_digest_of(parse_provenance(other))


def test_vsa_statement_has_the_slsa_v1_shape() -> None:
    doc = json.loads(statement_bytes(vsa(when=NOW)))
    assert doc["predicateType"] == "https://slsa.dev/verification_summary/v1"
    p = doc["predicate"]
    assert p["verifier"] == {"id": "https://imagelock.dev/verifiers/rebuild/v1"}
    assert p["timeVerified"] == "2025-06-01T12:00:00Z"
    assert p["resourceUri"] == f"pkg:oci/app@sha256%3A{MANIFEST[7:]}"
    assert p["policy"] == {"uri": "imagelock.lock", "digest": {"sha256": LOCK}}
    assert p["inputAttestations"] == [
        {"uri": "app.provenance.intoto.json", "digest": {"sha256": "55" * 32}}
    ]
    assert p["verificationResult"] == "PASSED"
    assert p["verifiedLevels"] == ["SLSA_BUILD_LEVEL_1", "IMAGELOCK_REPRODUCED_DISTRIBUTION"]
    assert p["slsaVersion"] == "1.0"


# RFC 3986: a URI starts with a scheme; a relative reference's first segment has no colon.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_RELATIVE_REFERENCE = re.compile(r"^(?:[A-Za-z0-9._~!$&'()*+,;=@-]|%[0-9A-F]{2})+"
                                 r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-F]{2})*)*$")


@pytest.mark.parametrize(("image_ref", "expected"), [
    (None, "pkg:oci/app@sha256%3A"),
    ("127.0.0.1:5000/acme/app:1.0", "oci://127.0.0.1:5000/acme/app@sha256:"),
])
def test_uri_fields_are_uris_or_relative_references(image_ref: str | None, expected: str) -> None:
    st = build_vsa(
        subject_name=IMAGE, manifest_digest=MANIFEST, lock_digest=LOCK,
        lock_uri="my lock:v2.lock", time_verified=NOW, match="distribution",
        input_attestations=[AttestationRef("55" * 32, "app:1.intoto.jsonl")],
        resource_uri=oci_uri(image_ref, MANIFEST) if image_ref else None)
    p = json.loads(statement_bytes(st))["predicate"]
    assert p["resourceUri"] == expected + MANIFEST[7:]
    assert _URI.match(p["resourceUri"])
    for uri in (p["policy"]["uri"], p["inputAttestations"][0]["uri"]):
        assert _RELATIVE_REFERENCE.match(uri) and not _URI.match(uri), uri
    prov = json.loads(statement_bytes(provenance()))["predicate"]
    assert _RELATIVE_REFERENCE.match(prov["buildDefinition"]["externalParameters"]["lock"]["uri"])


def test_vsa_records_content_match_and_failure() -> None:
    content = parse_vsa(parse_statement(statement_bytes(vsa(match="content"))))
    assert match_of(content) == "content"
    failed = parse_vsa(parse_statement(statement_bytes(vsa(match=None))))
    assert failed.verification_result == "FAILED"
    assert failed.verified_levels == ["FAILED"]
    assert match_of(failed) is None
    assert lock_digest_of_vsa(failed) == LOCK


def test_builders_refuse_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        provenance(finished=datetime(2025, 1, 1))
    assert provenance(finished=datetime(2025, 1, 1, tzinfo=UTC))


def test_statement_that_is_not_in_toto_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        parse_statement(b'{"_type": "other", "subject": [{"digest": {}}], "predicateType": "x"}')
    assert err.value.field == "_type"
    with pytest.raises(InputError, match="digest"):
        parse_statement(
            b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a"}], '
            b'"predicateType": "x"}'
        )
