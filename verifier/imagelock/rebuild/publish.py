"""The vendor's side of "an image carries what it takes to rebuild it": attach the recipe and the
input bundle of a lock to the registry image that lock describes (`imagelock attach REF
--recipe LOCK --inputs`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec, read_lock
from imagelock.formats.recipe import INPUTS_ARTIFACT_TYPE, LOCK_SHA256, RECIPE_ARTIFACT_TYPE
from imagelock.oci.locations import local_path, registry_form
from imagelock.oci.reference import parse_reference
from imagelock.oci.registry.referrers import Pushed, push_artifact
from imagelock.oci.registry.transfer import resolve
from imagelock.rebuild.bundle import bundle_blobs, bundle_inputs
from imagelock.rebuild.inputs import PlaceConfig
from imagelock.rebuild.recipe import recipe_blobs


@dataclass
class Published:
    """What `attach --recipe/--inputs` put beside the image."""

    ref: str
    subject: str
    lock_sha256: str
    recipe: Pushed | None = None
    inputs: Pushed | None = None
    inputs_count: int = 0

    def as_json(self) -> dict[str, Any]:
        def one(p: Pushed | None) -> dict[str, Any] | None:
            return None if p is None else {"referrer": p.digest, "uploaded": p.uploaded,
                                           "already_present": p.present,
                                           "bytes_uploaded": p.bytes_uploaded}
        return {"ref": self.ref, "subject": self.subject, "lock_sha256": self.lock_sha256,
                "recipe": one(self.recipe), "inputs": one(self.inputs),
                "inputs_count": self.inputs_count}

    def human(self) -> list[str]:
        lines = []
        if self.recipe is not None:
            lines.append(f"attached the recipe (lock sha256 {self.lock_sha256}) as referrer "
                         f"{self.recipe.digest}")
        if self.inputs is not None:
            p = self.inputs
            lines.append(f"attached the input bundle ({self.inputs_count} blobs) as referrer "
                         f"{p.digest}")
            lines.append(f"  uploaded {p.uploaded} blobs ({p.bytes_uploaded} bytes); "
                         f"{p.present} were already in the repository")
        return lines


def publish(
    ref: str,
    lock_path: Path,
    *,
    recipe: bool,
    inputs: bool,
    store: Store,
    cli_mirrors: Mapping[str, list[str]],
    cli_snapshots: Mapping[str, list[str]],
    offline: bool = False,
    insecure: bool = False,
    keyring: Callable[[str], Path] | None = None,
) -> Published:
    """Attach the recipe and/or the input bundle of the lock at `lock_path` to the registry
    image `ref`, which must be the image the lock describes (its manifest digest is one the lock
    expects). Everything is gathered and checked before anything is pushed."""
    form = registry_form(ref)
    if local_path(ref) is not None or not form.startswith("docker://"):
        raise InputError(f"{ref} is not a registry image",
                         hint="push the image first, then attach to HOST/REPO@sha256:...")
    lock = read_lock(lock_path)
    named = parse_reference(form.removeprefix("docker://"))
    subject = resolve(named, insecure=insecure).digest
    target = str(named.at(subject))  # a tag that moves meanwhile cannot redirect the artifacts
    expected = {e.manifest_digest for e in lock.expected.values()}
    if subject not in expected:
        raise InputError(
            f"{ref} is {subject}, which {lock_path} does not describe (it expects "
            f"{', '.join(sorted(expected))})", path=lock_path,
            hint="attach the recipe to the image built from this lock, by its manifest digest")
    blobs, annotations = recipe_blobs(lock_path)  # also refuses a stale lock
    out = Published(ref, subject, annotations[LOCK_SHA256])
    gathered = None
    if inputs:
        spec = load_spec(lock_path.parent / lock.spec, lock.set_image)
        config = PlaceConfig(dict(spec.sources), cli_mirrors, cli_snapshots)
        gathered = bundle_blobs(bundle_inputs(lock, store, config, offline=offline,
                                              keyring=keyring), store)
        out.inputs_count = len(gathered)
    if recipe:
        out.recipe = push_artifact(target, RECIPE_ARTIFACT_TYPE, blobs, annotations=annotations,
                                   insecure=insecure)
    if gathered is not None:
        out.inputs = push_artifact(target, INPUTS_ARTIFACT_TYPE, gathered,
                                   annotations=annotations, insecure=insecure)
    return out
