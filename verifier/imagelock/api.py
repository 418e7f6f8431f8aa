"""The public Python API: the pipeline's stages as functions that return typed results.

Everything else in the package is internal and may move; docs/api.md documents this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from imagelock.build.expected import record_expected
from imagelock.inputs.fetching import fetch_pins
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec
from imagelock.formats.lock import Lock
from imagelock.lock.context import context_dir
from imagelock.lock.make import resolve_lock


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
