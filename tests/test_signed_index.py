"""Archive keys expire: an index signed years ago by a key that has expired since still checks
out for a rebuild (the key was valid when it signed), while a key that had already expired when
it signed, a bad signature, or a key outside the keyring never do. Locking stays strict."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagelock.core.errors import VerificationFailed
from imagelock.lock.debian.release import verify_signed

RELEASE = b"Suite: old\nCodename: old\nDate: Wed, 01 Jul 2020 00:00:00 UTC\nSHA256:\n 00 1 a\n"


def _gpg(home: Path, *args: str, when: str) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                           "--passphrase", "", "--faked-system-time", when, *args],
                          check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def old_key() -> Iterator[tuple[Path, Path]]:
    """A key made in 2020 that expired at the end of 2021, and its public keyring."""
    home = Path(tempfile.mkdtemp(prefix="ilk-", dir="/tmp"))
    os.chmod(home, 0o700)
    try:
        _gpg(home, "--quick-gen-key", "old archive key <old@example.org>", "ed25519", "sign", "2y",
             when="20200101T000000")
        ring = home / "ring.gpg"
        ring.write_bytes(_gpg(home, "--export", when="20200101T000000"))
        yield home, ring
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _signed_at(home: Path, when: str) -> bytes:
    src = home / f"Release-{when}"
    src.write_bytes(RELEASE)
    out = home / f"InRelease-{when}"
    _gpg(home, "--yes", "--clearsign", "--output", str(out), str(src), when=when)
    return out.read_bytes()


def test_a_key_that_expired_after_signing_counts_for_a_rebuild_and_says_so(
        old_key: tuple[Path, Path]) -> None:
    home, ring = old_key
    data = _signed_at(home, "20200701T000000")
    with pytest.raises(VerificationFailed, match="BAD signature"):
        verify_signed(data, ring)  # locking today: the key is expired, refused
    signed = verify_signed(data, ring, valid_when_signed=True)
    assert signed.content == RELEASE
    [sig] = signed.signatures
    assert sig.created == 1593561600  # 2020-07-01, when it signed
    assert sig.expired is not None and sig.created < sig.expired < 1700000000


def test_a_key_already_expired_when_it_signed_never_counts(old_key: tuple[Path, Path]) -> None:
    home, ring = old_key
    # gpg will not sign with an expired key, so its holder extends it in 2023 and signs; the
    # rebuilder's keyring still says the key expired at the end of 2021.
    listing = _gpg(home, "--list-keys", "--with-colons", when="20230101T000000").decode()
    fpr = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
    _gpg(home, "--quick-set-expire", fpr, "2030-01-01", when="20230101T000000")
    data = _signed_at(home, "20230101T000000")
    with pytest.raises(VerificationFailed):
        verify_signed(data, ring, valid_when_signed=True)


def test_a_tampered_index_signed_by_an_expired_key_is_still_bad(old_key: tuple[Path, Path]) -> None:
    home, ring = old_key
    data = _signed_at(home, "20200701T000000").replace(b"Suite: old", b"Suite: new")
    with pytest.raises(VerificationFailed, match="BAD signature"):
        verify_signed(data, ring, valid_when_signed=True)


def test_a_signature_by_a_key_outside_the_keyring_is_refused(old_key: tuple[Path, Path]) -> None:
    home, _ = old_key
    data = _signed_at(home, "20200701T000000")
    with pytest.raises(VerificationFailed, match="no valid signature"):
        verify_signed(data, "/usr/share/keyrings/debian-archive-keyring.gpg",
                      valid_when_signed=True)
