"""The `rebuild` command's job: fetch (network, hashes checked), build in a sandbox (no network),
compare with the published image and the lock, explain, and sign a verdict.

This is the verifier a third party runs: it trusts nothing but the lock and the pinned bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from contextlib import AbstractContextManager
from pathlib import Path

from imagelock.build.from_lock import build_lock
from imagelock.build.toolchain import differences, notes_for
from imagelock.compare.diffoscope import keep_images, run_diffoscope
from imagelock.compare.html import write_report_html
from imagelock.compare.images import compare_images
from imagelock.compare.render import render
from imagelock.core import progress
from imagelock.core.errors import InputError, ToolUnavailable
from imagelock.core.scratch import scratch_dir
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.formats.results import RebuildReport, ToolchainDifference
from imagelock.inputs.fetching import fetch_lock
from imagelock.lock.staleness import check_fresh
from imagelock.oci.image import Image
from imagelock.oci.layout_read import read_layout
from imagelock.oci.locations import read_image
from imagelock.rebuild.sandboxed import build_in_netns, build_in_sandbox
from imagelock.sandbox.bwrap import require

NO_SANDBOX = "none (--no-sandbox)"


@dataclass(frozen=True)
class RebuildResult:
    """A rebuild's report, with what signing its verdict needs: the lock and both images."""

    report: RebuildReport
    lock: Lock
    lock_path: Path
    rebuilt: Image
    published: Image | None

    @property
    def verdict(self) -> str:
        return self.report.verdict


def render_rebuild(report: RebuildReport, *, verbose: bool = False) -> str:
    """The report as `imagelock rebuild` prints it: how it ran, then the comparison."""
    isolation = ("WITHOUT a sandbox (--no-sandbox)" if report.sandbox == NO_SANDBOX
                 else f"isolated: {report.sandbox}")
    head = (f"rebuild of {report.lock_file} ({report.platform}) {isolation}, compared with "
            f"{report.image or 'the lock only'}")
    lines = [head, render(report, verbose=verbose), *[f"note: {n}" for n in report.rebuild_notes]]
    if report.attestation is not None:
        passed = report.verdict in ("reproduced", "reproduced-content")
        lines.append(f"signed {'PASSED' if passed else 'FAILED'} VSA -> {report.attestation}")
    if report.referrer is not None:
        lines.append(f"attached to {report.image} as referrer {report.referrer}")
    return "\n".join(lines)


def rebuild(
    lock_path: Path,
    *,
    image: str | None,
    store: Store,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    offline: bool,
    sandbox: bool,
    platform: str | None,
    workdir: Path,
    insecure: bool = False,
    keep: Path | None = None,
    diffoscope: Path | None = None,
    report_html: Path | None = None,
) -> RebuildResult:
    """Fetch, build in isolation (unless `sandbox` is False), and compare with `image` (or
    with the lock's digests); `workdir` holds the rebuilt and pulled images. With `report_html`,
    also write the comparison as one self-contained page (while both images are still at hand
    for its text diffs)."""
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
    fetch_lock(lock, lock_path, store, cli_mirrors=cli_mirrors or {}, offline=offline)
    # Phase 2, build: no network, the store read-only.
    out = workdir / "rebuilt"
    isolation = NO_SANDBOX
    if sandbox and (lock.steps or lock.python_builds):  # both run in rootfs sandboxes
        with progress.phase("layers"):  # the build's own events stay in the sandbox
            built = build_in_netns(lock_path, store.root, out)
        isolation = "network namespace; each build step and source build in a bubblewrap rootfs sandbox"
    elif sandbox:
        with progress.phase("layers"):
            built = build_in_sandbox(lock_path, None, store.root, out, "oci")
        isolation = "bubblewrap"
    else:
        built = build_lock(lock_path, output=out, fmt="oci", store=store,
                           offline=True).model_dump(mode="json")
    # The build's own notes (modules left as source, ...); the toolchain's are the rebuild's to
    # give, with the comparison's verdict in view.
    own = {d.note() for d in toolchain}
    notes += [n for n in map(str, built.get("notes", [])) if n not in notes and n not in own]
    rebuilt = read_layout(out, platform=plat)
    published = None
    if image is not None:
        published = read_image(image, platform=plat, workdir=workdir / "published",
                               insecure=insecure)
    with progress.phase("compare"):
        report = compare_images(rebuilt, published, lock.expected.get(plat))
        if diffoscope is not None and published is not None and report.verdict == "mismatch":
            report = run_diffoscope(report, rebuilt, published, diffoscope)
        if report_html is not None:
            write_report_html(report, report_html, rebuilt=rebuilt, published=published,
                              title=f"{lock.image.name}:{lock.image.tag} ({plat})")
    notes += [n for n in notes_for(toolchain, report.verdict) if n not in notes]
    if keep is not None:
        kept = keep_images(rebuilt, published, keep)
        notes.append("kept " + ", ".join(f"{k}: {v}" for k, v in kept.items()))
    full = RebuildReport(**dict(report), sandbox=isolation, image=image, lock_file=str(lock_path),
                         platform=plat, rebuild_notes=notes,
                         toolchain=[ToolchainDifference.model_validate(d.as_json())
                                    for d in toolchain])
    return RebuildResult(full, lock, lock_path, rebuilt, published)


def sandbox_unavailable_hint(e: ToolUnavailable) -> ToolUnavailable:
    e.hint = (e.hint or "") + "; or pass --no-sandbox to rebuild without isolation (the result says so)"
    return e


def scratch() -> AbstractContextManager[Path]:
    """The rebuild's working directory; a killed rebuild's is removed by the next one."""
    return scratch_dir("imagelock-rebuild-")
