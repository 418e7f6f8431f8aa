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
from imagelock.core.digest import sha256_digest
from imagelock.core.errors import InputError, ToolUnavailable
from imagelock.core.strict_json import read_limited
from imagelock.core.scratch import scratch_dir
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.formats.results import IndexRebuild, PlatformRebuild, RebuildReport, ToolchainDifference
from imagelock.inputs.fetching import fetch_lock
from imagelock.lock.staleness import check_fresh
from imagelock.oci.image import Image
from imagelock.oci.layout_read import read_layout
from imagelock.oci.blobio import INDEX_TYPES
from imagelock.oci.layout import index_bytes
from imagelock.oci.locations import index_platforms, read_image, registry_form
from imagelock.rebuild.sandboxed import build_in_netns, build_in_sandbox
from imagelock.sandbox.bwrap import require

NO_SANDBOX = "none (--no-sandbox)"
MAX_INDEX_BYTES = 4 << 20


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
    if report.platforms is not None:
        lines.append("every platform (the comparison above is " + report.platform + "'s):")
        lines += [f"  {p.platform:<14}{p.verdict.upper():<20}{p.rebuilt}"
                  + (f" ({p.differences} differences)" if p.differences else "")
                  for p in report.platforms]
    if report.index is not None:
        lines.append(f"  {'index':<14}{report.index.verdict.upper():<20}{report.index.rebuilt}"
                     + ("" if report.index.published in (None, report.index.rebuilt)
                        else f" (published: {report.index.published})"))
    if report.attestation is not None:
        passed = report.verdict in ("reproduced", "reproduced-content")
        if report.platforms is not None:
            lines.append(f"signed a VSA for each platform compared (and the index, when "
                         f"reproduced) -> {report.attestation}")
        else:
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
    """Fetch, build in isolation (unless `sandbox` is False), and compare `platform` (default
    the lock's first) with `image` (or with the lock's digests); `workdir` holds the rebuilt and
    pulled images. With `report_html`, also write the comparison as one self-contained page
    (while both images are still at hand for its text diffs)."""
    if platform == "all":
        raise InputError("--platform all rebuilds a lock (rebuild LOCK --platform all); a rebuild "
                         "from an image reference takes one platform", field="--platform",
                         hint="rebuild each platform: --platform linux/amd64, then linux/arm64")
    lock = read_lock(lock_path)
    plat = platform or lock.platforms[0]
    return rebuild_platforms(lock_path, [plat], image=image, store=store, cli_mirrors=cli_mirrors,
                             offline=offline, sandbox=sandbox, workdir=workdir, insecure=insecure,
                             keep=keep, diffoscope=diffoscope, report_html=report_html)[0]


def rebuild_platforms(
    lock_path: Path,
    platforms: list[str],
    *,
    image: str | None,
    store: Store,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    offline: bool,
    sandbox: bool,
    workdir: Path,
    insecure: bool = False,
    keep: Path | None = None,
    diffoscope: Path | None = None,
    report_html: Path | None = None,
) -> list[RebuildResult]:
    """One rebuild (a build makes every platform of the lock), each of `platforms` compared
    with its manifest in `image` (or with the lock's digests): a result per platform."""
    lock = read_lock(lock_path)
    notes = []
    if check_fresh(lock, lock_path) is None:
        notes.append(f"spec {lock.spec} not found beside the lock: staleness not checked")
    for plat in platforms:
        if plat not in lock.platforms:
            raise InputError(f"the lock has no platform {plat}", field="--platform",
                             hint=f"choose one of {lock.platforms}, or all")
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
    results = []
    for plat in platforms:
        sub = workdir / plat.replace("/", "-") if len(platforms) > 1 else workdir
        plat_notes = list(notes)
        rebuilt = read_layout(out, platform=plat)
        published = None
        if image is not None:
            published = read_image(image, platform=plat, workdir=sub / "published",
                                   insecure=insecure)
        with progress.phase("compare"):
            report = compare_images(rebuilt, published, lock.expected.get(plat))
            if diffoscope is not None and published is not None and report.verdict == "mismatch":
                report = run_diffoscope(report, rebuilt, published,
                                        diffoscope if len(platforms) == 1 else diffoscope / sub.name)
            if report_html is not None and len(platforms) == 1:
                write_report_html(report, report_html, rebuilt=rebuilt, published=published,
                                  title=f"{lock.image.name}:{lock.image.tag} ({plat})")
        plat_notes += [n for n in notes_for(toolchain, report.verdict) if n not in plat_notes]
        if keep is not None:
            kept = keep_images(rebuilt, published, keep if len(platforms) == 1 else keep / sub.name)
            plat_notes.append("kept " + ", ".join(f"{k}: {v}" for k, v in kept.items()))
        full = RebuildReport(**dict(report), sandbox=isolation, image=image,
                             lock_file=str(lock_path), platform=plat, rebuild_notes=plat_notes,
                             toolchain=[ToolchainDifference.model_validate(d.as_json())
                                        for d in toolchain])
        results.append(RebuildResult(full, lock, lock_path, rebuilt, published))
    return results


_WORST = ("error", "mismatch", "reproduced-content", "reproduced")


def index_check(results: list[RebuildResult], image: str | None, *,
                insecure: bool = False) -> IndexRebuild:
    """The image index of a rebuild of every platform, against the published one: the same
    index digest means every manifest in it is the same, bit for bit."""
    rebuilt = sha256_digest(index_bytes([r.rebuilt for r in results]))
    published = None if image is None else published_index_digest(image, insecure=insecure)
    if image is None:
        same = all(r.verdict == "reproduced" for r in results)
    else:
        same = published == rebuilt
    return IndexRebuild(verdict="reproduced" if same else "mismatch", rebuilt=rebuilt,
                        published=published)


def published_index_digest(image: str, *, insecure: bool = False) -> str | None:
    """The digest of the image index `image` names: a local layout listing several platforms
    (its index.json's), or a registry reference naming an index; None for one image."""
    form = registry_form(image)
    if form.startswith("docker://"):
        # lazy: the registry client (requests) loads only for registry references
        from imagelock.oci.registry.transfer import resolve

        found = resolve(form.removeprefix("docker://"), insecure=insecure)
        return found.digest if found.media_type in INDEX_TYPES else None
    if not index_platforms(image):
        return None
    root = Path(form.removeprefix("oci:"))
    return sha256_digest(read_limited(root / "index.json", limit=MAX_INDEX_BYTES,
                                      what="the layout's index.json"))


def summary(results: list[RebuildResult], index: IndexRebuild) -> RebuildReport:
    """One report for a rebuild of every platform: the first platform not reproduced (else the
    first) in full, every platform's verdict, the index; the worst verdict."""
    worst = min((r.verdict for r in results), key=_WORST.index)
    main = next((r for r in results if r.verdict != "reproduced"), results[0])
    rows = [PlatformRebuild(platform=r.report.platform, verdict=r.report.verdict,
                            rebuilt=r.rebuilt.manifest_digest,
                            published=r.published.manifest_digest if r.published else None,
                            differences=len(r.report.differences))
            for r in results]
    return main.report.model_copy(update={"verdict": worst, "platforms": rows, "index": index})


def sandbox_unavailable_hint(e: ToolUnavailable) -> ToolUnavailable:
    e.hint = (e.hint or "") + "; or pass --no-sandbox to rebuild without isolation (the result says so)"
    return e


def scratch() -> AbstractContextManager[Path]:
    """The rebuild's working directory; a killed rebuild's is removed by the next one."""
    return scratch_dir("imagelock-rebuild-")
