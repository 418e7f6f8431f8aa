"""Hermetic build steps: run each command in the assembled image root through overlayfs, inside
the rootfs-mode sandbox (no network, clean environment, SOURCE_DATE_EPOCH, fixed host name, real
uids), and turn what it changed into a layer: whiteouts for deletions, known run-to-run noise
dropped, every timestamp the lock's (the layer writer sets it).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.formats.spec import Step
from imagelock.inputs.steps.rootfs import apply_upper, materialize
from imagelock.sandbox.bwrap import overlay_run, upper_to_changes
from imagelock.tar.entry import Entry, FileContent

# Files that differ from run to run for reasons that are not the step's output
# (docs/field-notes.md, "Files that vary run to run"): left out of step layers.
VARYING = (
    "var/cache/ldconfig/aux-cache",
    "var/log/*",
    "var/cache/debconf/*-old",
    "var/cache/man/*",
    "var/cache/fontconfig/*",
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    "tmp/*",
    "run/*",
    "root/.cache/*",
    "**/__pycache__/*.cpython-*.pyc.*",
)

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
FAKETIME_IN_SANDBOX = "/.imagelock-faketime.so"


def _varying(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pat) for pat in VARYING)


def _faketime(env: dict[str, str]) -> list[tuple[Path, str]]:
    """`imagelock check` shifts the wall clock of steps too (IMAGELOCK_STEP_FAKETIME): the host's
    libfaketime is preloaded into the step, as reprotest does."""
    shift = os.environ.get("IMAGELOCK_STEP_FAKETIME")
    if not shift or not FAKETIME_LIB.is_file():
        return []
    env["LD_PRELOAD"] = FAKETIME_IN_SANDBOX
    env["FAKETIME"] = shift
    return [(FAKETIME_LIB, FAKETIME_IN_SANDBOX)]


def step_entries(upper: Path, lower: Path, step: Step) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The layer entries of one step's changes, and the changes (for applying to the root)."""
    changes = [(c.path, c.kind) for c in upper_to_changes(upper, lower)]
    entries: list[Entry] = []
    seen_inodes: dict[tuple[int, int], str] = {}
    kept: list[tuple[str, str]] = []
    for path, kind in changes:
        if _varying(path) or path == FAKETIME_IN_SANDBOX.lstrip("/"):
            continue
        parent, _, name = path.rpartition("/")
        if name.startswith(".wh.") and kind not in ("deleted", "opaque"):
            raise UnsafeContentError(
                f"step {step.name!r} created /{path}: runtimes read .wh. names as deletions",
                hint="rename it: names starting with .wh. are reserved in image layers")
        kept.append((path, kind))
        prefix = parent + "/" if parent else ""
        if kind == "deleted":
            entries.append(Entry(f"{prefix}.wh.{name}", "whiteout", 0o644))
            continue
        if kind == "opaque":
            entries.append(Entry(f"{path}/.wh..wh..opq", "whiteout", 0o644))
            continue
        p = upper / path
        st = p.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            entries.append(Entry(path, "dir", mode, st.st_uid, st.st_gid))
        elif stat.S_ISLNK(st.st_mode):
            entries.append(Entry(path, "symlink", 0o777, st.st_uid, st.st_gid, linkname=os.readlink(p)))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                entries.append(Entry(path, "hardlink", mode, st.st_uid, st.st_gid,
                                     linkname=seen_inodes[key]))
            else:
                seen_inodes[key] = path
                entries.append(Entry(path, "file", mode, st.st_uid, st.st_gid,
                                     content=FileContent(p, st.st_size)))
        else:
            raise UnsafeContentError(
                f"step {step.name!r} created /{path}, a device node, FIFO or socket",
                hint="images carry only files, directories and links")
    return entries, kept


def run_steps(
    steps: list[Step],
    below: list[list[Entry]],
    workdir: Path,
    *,
    source_date_epoch: int,
    stage_packages: Callable[[str], list[Entry]] = lambda name: [],
) -> dict[str, list[Entry]]:
    """Run `steps` on the image made of `below` (layers, bottom first); one layer per step.

    A `stage: build` step runs on a copy of the image so far with `stage_packages(step name)`
    added, and keeps only its `outputs`. The uppers stay under `workdir` until the caller has
    written the layers.
    """
    root = workdir / "rootfs"
    if root.exists():
        shutil.rmtree(root)
    materialize(below, root)
    out: dict[str, list[Entry]] = {}
    for step in steps:
        env = dict(step.env)
        binds = _faketime(env)
        lower = root
        if step.stage == "build":
            lower = workdir / f"stage-{step.name}"
            if lower.exists():
                shutil.rmtree(lower)
            subprocess.run(["cp", "-a", "--", str(root), str(lower)], check=True)
            materialize([stage_packages(step.name)], lower)
        try:
            upper = overlay_run(lower, step.argv(), cwd=step.workdir, env=env,
                                source_date_epoch=source_date_epoch, ro_binds=binds,
                                timeout=step.timeout, scratch=workdir)
        except InputError as e:
            e.message = f"step {step.name!r}: {e.message}"
            raise
        entries, kept = step_entries(upper, lower, step)
        if step.stage == "build":
            entries, kept = only_outputs(step, entries, kept)
            shutil.rmtree(lower)
        apply_upper(root, upper, kept)
        out[step.layer or step.name] = entries
    return out


def only_outputs(step: Step, entries: list[Entry], changes: list[tuple[str, str]]
                 ) -> tuple[list[Entry], list[tuple[str, str]]]:
    """A build stage's entries and changes reduced to its `outputs` (and the directories that
    lead to them); an output the step did not produce is an error."""
    outputs = [o.strip("/") for o in step.outputs or []]
    dirs = {e.path for e in entries if e.type == "dir"}

    def wanted(path: str, leads_to: bool) -> bool:
        return any(path == o or path.startswith(o + "/") or (leads_to and o.startswith(path + "/"))
                   for o in outputs)

    def target(e: Entry) -> tuple[str, bool]:
        parent, _, name = e.path.rpartition("/")
        if e.type != "whiteout":
            return e.path, e.type == "dir"
        if name == ".wh..wh..opq":
            return parent, False  # emptying a directory is kept only inside an output
        return f"{parent}/{name[len('.wh.'):]}".lstrip("/"), False

    kept_entries = [e for e in entries if wanted(*target(e))]
    kept = [(p, k) for p, k in changes if wanted(p, k != "opaque" and p in dirs)]
    produced = {e.path for e in kept_entries if e.type != "whiteout"}
    for o in outputs:
        if o not in produced and not any(p.startswith(o + "/") for p in produced):
            raise InputError(f"step {step.name!r}: output /{o} was not produced by the step",
                             field=f"steps ({step.name}).outputs",
                             hint="name paths the step creates or changes")
    return kept_entries, kept
