"""The public Python API: the pipeline's stages as functions that return typed results.

Everything else in the package is internal and may move; docs/api.md documents this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imagelock.build.expected import record_expected
from imagelock.inputs.fetching import fetch_pins
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec
from imagelock.formats.lock import Lock
from imagelock.lock.context import context_dir
from imagelock.lock.make import resolve_lock

if TYPE_CHECKING:
    from imagelock.formats.inventory import InspectResult, OutdatedResult
    from imagelock.sbom.document import Sbom


def lock(
    spec_path: Path,
    *,
    store: Store,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    lock_dir: Path | None = None,
    previous: Lock | None = None,
    upgrade: Sequence[str] = (),
    upgrade_security: bool = False,
    notes: list[str] | None = None,
) -> Lock:
    """Resolve the spec into a complete lock: every input pinned (the lock stage), then the
    digests its build must produce (one build, the build stage). Nothing is written.
    `upgrade_security` moves the pins a security suite has newer versions of; what an upgrade
    moved besides the names, or left behind and why, is appended to `notes`."""
    mirrors = cli_mirrors or {}
    resolved = resolve_lock(spec_path, store=store, cli_mirrors=mirrors, offline=offline,
                            lock_dir=lock_dir, previous=previous, upgrade=upgrade,
                            upgrade_security=upgrade_security, notes=notes)
    spec = load_spec(spec_path)
    fetch_pins(resolved, spec.sources, store, cli_mirrors=mirrors, offline=offline)
    context = context_dir(spec, spec_path)
    return record_expected(resolved, context=context, store=store)


# --- what is inside, and what needs updating (issue 13) -----------------------------------------


def outdated(lock_path: Path, *, store: Store,
             cli_mirrors: Mapping[str, list[str]] | None = None) -> OutdatedResult:
    """Every Debian pin of the lock at `lock_path` that the suites of the spec beside it now hold
    a newer version of, security updates flagged. Reads the signed indexes; writes nothing."""
    # lazy: the inventory commands load only what they use (docs/architecture.md)
    from imagelock.formats.files import read_lock
    from imagelock.lock.outdated import outdated as check

    return check(read_lock(lock_path), lock_path, store, cli_mirrors)


def inspect(targets: Sequence[str], *, package: str | None = None, lock: Path | None = None,
            platform: str | None = None, insecure: bool = False) -> InspectResult:
    """What is inside each lock or image (name, version, kind, where from, layer); with
    `package` (`NAME` or `NAME<VERSION`, ...), only the matches, and which targets hold one. An
    image is described by its lock (`lock`), checked to be the lock it was built from."""
    # lazy: the inventory commands load only what they use (docs/architecture.md)
    from imagelock.sbom.inspect import inspect as do_inspect
    from imagelock.sbom.query import parse_condition
    from imagelock.sbom.targets import resolve_target

    condition = parse_condition(package) if package is not None else None
    found = [resolve_target(t, lock=lock, platform=platform, insecure=insecure) for t in targets]
    return do_inspect(found, condition=condition, platform=platform)


def sbom(target: str, *, fmt: Literal["spdx", "cyclonedx"], store: Store,
         lock: Path | None = None, platform: str | None = None,
         cli_mirrors: Mapping[str, list[str]] | None = None, offline: bool = False,
         insecure: bool = False) -> Sbom:
    """The SPDX 2.3 or CycloneDX 1.6 JSON SBOM of a lock's image (or of an image, with its
    lock): every package, wheel, download and context file with sha256 and purl, from the lock
    and the pinned bytes alone; the same lock always gives the same bytes."""
    # lazy: the inventory commands load only what they use (docs/architecture.md)
    from imagelock.sbom.document import make_sbom
    from imagelock.sbom.targets import resolve_target

    found = resolve_target(target, lock=lock, platform=platform, insecure=insecure)
    return make_sbom(found, fmt, store, platform=platform, cli_mirrors=cli_mirrors,
                     offline=offline)
