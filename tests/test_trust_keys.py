"""Key pairs: generation, PEM round trips, passphrases, keyids, and clear errors for bad keys."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from imagelock.core.errors import EXIT_BAD_INPUT, InputError
from imagelock.trust import keys
from imagelock.trust.keys import (
    PASSPHRASE_ENV,
    generate,
    load_private_key,
    load_public_key,
    passphrase_from_env_or_prompt,
    write_key_pair,
)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_signature_verifies_and_a_changed_message_does_not(algorithm: keys.Algorithm) -> None:
    key = generate(algorithm)
    sig = key.sign(b"the image")
    assert key.public.verify(sig, b"the image")
    assert not key.public.verify(sig, b"the imagE")
    assert not generate(algorithm).public.verify(sig, b"the image")


def test_default_algorithm_is_ecdsa_p256_with_der_signatures_over_sha256() -> None:
    key = generate()
    assert key.public.algorithm == "ecdsa-p256"
    sig = key.sign(b"data")
    r, s = decode_dss_signature(sig)  # raises unless DER
    assert r > 0 and s > 0
    # Interop: a plain cryptography verifier with ECDSA(SHA-256) accepts it.
    assert isinstance(key.public.key, ec.EllipticCurvePublicKey)
    key.public.key.verify(sig, b"data", ec.ECDSA(hashes.SHA256()))


def test_keyid_is_sha256_of_der_subject_public_key_info() -> None:
    key = generate("ed25519")
    der = key.public.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.keyid == hashlib.sha256(der).hexdigest()
    assert load_public_key(key.public.pem()).keyid == key.keyid


def test_public_pem_is_subject_public_key_info() -> None:
    pem = generate().public.pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_encrypted_private_key_round_trips_with_its_passphrase(algorithm: keys.Algorithm) -> None:
    key = generate(algorithm)
    pem = key.pem(b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    again = load_private_key(pem, b"correct horse")
    assert again.keyid == key.keyid
    assert key.public.verify(again.sign(b"x"), b"x")


def test_wrong_passphrase_is_an_input_error_naming_the_file() -> None:
    pem = generate().pem(b"right")
    with pytest.raises(InputError, match="wrong passphrase") as err:
        load_private_key(pem, b"wrong", path="vendor.key")
    assert err.value.path == "vendor.key"
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_encrypted_key_without_passphrase_hints_at_the_env_var() -> None:
    with pytest.raises(InputError, match="encrypted") as err:
        load_private_key(generate().pem(b"secret"), None)
    assert PASSPHRASE_ENV in (err.value.hint or "")


def test_unneeded_passphrase_does_not_break_an_unencrypted_key() -> None:
    key = generate()
    assert load_private_key(key.pem(), b"for another key").keyid == key.keyid


def test_garbage_is_not_a_key() -> None:
    with pytest.raises(InputError, match="not a PEM private key"):
        load_private_key(b"hello", None)
    with pytest.raises(InputError, match="not a PEM public key"):
        load_public_key(b"hello")


def test_private_key_given_as_public_key_says_so() -> None:
    with pytest.raises(InputError) as err:
        load_public_key(generate().pem())
    assert "private key" in (err.value.hint or "")


def test_unsupported_key_types_are_refused() -> None:
    rsa_pub = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InputError, match="unsupported key type"):
        load_public_key(rsa_pub)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InputError, match="secp384r1"):
        load_private_key(p384, None)


def test_key_pair_files_private_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    key = generate()
    priv, pub = tmp_path / "k.key", tmp_path / "k.pub"
    write_key_pair(key, priv, pub, b"pw")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert keys.load_private_key_file(priv, b"pw").keyid == keys.load_public_key_file(pub).keyid
    with pytest.raises(InputError, match="overwrite"):
        write_key_pair(generate(), priv, tmp_path / "other.pub", None)


def test_missing_key_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        keys.load_public_key_file(tmp_path / "absent.pub")


def test_passphrase_comes_from_the_environment_first() -> None:
    def never(_: str) -> str:
        raise AssertionError("must not prompt")

    got = passphrase_from_env_or_prompt(env={PASSPHRASE_ENV: "s3cret"}, prompt=never)
    assert got == b"s3cret"


def test_no_passphrase_and_no_terminal_never_prompts() -> None:
    def never(_: str) -> str:
        raise AssertionError("must not prompt")

    assert passphrase_from_env_or_prompt(env={}, interactive=False, prompt=never) is None


def test_interactive_prompt_with_confirmation() -> None:
    answers = iter(["pw", "pw"])
    got = passphrase_from_env_or_prompt(
        env={}, interactive=True, confirm=True, prompt=lambda _: next(answers)
    )
    assert got == b"pw"
    answers = iter(["pw", "typo"])
    with pytest.raises(InputError, match="did not match"):
        passphrase_from_env_or_prompt(
            env={}, interactive=True, confirm=True, prompt=lambda _: next(answers)
        )
