"""`imagelock rebuild REF --skip-if-vouched`: one verdict per image and rebuilder, however many
workers are given the same image at once.

A worker first asks the registry whether a VSA signed by its key is already attached; if so it
skips. Otherwise it takes an exclusive lock on a file named by the image in the shared store
(`STORE/claims/<sha256 of HOST/REPO@DIGEST>.lock`, `flock`), asks the registry again (another
worker may have pushed while it waited), and only then rebuilds, signs and pushes, holding the
lock until the VSA is attached. Two workers that share a store therefore leave exactly one VSA:
the second waits, finds the first one's VSA and skips. Workers that share no store (separate CI runners)
still skip what is already attached, but two of them starting on one image at the same moment
can both push; `watch` hands each image to one of them, so that takes a duplicate work item.

A lock that stays held longer than `$IMAGELOCK_CLAIM_WAIT` seconds (default 3 h, longer than
any rebuild) is given up on: the worker stops with exit 3, to be retried later.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.errors import FetchError, InputError
from imagelock.oci.locations import local_path, registry_form
from imagelock.oci.reference import parse_reference
from imagelock.oci.referrer_sources import RegistryReferrers
from imagelock.oci.registry.client import client_for
from imagelock.oci.registry.transfer import resolve_platform
from imagelock.rebuild.reference import Found
from imagelock.trust.keys import PublicKey
from imagelock.fleet.evidence import VerdictFound, read_evidence

DEFAULT_WAIT = 3 * 3600.0
POLL = 0.2


@dataclass(frozen=True)
class Claim:
    """The image a worker holds (or found done): by digest, and this rebuilder's verdict if it
    already gave one."""

    image: str  # HOST/REPO@sha256:...
    subject: str
    keyid: str
    existing: VerdictFound | None


def _wait() -> float:
    raw = os.environ.get("IMAGELOCK_CLAIM_WAIT", "")
    try:
        return float(raw) if raw else DEFAULT_WAIT
    except ValueError:
        raise InputError(f"IMAGELOCK_CLAIM_WAIT={raw!r} is not a number of seconds") from None


def _mine(image: str, subject: str, key: PublicKey, insecure: bool) -> VerdictFound | None:
    ref = parse_reference(image)
    found = Found(image, subject, RegistryReferrers(ref, insecure=insecure), True)
    try:
        verdicts = read_evidence(found, [key]).verdicts_by({key.keyid})
    finally:
        found.close()
    return verdicts[0] if verdicts else None


@contextmanager
def _locked(path: Path, wait: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise InputError(f"cannot open the claim file {path}: {e.strerror}", path=path,
                         hint="the store must be writable by every worker") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise InputError(f"cannot lock the claim file {path}: {e.strerror}",
                                     path=path, hint="the store's file system must support "
                                     "flock (a local disk, NFSv4, CephFS)") from None
                if time.monotonic() > deadline:
                    raise FetchError(f"another worker has held {path} for over {wait:.0f} s",
                                     hint="retry later; a worker that died lets go of the lock "
                                     "by itself") from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)  # closing lets go of the lock


@contextmanager
def vouch_once(ref: str, *, key: PublicKey, store_root: Path, platform: str | None,
               insecure: bool) -> Iterator[Claim]:
    """Hold the image `ref` (followed to `platform`) for this rebuilder while the caller
    rebuilds, signs and pushes; `Claim.existing` set means skip (see the module docstring)."""
    form = registry_form(ref)
    if local_path(ref) is not None or not form.startswith("docker://"):
        raise InputError(f"--skip-if-vouched needs a registry image, not {ref}",
                         hint="it looks for this rebuilder's VSA among the registry's referrers")
    named = parse_reference(form.removeprefix("docker://"))
    with client_for(named, insecure=insecure) as client:
        found, _ = resolve_platform(client, named, platform)
    image = str(named.at(found.digest))
    existing = _mine(image, found.digest, key, insecure)
    if existing is not None:
        yield Claim(image, found.digest, key.keyid, existing)
        return
    # Named by repository and digest: one image pushed to two repositories is two pieces of
    # work (each repository keeps its own referrers), and must not wait on each other.
    name = hashlib.sha256(image.encode()).hexdigest()
    with _locked(store_root / "claims" / f"{name}.lock", _wait()):
        # Asked again with the lock held: a worker that held it before us has pushed by now.
        yield Claim(image, found.digest, key.keyid, _mine(image, found.digest, key, insecure))
