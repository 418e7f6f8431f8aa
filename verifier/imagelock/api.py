"""The public Python API: the pipeline's stages as functions that return typed results.

Everything else in the package is internal and may move; docs/api.md documents this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagelock.build.expected import record_expected
from imagelock.fetch.pins import fetch_pins
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec
from imagelock.formats.lock import Lock
from imagelock.lock.context import context_dir
from imagelock.core.names import LOCK_FILENAME
from imagelock.lock.make import resolve_lock

if TYPE_CHECKING:
    from imagelock.rebuild.publish import Published
    from imagelock.rebuild.rot import RotReport
    from imagelock.trust.keys import PublicKey
    from imagelock.trust.reference import ReferenceRebuild


def lock(
    spec_path: Path,
    *,
    store: Store,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    lock_dir: Path | None = None,
    previous: Lock | None = None,
    upgrade: Sequence[str] = (),
) -> Lock:
    """Resolve the spec into a complete lock: every input pinned (the lock stage), then the
    digests its build must produce (one build, the build stage). Nothing is written."""
    mirrors = cli_mirrors or {}
    resolved = resolve_lock(spec_path, store=store, cli_mirrors=mirrors, offline=offline,
                            lock_dir=lock_dir, previous=previous, upgrade=upgrade)
    spec = load_spec(spec_path)
    fetch_pins(resolved, spec.sources, store, cli_mirrors=mirrors, offline=offline)
    context = context_dir(spec, spec_path)
    return record_expected(resolved, context=context, store=store)


# --- an image carries what it takes to rebuild it (issue 11) ---------------------------------


def attach_recipe(
    ref: str,
    lock_path: Path,
    *,
    store: Store,
    inputs: bool = False,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    insecure: bool = False,
) -> Published:
    """Attach the recipe of the lock (spec, lock, pinned context files) and, with `inputs`, its
    input bundle to the registry image the lock describes."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.rebuild.publish import publish

    return publish(ref, lock_path, recipe=True, inputs=inputs, store=store,
                   cli_mirrors=cli_mirrors or {}, cli_snapshots=cli_snapshots or {},
                   offline=offline, insecure=insecure)


def rebuild_from_reference(
    ref: str,
    *,
    store: Store,
    workdir: Path,
    vendor_keys: Sequence[PublicKey] = (),
    keys_from: str = "",
    keyrings: Mapping[str, str] | None = None,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    sandbox: bool = True,
    platform: str | None = None,
    insecure: bool = False,
    keep: Path | None = None,
    diffoscope: Path | None = None,
) -> ReferenceRebuild:
    """Rebuild an image from its reference alone: provenance, recipe and inputs found beside it
    (docs/rebuilder.md)."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.trust.reference import rebuild_reference

    return rebuild_reference(ref, store=store, vendor_keys=vendor_keys, keys_from=keys_from,
                             keyrings=keyrings, cli_mirrors=cli_mirrors,
                             cli_snapshots=cli_snapshots, offline=offline, sandbox=sandbox,
                             platform=platform, workdir=workdir, insecure=insecure, keep=keep,
                             diffoscope=diffoscope)


def inputs_check(
    target: str,
    *,
    store: Store,
    workdir: Path,
    image: str | None = None,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    keyrings: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> RotReport:
    """Where every input of a lock (or of an image's recipe) is still available."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.rebuild.reference import is_reference
    from imagelock.rebuild.rot import check_lock, check_reference

    mirrors, snaps, rings = cli_mirrors or {}, cli_snapshots or {}, dict(keyrings or {})
    if is_reference(target) and not Path(target).exists():
        return check_reference(target, store=store, cli_mirrors=mirrors, cli_snapshots=snaps,
                               keyrings=rings, workdir=workdir, insecure=insecure)
    path = Path(target)
    lock_path = path / LOCK_FILENAME if path.is_dir() else path
    if image is not None:
        return check_reference(image, store=store, cli_mirrors=mirrors, cli_snapshots=snaps,
                               keyrings=rings, workdir=workdir, insecure=insecure,
                               lock_path=lock_path)
    return check_lock(lock_path, store=store, cli_mirrors=mirrors, cli_snapshots=snaps,
                      keyrings=rings)
