"""A suite's InRelease: fetched, its OpenPGP signature verified with gpgv, its Release parsed.

Only the text gpgv itself writes out as signed (`gpgv --output`) is parsed, never our own
reading of the clearsigned file, so nothing outside the signature can sneak into the index list.
The Release `Date` is recorded in the lock. An expired `Valid-Until` is not fatal by default:
mirrors and snapshots serve old suites whose Release legitimately expired (apt here is configured
the same way), and a lock must stay re-checkable later; pass `check_valid_until=True` to refuse.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from debian import deb822

from imagelock.core.errors import FetchError, InputError, ToolUnavailable, VerificationFailed
from imagelock.fetch.http import fetch_bytes
from imagelock.fetch.mirrors import join

CLEARSIGN_HEADER = b"-----BEGIN PGP SIGNED MESSAGE-----"


@dataclass(frozen=True)
class IndexFile:
    """One file listed in a Release: its path under `dists/SUITE/`, sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """What the lock needs from a verified Release file."""

    suite: str  # the suite asked for (a code name or an alias)
    codename: str
    archive_suite: str
    date: str
    valid_until: str | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    files: dict[str, IndexFile] = field(default_factory=dict)
    inrelease_sha256: str = ""
    signers: tuple[str, ...] = ()  # fingerprints of the keys with a valid signature
    label: str = ""

    @property
    def security(self) -> bool:
        """Whether this is a security suite: Debian's and Ubuntu's are named `*-security` (Debian's
        before 11, `*/updates`) and labelled so (`Debian-Security`)."""
        names = (self.suite, self.codename, self.archive_suite)
        return (any(n.endswith(("-security", "/updates")) for n in names if n)
                or "security" in self.label.lower())


@dataclass(frozen=True)
class FetchedRelease:
    """A verified Release and the mirror base it was fetched from (tried first for its indexes),
    with the InRelease's exact bytes: the lock stage keeps them in the store, so the signed index
    can be bundled beside the image and re-checked years later."""

    release: Release
    mirror: str
    inrelease: bytes = b""


@dataclass(frozen=True)
class Signature:
    """One good signature on an InRelease: which key made it, and when."""

    fingerprint: str  # the signing (sub)key
    primary: str  # its primary key (what a keyring lists)
    created: int  # signature creation time, seconds since the epoch
    expired: int | None = None  # when the key expired, if it has since signing


@dataclass(frozen=True)
class SignedText:
    """The text gpgv wrote out as signed, and the good signatures on it."""

    content: bytes
    signatures: tuple[Signature, ...]


def _dearmor(data: bytes) -> bytes:
    """An ASCII-armored key block to binary, so gpgv reads `.asc` keyrings like apt does."""
    lines = data.decode("ascii", errors="replace").splitlines()
    body: list[str] = []
    inside = headers = False
    for line in lines:
        if line.startswith("-----BEGIN PGP PUBLIC KEY BLOCK"):
            inside = headers = True
            continue
        if line.startswith("-----END PGP"):
            break
        if not inside:
            continue
        if headers:
            if not line.strip():
                headers = False
            elif ":" not in line:
                headers = False
                body.append(line.strip())
            continue
        if line.startswith("="):  # CRC24 line
            continue
        body.append(line.strip())
    return base64.b64decode("".join(body))


def verify_inrelease(data: bytes, keyring: str | Path, *, what: str = "InRelease") -> tuple[bytes, tuple[str, ...]]:
    """The signed content of a clearsigned InRelease and the fingerprints that signed it.

    Refuses (VerificationFailed) unless at least one signature by a key in `keyring` is good
    and none is bad. gpgv runs with a private, empty home so no other keyring is consulted.
    """
    signed = verify_signed(data, keyring, what=what)
    return signed.content, tuple(s.fingerprint for s in signed.signatures)


