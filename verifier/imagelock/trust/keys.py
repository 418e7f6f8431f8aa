"""Signing keys: generate, write and read PEM key pairs, sign and verify bytes.

ECDSA P-256 is the default because every DSSE/in-toto/cosign verifier reads it; Ed25519 is there
for people who prefer it. Private keys are PKCS#8 PEM (encrypted when a passphrase is given),
public keys SubjectPublicKeyInfo PEM. ECDSA signatures are written DER over SHA-256, which is
what securesystemslib, cosign and sigstore expect; the raw 64-byte r||s form (the DSSE spec's
own example, WebCrypto, JOSE) is accepted when verifying too. The keyid (hex sha256 of the DER public key) is a
hint for finding the key, never a reason to trust a signature.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from imagelock.core.atomic import atomic_file
from imagelock.core.errors import InputError

Algorithm = Literal["ecdsa-p256", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("ecdsa-p256", "ed25519")
PASSPHRASE_ENV = "IMAGELOCK_KEY_PASSPHRASE"
RAW_SCALAR_BYTES = 32
"""Bytes of r and of s in a raw P-256 signature."""

_CryptoPrivate: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_CryptoPublic: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class PublicKey:
    """A public key imagelock can verify with, and its keyid."""

    key: _CryptoPublic
    algorithm: Algorithm
    keyid: str

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if `signature` is this key's signature over `data`; never raises for a bad one."""
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            if self._verify_ecdsa(signature, data):
                return True
            # The raw form: r and s as two 32-byte big-endian integers.
            if len(signature) == 2 * RAW_SCALAR_BYTES:
                r = int.from_bytes(signature[:RAW_SCALAR_BYTES], "big")
                s = int.from_bytes(signature[RAW_SCALAR_BYTES:], "big")
                return self._verify_ecdsa(encode_dss_signature(r, s), data)
            return False
        try:
            self.key.verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    def _verify_ecdsa(self, der: bytes, data: bytes) -> bool:
        assert isinstance(self.key, ec.EllipticCurvePublicKey)
        try:
            self.key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            # ValueError: a signature that is not even valid DER is just a bad signature.
            return False
        return True


@dataclass(frozen=True)
class PrivateKey:
    """A private key and its public half."""

    key: _CryptoPrivate
    public: PublicKey

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(data)

    def pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def keyid_of(key: _CryptoPublic) -> str:
    """Hex sha256 of the DER SubjectPublicKeyInfo: stable across PEM formatting differences."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def generate(algorithm: Algorithm = "ecdsa-p256") -> PrivateKey:
    """A fresh key pair."""
    key: _CryptoPrivate
    if algorithm == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise InputError(
            f"unsupported key algorithm {algorithm!r}",
            hint=f"choose one of: {', '.join(ALGORITHMS)}",
        )
    return _private(key, path=None)


def write_key_pair(
    key: PrivateKey, private_path: Path, public_path: Path, passphrase: bytes | None
) -> None:
    """Write both halves; the private file is created 0600 so it is never briefly world-readable."""
    for p in (private_path, public_path):
        if p.exists():
            raise InputError(
                "refusing to overwrite an existing key file",
                path=p,
                hint="choose another output name or remove the file first",
            )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.pem(passphrase))

    with atomic_file(public_path) as tmp:
        tmp.write_bytes(key.public.pem())


def load_public_key(data: bytes, *, path: str | Path | None = None) -> PublicKey:
    """A PEM SubjectPublicKeyInfo public key (ECDSA P-256 or Ed25519)."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        hint = (
            "give the public half (`-----BEGIN PUBLIC KEY-----`), as `imagelock keygen` writes it"
        )
        if b"PRIVATE KEY" in data:
            hint = "this is a private key: give the `.pub` file instead"
        raise InputError(f"not a PEM public key ({exc})", path=path, hint=hint) from exc
    return _public(key, path=path)


def load_public_key_file(path: str | Path) -> PublicKey:
    return load_public_key(_read(path, "public key"), path=path)


def load_private_key(
    data: bytes, passphrase: bytes | None, *, path: str | Path | None = None
) -> PrivateKey:
    """A PEM private key, decrypting it with `passphrase` if it is encrypted."""
    try:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except TypeError:
            if not passphrase:
                raise
            # A passphrase meant for another key (a global env var) must not break an
            # unencrypted one: it is not needed, so it is not used.
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        # cryptography's TypeError here means "encrypted, but no passphrase".
        raise InputError(
            "the private key is encrypted and no passphrase was given",
            path=path,
            hint=f"set {PASSPHRASE_ENV} or run interactively to be asked for it",
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        if b"ENCRYPTED PRIVATE KEY" in data and passphrase:
            raise InputError(
                "wrong passphrase for the private key",
                path=path,
                hint=f"check {PASSPHRASE_ENV} or the passphrase you typed",
            ) from exc
        raise InputError(
            f"not a PEM private key ({exc})",
            path=path,
            hint="give the private key file written by `imagelock keygen` (PKCS#8 PEM)",
        ) from exc
    return _private(key, path=path)


def load_private_key_file(path: str | Path, passphrase: bytes | None) -> PrivateKey:
    return load_private_key(_read(path, "private key"), passphrase, path=path)


def passphrase_from_env_or_prompt(
    *,
    confirm: bool = False,
    env: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
) -> bytes | None:
    """The key passphrase: `$IMAGELOCK_KEY_PASSPHRASE`, else asked on a terminal, else none.

    Non-interactive runs (CI) never block on a prompt: without the variable they get None, and
    loading an encrypted key then fails with a hint naming the variable.
    """
    environ = os.environ if env is None else env
    if PASSPHRASE_ENV in environ:
        return environ[PASSPHRASE_ENV].encode("utf-8") or None
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        return None
    first = prompt("Key passphrase (empty for none): ")
    if confirm and first != prompt("Repeat passphrase: "):
        raise InputError("the passphrases did not match", hint="run the command again")
    return first.encode("utf-8") or None


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the {what}: {exc.strerror}", path=path, hint="check the path"
        ) from exc


def _public(key: object, *, path: str | Path | None) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise _unsupported(f"ECDSA on {key.curve.name}", path)
        return PublicKey(key, "ecdsa-p256", keyid_of(key))
    if isinstance(key, ed25519.Ed25519PublicKey):
        return PublicKey(key, "ed25519", keyid_of(key))
    raise _unsupported(type(key).__name__, path)


def _private(key: object, *, path: str | Path | None) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return PrivateKey(key, _public(key.public_key(), path=path))
    raise _unsupported(type(key).__name__, path)


def _unsupported(kind: str, path: str | Path | None) -> InputError:
    return InputError(
        f"unsupported key type: {kind}",
        path=path,
        hint="imagelock signs with ECDSA P-256 or Ed25519; make one with `imagelock keygen`",
    )
