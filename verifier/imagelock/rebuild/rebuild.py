"""The `rebuild` command's job: fetch (network, hashes checked), build in a sandbox (no network),
compare with the published image and the lock, explain, and sign a verdict.

This is the verifier a third party runs: it trusts nothing but the lock and the pinned bytes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagelock.build.from_lock import build_lock
from imagelock.build.toolchain import ToolDifference, differences, notes_for
from imagelock.compare.diffoscope import keep_images, run_diffoscope
from imagelock.compare.images import compare_images
from imagelock.compare.render import render
from imagelock.core.errors import InputError, ToolUnavailable
from imagelock.fetch.mirrors import parse_cli_mirrors
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.formats.report import Report
from imagelock.inputs.fetching import fetch_lock
from imagelock.lock.staleness import check_fresh
from imagelock.oci.image import Image
from imagelock.oci.layout_read import read_layout
from imagelock.oci.locations import read_image
from imagelock.rebuild.sandboxed import build_in_netns, build_in_sandbox
from imagelock.sandbox.bwrap import require


@dataclass
class RebuildResult:
    lock: Lock
    lock_path: Path
    platform: str
    report: Report
    sandboxed: bool
    rebuilt: Image
    published: Image | None
    image_ref: str | None
    notes: list[str] = field(default_factory=list)
    isolation: str = "bubblewrap"
    toolchain: list[ToolDifference] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.report.verdict

    def as_json(self) -> dict[str, Any]:
        data = self.report.model_dump(mode="json")
        data["sandbox"] = self.isolation
        data["image"] = self.image_ref
        data["lock"] = str(self.lock_path)
        data["platform"] = self.platform
        data["rebuild_notes"] = self.notes
        data["toolchain"] = [d.as_json() for d in self.toolchain]
        return data

    def human(self, verbose: bool) -> str:
        head = (f"rebuild of {self.lock_path} ({self.platform}) "
                f"{'isolated: ' + self.isolation if self.sandboxed else 'WITHOUT a sandbox (--no-sandbox)'}"
                f", compared with {self.image_ref or 'the lock only'}")
        return "\n".join([head, render(self.report, verbose=verbose),
                          *[f"note: {n}" for n in self.notes]])


def rebuild(
    lock_path: Path,
    *,
    image: str | None,
    store: Store,
    cli_mirrors: Sequence[str],
    offline: bool,
    sandbox: bool,
    platform: str | None,
    workdir: Path,
    insecure: bool = False,
    keep: Path | None = None,
    diffoscope: Path | None = None,
) -> RebuildResult:
    lock = read_lock(lock_path)
    notes = []
    if check_fresh(lock, lock_path) is None:
        notes.append(f"spec {lock.spec} not found beside the lock: staleness not checked")
    plat = platform or lock.platforms[0]
    if plat not in lock.platforms:
        raise InputError(f"the lock has no platform {plat}", hint=f"choose one of {lock.platforms}")
    if sandbox:

        try:
            require()  # refuse before any work: a rebuild without isolation must be asked for
        except ToolUnavailable as e:
            raise sandbox_unavailable_hint(e) from None
    # What of this machine can still change the bytes (the encoder, imagelock's version): checked
    # before the build, so the report explains a difference instead of leaving it to guesswork.
    toolchain = differences(lock)
    notes += notes_for(toolchain, None)
    # Phase 1, fetch: network allowed, every hash checked.
    fetch_lock(lock, lock_path, store, cli_mirrors=parse_cli_mirrors(cli_mirrors), offline=offline)
    # Phase 2, build: no network, the store read-only.
    out = workdir / "rebuilt"
    isolation = "none (--no-sandbox)"
    if sandbox and lock.steps:
        built = build_in_netns(lock_path, store.root, out)
        isolation = "network namespace; each build step in a bubblewrap rootfs sandbox"
    elif sandbox:
        built = build_in_sandbox(lock_path, None, store.root, out, "oci")
        isolation = "bubblewrap"
    else:
        built = build_lock(lock_path, output=out, fmt="oci", store=store, cli_mirrors=[],
                           offline=True).as_json()
    # The build's own notes (modules left as source, ...); the toolchain's are the rebuild's to
    # give, with the comparison's verdict in view.
    own = {d.note() for d in toolchain}
    notes += [n for n in map(str, built.get("notes", [])) if n not in notes and n not in own]
    rebuilt = read_layout(out, platform=plat)
    published = None
    if image is not None:
        published = read_image(image, platform=plat, workdir=workdir / "published",
                               insecure=insecure)
    report = compare_images(rebuilt, published, lock.expected.get(plat))
    if diffoscope is not None and published is not None and report.verdict == "mismatch":
        report = run_diffoscope(report, rebuilt, published, diffoscope)
    notes += [n for n in notes_for(toolchain, report.verdict) if n not in notes]
    if keep is not None:
        kept = keep_images(rebuilt, published, keep)
        notes.append("kept " + ", ".join(f"{k}: {v}" for k, v in kept.items()))
    return RebuildResult(lock, lock_path, plat, report, sandbox, rebuilt, published, image, notes,
                         isolation, toolchain)


def sandbox_unavailable_hint(e: ToolUnavailable) -> ToolUnavailable:
    e.hint = (e.hint or "") + "; or pass --no-sandbox to rebuild without isolation (the result says so)"
    return e


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="imagelock-rebuild-")
