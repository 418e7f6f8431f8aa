"""What travels beside an image, found from its reference alone: the attestations, the recipe
and the input bundle among its referrers (in a registry, or kept beside an image pulled with
`imagelock pull --with-inputs`).

This module finds and reads; it decides nothing about trust. `trust.reference` checks the
provenance's signature and which lock it names, then asks here for the recipe of that lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.core.errors import FetchError, InputError, VerificationFailed
from imagelock.fetch.store import Store
from imagelock.formats.recipe import INPUTS_ARTIFACT_TYPE, RECIPE_ARTIFACT_TYPE
from imagelock.oci.locations import local_path, read_image, registry_form
from imagelock.oci.reference import parse_reference
from imagelock.oci.referrer_sources import (
    ArtifactManifest,
    LayoutReferrers,
    Referrers,
    RegistryReferrers,
    referrers_dir,
)
from imagelock.oci.registry.client import client_for
from imagelock.oci.registry.transfer import resolve_platform
from imagelock.rebuild.bundle import BundlePlace
from imagelock.rebuild.recipe import lock_of, unpack_recipe

INTOTO_ARTIFACT_TYPE = "application/vnd.in-toto+json"


@dataclass
class Found:
    """An image by reference, and where its referrers are read from."""

    image: str  # what to compare the rebuild with: REGISTRY/REPO@sha256:... or oci:DIR
    subject: str  # the image's manifest digest
    referrers: Referrers
    network: bool
    local: Path | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.referrers.close()


def is_reference(text: str) -> bool:
    """Whether a command-line argument names an image (a registry reference or `oci:DIR`) rather
    than a lock or its directory."""
    form = registry_form(text)
    return form.startswith(("docker://", "oci:"))


def open_reference(ref: str, *, platform: str | None, insecure: bool, workdir: Path) -> Found:
    """Resolve `ref` to one image manifest (following an index to `platform`) and open its
    referrers: the registry's, or the `DIR.referrers/` layout beside a pulled image."""
    form = registry_form(ref)
    if form.startswith("docker://"):
        r = parse_reference(form.removeprefix("docker://"))
        with client_for(r, insecure=insecure) as client:
            found, _ = resolve_platform(client, r, platform)
        pinned = r.at(found.digest)
        notes = [] if r.digest == found.digest else [
            f"{ref} resolved to {found.digest}: the rebuild and any VSA are about that digest"]
        return Found(str(pinned), found.digest, RegistryReferrers(pinned, insecure=insecure),
                     True, None, notes)
    path = local_path(ref)
    if path is None or not form.startswith("oci:"):
        raise InputError(f"{ref!r} is neither a registry reference nor oci:DIR",
                         hint="write HOST/REPO@sha256:... or oci:DIR (a layout pulled with "
                         "`imagelock pull --with-inputs`)")
    img = read_image(form, platform=platform, workdir=workdir)
    kept = referrers_dir(path)
    if not kept.is_dir():
        raise FetchError(f"no referrers are kept beside {path} (no {kept})",
                         hint=f"pull the image with `imagelock pull REF -o {path} --with-inputs`")
    return Found(form, img.manifest_digest, LayoutReferrers(kept, img.manifest_digest), False,
                 path)


def attestations(found: Found) -> list[tuple[str, bytes]]:
    """Every in-toto attestation (DSSE envelope) attached to the image, with where it was found;
    for a pulled image also the lines of `DIR.intoto.jsonl`. Unverified: the caller checks."""
    out: dict[str, tuple[str, bytes]] = {}
    for r in found.referrers.list(INTOTO_ARTIFACT_TYPE):
        art = found.referrers.artifact(r)
        if len(art.layers) != 1:
            continue
        data = found.referrers.read_blob(art.layers[0], f"the attestation {r.digest}")
        out.setdefault(hashlib.sha256(data).hexdigest(), (f"referrer {r.digest}", data))
    if found.local is not None:
        beside = found.local.with_name(found.local.name + ".intoto.jsonl")
        if beside.is_file():
            for n, line in enumerate(beside.read_bytes().splitlines(), 1):
                if line.strip():
                    out.setdefault(hashlib.sha256(line.strip()).hexdigest(),
                                   (f"{beside}:{n}", line.strip()))
    return list(out.values())


def recipe_for(found: Found, locks: set[str]) -> tuple[ArtifactManifest, bytes]:
    """The recipe whose lock is one of `locks` (sha256 hex): its manifest and the lock's bytes.

    No recipe at all is an input that cannot be fetched (exit 3); recipes whose locks are all
    other than the provenance names are a failed verification (exit 1)."""
    others = []
    listed = found.referrers.list(RECIPE_ARTIFACT_TYPE)
    for r in listed:
        art = found.referrers.artifact(r)
        _, data = lock_of(art, found.referrers)
        digest = hashlib.sha256(data).hexdigest()
        if digest in locks:
            return art, data
        others.append(f"recipe {r.digest} holds lock sha256 {digest}")
    if not listed:
        raise FetchError(f"no recipe is attached to {found.image} ({found.referrers.where})",
                         hint="the vendor publishes one with `imagelock attach REF --recipe LOCK`")
    raise VerificationFailed(
        "the recipe's lock is not the lock the vendor's provenance names ("
        + ", ".join(sorted(locks)) + "): " + "; ".join(others),
        hint="the recipe was replaced or belongs to another build: do not rebuild from it")


def newest_recipe(found: Found) -> tuple[ArtifactManifest, bytes] | None:
    """The last recipe attached (for the rot monitor, which trusts nothing it reads anyway)."""
    listed = found.referrers.list(RECIPE_ARTIFACT_TYPE)
    if not listed:
        return None
    art = found.referrers.artifact(listed[-1])
    return art, lock_of(art, found.referrers)[1]


def bundle_place(found: Found) -> BundlePlace | None:
    """Every input bundle attached to the image, as one place to fetch inputs from (blobs are
    content-addressed, so which bundle lists a blob does not matter)."""
    bundles = [found.referrers.artifact(r) for r in found.referrers.list(INPUTS_ARTIFACT_TYPE)]
    if not bundles:
        return None
    return BundlePlace(found.referrers, bundles, network=found.network)


def checkout(found: Found, art: ArtifactManifest, lock_data: bytes, store: Store, dest: Path) -> Path:
    """The recipe written out as a checkout (spec, lock, context) in `dest`; the lock's path."""
    dest.mkdir(parents=True, exist_ok=True)
    return unpack_recipe(art, found.referrers, lock_data, store, dest)