def verify_signed(data: bytes, keyring: str | Path, *, what: str = "InRelease",
                  valid_when_signed: bool = False) -> SignedText:
    """`verify_inrelease`, keeping which key made each good signature and when.

    Archive keys expire and rotate; an index locked years ago was signed by a key that has
    expired since. With `valid_when_signed`, a signature whose key expired *after* it was made
    counts (the key was valid at the index's date); a revoked key, a bad signature, or a key
    already expired when it signed never does. Locking keeps the strict rule: today's index
    must be signed by a key valid today."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise ToolUnavailable("gpgv is not installed; it verifies the archive's signatures",
                              hint="apt-get install gpgv")
    keyring = Path(keyring)
    if not keyring.is_file():
        raise InputError(f"keyring {keyring} does not exist", field="keyring",
                         hint="install debian-archive-keyring or point `keyring:` at the "
                         "archive's OpenPGP keyring")
    if not data.lstrip().startswith(CLEARSIGN_HEADER):
        raise VerificationFailed(f"{what} is not a clearsigned file: it carries no signature",
                                 hint="the mirror serves an unsigned or damaged InRelease; "
                                 "try another mirror")
    with tempfile.TemporaryDirectory(prefix="imagelock-gpgv-") as tmp:
        ring = keyring
        if keyring.read_bytes()[:5] == b"-----":
            ring = Path(tmp) / "keyring.gpg"
            ring.write_bytes(_dearmor(keyring.read_bytes()))
        signed = Path(tmp) / "InRelease"
        signed.write_bytes(data)
        out = Path(tmp) / "Release"
        proc = subprocess.run(
            [gpgv, "--homedir", tmp, "--status-fd", "1", "--keyring", str(ring),
             "--output", str(out), str(signed)],
            capture_output=True, env={"PATH": "/usr/bin:/bin", "LANG": "C"}, check=False,
        )
        status = proc.stdout.decode("utf-8", errors="replace").splitlines()
        good, bad = _signatures(status, valid_when_signed)
        if bad or not good or not out.is_file():
            reason = "a BAD signature" if bad else "no valid signature by a key in the keyring"
            detail = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
            raise VerificationFailed(
                f"{what} has {reason} ({keyring})" + (f": {detail[0]}" if detail else ""),
                hint="the file was altered or the archive key is not trusted: check the mirror "
                "and the source's `keyring:`; nothing was locked",
            )
        return SignedText(out.read_bytes(), tuple(good))


def _signature(line: str, expired: int | None = None) -> Signature:
    # VALIDSIG <fpr> <date> <timestamp> <expire> <version> <reserved> <algo> <hash> <class> <primary>
    words = line.split()
    created = int(words[4]) if len(words) > 4 and words[4].isdigit() else 0
    return Signature(words[2], words[11] if len(words) > 11 else words[2], created, expired)


def _signatures(status: list[str], valid_when_signed: bool) -> tuple[list[Signature], list[str]]:
    """gpgv's status lines, one block per signature (from NEWSIG): the good signatures, and the
    lines that make the file bad."""
    blocks: list[list[str]] = []
    for ln in status:
        if ln.startswith("[GNUPG:] NEWSIG") or not blocks:
            blocks.append([])
        blocks[-1].append(ln)
    good: list[Signature] = []
    bad: list[str] = []
    for block in blocks:
        valid = [ln for ln in block if ln.startswith("[GNUPG:] VALIDSIG ")]
        bad += [ln for ln in block if ln.startswith(("[GNUPG:] BADSIG", "[GNUPG:] REVKEYSIG",
                                                     "[GNUPG:] EXPSIG"))]
        expkey = [ln for ln in block if ln.startswith("[GNUPG:] EXPKEYSIG")]
        if not valid:
            bad += expkey
            continue
        if not expkey:
            good.append(_signature(valid[0]))
            continue
        ends = [int(w[2]) for w in (ln.split() for ln in block if ln.startswith(
            "[GNUPG:] KEYEXPIRED ")) if len(w) > 2 and w[2].isdigit()]
        sig = _signature(valid[0], min(ends) if ends else None)
        if valid_when_signed and sig.expired is not None and sig.created < sig.expired:
            good.append(sig)
        else:
            bad += expkey
    return good, bad


def parse_release(content: bytes, suite: str) -> Release:
    """Parse verified Release text; refuses one published for another suite (a replay)."""
    r = deb822.Release(content)
    codename, archive_suite = r.get("Codename", ""), r.get("Suite", "")
    if suite not in (codename, archive_suite):
        raise VerificationFailed(
            f"the Release for {suite!r} says it is {codename or archive_suite!r}",
            hint="the mirror serves the wrong suite's InRelease; check the mirror",
        )
    if "Date" not in r:
        raise VerificationFailed(f"the Release for {suite!r} has no Date field")
    files: dict[str, IndexFile] = {}
    for entry in r.get("SHA256", []):
        files[entry["name"]] = IndexFile(entry["name"], entry["sha256"].lower(), int(entry["size"]))
    if not files:
        raise VerificationFailed(f"the Release for {suite!r} lists no SHA256 checksums",
                                 hint="only archives with SHA256 Release entries are supported")
    return Release(
        suite=suite,
        codename=codename,
        archive_suite=archive_suite,
        date=r["Date"],
        valid_until=r.get("Valid-Until"),
        architectures=tuple(r.get("Architectures", "").split()),
        components=tuple(r.get("Components", "").split()),
        acquire_by_hash=r.get("Acquire-By-Hash", "no").lower() == "yes",
        files=files,
        label=r.get("Label", ""),
    )


def is_expired(release: Release, now: float | None = None) -> bool:
    if not release.valid_until:
        return False
    until = email.utils.parsedate_to_datetime(release.valid_until).timestamp()
    return (time.time() if now is None else now) > until


def fetch_release(
    mirrors: Sequence[str],
    suite: str,
    keyring: str | Path,
    *,
    check_valid_until: bool = False,
) -> FetchedRelease:
    """Fetch `dists/SUITE/InRelease` from the first mirror that serves it, verify and parse it.

    A mirror whose file fails verification is not silently skipped: a bad signature is refused.
    """
    if not mirrors:
        raise FetchError(f"no mirror for suite {suite!r}",
                         hint="list the suite in the apt sources, give `mirrors:` in the spec, "
                         "or pass --mirror NAME=URL")
    problems: list[str] = []
    for base in mirrors:
        url = join(base, f"dists/{suite}/InRelease")
        try:
            data = fetch_bytes(url, what=f"InRelease of {suite}", limit=64 << 20)
        except FetchError as e:
            problems.append(e.message)
            continue
        content, signers = verify_inrelease(data, keyring, what=f"InRelease of {suite}")
        rel = parse_release(content, suite)
        if check_valid_until and is_expired(rel):
            raise VerificationFailed(
                f"the Release for {suite!r} expired ({rel.valid_until})",
                hint="the mirror is stale or replays an old suite; use a current mirror",
            )
        rel = dataclasses.replace(rel, inrelease_sha256=hashlib.sha256(data).hexdigest(),
                                  signers=signers)
        return FetchedRelease(rel, base, data)
    raise FetchError(f"could not fetch the InRelease of {suite!r}: " + "; ".join(problems),
                     hint="check the network and the mirrors (--mirror NAME=URL)")
