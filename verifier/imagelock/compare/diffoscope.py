"""Handing a mismatch to diffoscope, and keeping both images for the user: the files compared are extracted from verified blobs only."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from imagelock.compare.blobs import ContentBudget, LimitExceeded, uncompressed_size
from imagelock.compare.extract import extract_files, safe_relpath
from imagelock.core.errors import InputError, IntegrityError
from imagelock.formats.report import (
    DiffoscopePair,
    DiffoscopeResult,
    Report,
)
from imagelock.oci.image import Blob, Image
from imagelock.oci.layout import write_layout

DIFFOSCOPE_TIMEOUT = 300  # seconds for one diffoscope run
DIFFOSCOPE_PAIRS = 50  # file pairs handed to diffoscope at most


def render_diffoscope(res: DiffoscopeResult) -> list[str]:
    if not res.available or res.note:
        return [f"diffoscope: {res.note}"]
    lines = [f"diffoscope: {len(res.pairs)} file(s) compared, output in {res.out_dir}"]
    for p in res.pairs:
        lines.append(f"  layer {p.layer} {p.path}: {p.output}")
        lines += ["    " + x for x in p.excerpt.splitlines()[:10]]
    return lines


def run_diffoscope(report: Report, rebuilt: Image, published: Image, out_dir: Path, *,
                   max_pairs: int = DIFFOSCOPE_PAIRS) -> Report:
    """Extract each file whose content differs from both images into `out_dir` (which must be
    empty or absent) and run diffoscope on each pair; returns the report with `diffoscope` set.

    Nothing is written outside `out_dir`, no link is followed or created. Without diffoscope
    on PATH nothing is extracted and the result says how to install it.
    """
    def done(res: DiffoscopeResult) -> Report:
        return report.model_copy(update={"diffoscope": res})

    tool = shutil.which("diffoscope")
    if tool is None:
        return done(DiffoscopeResult(available=False, note="diffoscope is not installed: "
                                     "`apt-get install diffoscope-minimal` (Debian, Ubuntu) or "
                                     "`pip install diffoscope`"))
    if report.got_side != "published":
        return done(DiffoscopeResult(available=True, note="diffoscope needs the published image"))
    changed: dict[int, set[str]] = {}
    for d in report.differences:
        if (d.scope == "layer" and d.field == "content" and d.change == "changed" and d.path
                and sum(len(v) for v in changed.values()) < max_pairs):
            changed.setdefault(d.layer or 0, set()).add(d.path)
    if not changed:
        return done(DiffoscopeResult(available=True, note="no file's content differs"))
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir} is not empty", hint="give a new or empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs: list[DiffoscopePair] = []
    budget = ContentBudget(lambda: uncompressed_size(rebuilt.layers))
    for layer, paths in sorted(changed.items()):
        sub = Path(f"layer-{layer}")
        a = extract_files(rebuilt.layers[layer], paths, out_dir / "rebuilt" / sub, "rebuilt")
        try:
            b = extract_files(published.layers[layer], paths, out_dir / "published" / sub,
                              "published", budget, layer)
        except LimitExceeded as e:
            return done(DiffoscopeResult(available=True, out_dir=str(out_dir), pairs=pairs,
                                         note=f"layer {layer}: reading stopped at a limit: "
                                         f"{e.reason}"))
        for path in sorted(paths):
            if path not in a or path not in b:
                continue
            out = out_dir / "diffoscope" / sub / f"{safe_relpath(path)}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            pair = DiffoscopePair(layer=layer, path=path, expected_file=str(a[path]),
                                  got_file=str(b[path]), output=str(out))
            try:
                r = subprocess.run([tool, "--no-progress", "--text", str(out), str(a[path]),
                                    str(b[path])], check=False, capture_output=True, text=True,
                                   timeout=DIFFOSCOPE_TIMEOUT, stdin=subprocess.DEVNULL)
                excerpt = "\n".join(out.read_text(errors="replace").splitlines()[:20]) \
                    if out.is_file() else r.stderr.strip()[:2000]
                pair = pair.model_copy(update={"exit_code": r.returncode, "excerpt": excerpt})
            except subprocess.TimeoutExpired:
                pair = pair.model_copy(update={"excerpt": f"timed out after "
                                               f"{DIFFOSCOPE_TIMEOUT} s"})
            pairs.append(pair)
    return done(DiffoscopeResult(available=True, out_dir=str(out_dir), pairs=pairs))


def keep_images(rebuilt: Image, published: Image | None, dest: Path) -> dict[str, Path]:
    """Write the rebuild (and the published image) as OCI layouts `dest/rebuilt` and
    `dest/published`, so they can be inspected with skopeo, umoci or diffoscope later."""
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=dest) as tmp:
        for image, side in ((rebuilt, "rebuilt"), (published, "published")):
            if image is None:
                continue
            staged = _with_blob_files(image, Path(tmp) / side)
            write_layout([staged], dest / side)
            out[side] = dest / side
    return out


def _with_blob_files(image: Image, staging: Path) -> Image:
    """The image with every blob in a file (write_layout links or copies files), streamed and
    checked against its digest for blobs that only had an opener (a registry)."""
    layers: list[Blob] = []
    for blob in image.layers:
        if blob.path is not None:
            layers.append(blob)
            continue
        staging.mkdir(parents=True, exist_ok=True)
        path = staging / blob.digest.split(":", 1)[1]
        h = hashlib.sha256()
        with blob.open() as src, open(path, "wb") as dst:
            while data := src.read(1 << 20):
                h.update(data)
                dst.write(data)
        if "sha256:" + h.hexdigest() != blob.digest:
            raise IntegrityError(f"blob {blob.digest} read as sha256:{h.hexdigest()}",
                                 hint="fetch the image again")
        layers.append(Blob(blob.digest, blob.size, blob.media_type, path=path))
    return Image(manifest=image.manifest, config=image.config, layers=layers, name=image.name,
                 tag=image.tag, platform=image.platform)
