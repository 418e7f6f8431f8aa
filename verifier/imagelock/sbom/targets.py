"""`LOCK|REF` on the command line of `inspect` and `sbom`: the lock that describes what is inside.

A lock path (a file, or a directory holding imagelock.lock) is read as it is. An image
(`oci:DIR`, `docker-archive:FILE`, a layout directory, a registry reference) is described by its
lock, given with `--lock`; the image's config digest (its content identity) must be the one the
lock expects, so a lock cannot describe an image built from something else. The recipe that an
image can carry beside it (issue 11) is the other place a lock will come from; without either,
the error says so (exit 3: the input could not be had).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagelock.core.errors import FetchError, InputError, VerificationFailed
from imagelock.core.names import LOCK_FILENAME
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.formats.oci import Manifest
from imagelock.oci.blobio import parse_model
from imagelock.oci.locations import read_image, registry_form


@dataclass(frozen=True)
class Target:
    """What `inspect` or `sbom` describes: the lock, where it was read, and the image if any."""

    given: str  # the argument as the user wrote it
    lock: Lock
    lock_path: Path
    image_manifest: str | None = None  # the image's manifest digest, when a REF was given


def _lock_file(text: str) -> Path | None:
    """The lock `text` names, if it names one: imagelock.lock in a directory, or a JSON file."""
    p = Path(text)
    if p.is_dir():
        return p / LOCK_FILENAME if (p / LOCK_FILENAME).is_file() else None
    if p.is_file():
        with p.open("rb") as f:
            head = f.read(64).lstrip()
        return p if head.startswith(b"{") else None
    return None


def _image_digests(ref: str, platform: str, *, insecure: bool) -> tuple[str, str]:
    """(manifest digest, config digest) of one platform's image, reading only its documents."""
    form = registry_form(ref)
    if form.startswith("docker://"):
        # lazy: the registry client (requests) loads only for registry references
        from imagelock.oci.registry.client import client_for
        from imagelock.oci.registry.transfer import parse_reference, resolve_platform

        r = parse_reference(form.removeprefix("docker://"))
        with client_for(r, insecure=insecure) as client:
            found, _ = resolve_platform(client, r, platform)
        manifest = parse_model(Manifest, found.data, f"manifest {found.digest}", ref)
        return found.digest, manifest.config.digest
    img = read_image(form, platform=platform)
    return img.manifest_digest, img.config_digest


def is_image(text: str) -> bool:
    """Whether an argument names an image rather than a lock."""
    if _lock_file(text) is not None:
        return False
    form = registry_form(text)
    return form.startswith(("docker://", "oci:", "docker-archive:")) or Path(text).exists()


def resolve_target(text: str, *, lock: Path | None, platform: str | None,
                   insecure: bool = False) -> Target:
    """The lock describing `text`, checked against the image when `text` names one."""
    if not is_image(text):
        path = _lock_file(text)
        if path is None:
            raise InputError(f"{text!r} is neither a lock nor an image",
                             hint="give a lock (or its directory), oci:DIR, docker-archive:FILE "
                             "or HOST/REPO@sha256:...")
        if lock is not None:
            raise InputError(f"{text} is a lock: --lock goes with an image",
                             field="--lock", hint="drop --lock, or give the image instead")
        return Target(text, read_lock(path), path)
    if lock is None:
        raise FetchError(f"no lock or recipe reachable for {text}",
                         hint="give the image's lock with --lock LOCK, or the lock itself "
                         "instead of the image")
    lock_path = lock / LOCK_FILENAME if lock.is_dir() else lock
    lk = read_lock(lock_path)
    # "all": the image as a whole, so the lock must describe every platform of it
    plats = lk.platforms if platform == "all" else [platform or lk.platforms[0]]
    manifests = []
    for plat in plats:
        expected = lk.expected.get(plat)
        if expected is None:
            raise InputError(f"the lock has no platform {plat}", path=lock_path,
                             hint="choose one of " + ", ".join(lk.platforms))
        manifest, config = _image_digests(text, plat, insecure=insecure)
        if config != expected.config_digest:
            raise VerificationFailed(
                f"{lock_path} does not describe {text}: the image's config is {config}, the "
                f"lock expects {expected.config_digest} ({plat})",
                hint="give the lock this image was built from (or rebuild it from this lock)")
        manifests.append(manifest)
    return Target(text, lk, lock_path, manifests[0])
