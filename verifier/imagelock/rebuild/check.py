"""`imagelock check`: the vendor's gate before publishing. Build the lock several times under
reprotest-style variations of the host and say which variation changes which file.

Every build is a real `imagelock build` in a fresh process, from a fresh copy of the project, so
the variations reach everything a user's build would see: wall clock (libfaketime, also inside
build steps), time zone, locale, umask, host name (a UTS namespace), context file creation order
and mtimes, HOME, build path and CPU count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.compare.images import compare_images
from imagelock.core.errors import EXIT_OK, EXIT_VERIFICATION_FAILED, InputError, ToolUnavailable
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.results import CheckDifference, CheckFinding, CheckResult
from imagelock.inputs.fetching import fetch_lock
from imagelock.lock.staleness import check_fresh
from imagelock.oci.layout_read import read_layout


@dataclass(frozen=True)
class Variation:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    prefix: tuple[str, ...] = ()  # a command the build runs under
    shell: str = ""  # a shell snippet run before exec (inside the UTS namespace)
    reorder_context: bool = False
    deeper_path: bool = False
    tools: tuple[str, ...] = ()


VARIATIONS: dict[str, Variation] = {v.name: v for v in (
    Variation("wall-clock", env={"IMAGELOCK_STEP_FAKETIME": "+1100d"},
              prefix=("faketime", "-f", "+1100d"), tools=("faketime",)),
    Variation("timezone", env={"TZ": "Pacific/Kiritimati"}),
    Variation("locale", env={"LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}),
    Variation("umask", shell="umask 002"),
    Variation("hostname", shell="hostname imagelock-check-variant", tools=("unshare",)),
    Variation("file-order", reorder_context=True),
    Variation("home", env={"HOME": "/tmp/imagelock-check-home"}),
    Variation("build-path", deeper_path=True),
    Variation("cpu-count", prefix=("taskset", "-c", "0"), tools=("taskset",)),
)}


def _copy_project(lock_path: Path, dest: Path, *, reorder: bool) -> Path:
    """A fresh copy of the lock's directory (spec, lock, context); with `reorder`, every file
    created in reverse order with other mtimes, as another checkout would."""
    src = lock_path.parent
    if not reorder:
        shutil.copytree(src, dest, symlinks=True)
        return dest / lock_path.name
    items = sorted(src.rglob("*"), key=lambda p: os.fsencode(p), reverse=True)
    dest.mkdir(parents=True)
    for p in sorted((i for i in items if i.is_dir() and not i.is_symlink()), key=lambda p: len(p.parts)):
        (dest / p.relative_to(src)).mkdir(parents=True, exist_ok=True)
    for n, p in enumerate(i for i in items if not (i.is_dir() and not i.is_symlink())):
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            os.symlink(os.readlink(p), target)
        else:
            shutil.copyfile(p, target)
            os.chmod(target, p.stat().st_mode & 0o7777)
            os.utime(target, (1_000_000_000 + n * 7919, 1_000_000_000 + n * 7919))
    return dest / lock_path.name


def _build(lock_copy: Path, out: Path, store: Path, variations: Sequence[Variation]) -> None:
    env = dict(os.environ)
    env["IMAGELOCK_STORE"] = str(store)
    env["IMAGELOCK_SOURCE_BUILDS"] = "always"  # every variation builds the source builds again
    shell = []
    prefix: list[str] = []
    for v in variations:
        env.update(v.env)
        if v.shell:
            shell.append(v.shell)
        prefix += list(v.prefix)
    if "HOME" in env and env["HOME"].startswith("/tmp/imagelock-check-home"):
        Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    cmd = [*prefix, sys.executable, "-m", "imagelock.cli", "build", str(lock_copy), "-o", str(out),
           "--offline"]
    if shell:
        unshare = ["unshare", "--uts"] if any(v.name == "hostname" for v in variations) else []
        cmd = [*unshare, "sh", "-c", " && ".join(shell) + ' && exec "$@"', "sh", *cmd]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out.parent,
                       stdin=subprocess.DEVNULL)
    # Exit 1 only says the result differs from the lock's expected digests: what check studies.
    built = r.returncode in (EXIT_OK, EXIT_VERIFICATION_FAILED)
    if not built or not (out / "index.json").is_file():
        names = ", ".join(v.name for v in variations) or "none"
        raise InputError(f"a check build (variations: {names}) failed:\n"
                         f"{(r.stderr or r.stdout).strip()}",
                         hint="the lock must build before its reproducibility can be checked")


def _differences(a: Path, b: Path) -> list[CheckDifference]:
    rep = compare_images(read_layout(a), read_layout(b), None)
    if rep.verdict in ("reproduced", "reproduced-content"):
        return []
    return [CheckDifference(path=d.path, field=d.field, category=d.category, layer=d.layer_name)
            for d in rep.differences if not d.derived]


def check(
    lock_path: Path,
    *,
    store: Store,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    builds: int = 2,
    names: Sequence[str] | None = None,
) -> CheckResult:
    """Fetch the lock's inputs, then build it `builds` times under the variations `names`
    (default: all) and say which variation changes which file."""
    unknown = [n for n in names or [] if n not in VARIATIONS]
    if unknown:
        raise InputError(f"unknown variation {', '.join(unknown)}",
                         hint="choose from " + ", ".join(VARIATIONS))
    lock = read_lock(lock_path)
    check_fresh(lock, lock_path, require_spec=False)
    if builds < 2:
        raise InputError("check needs at least 2 builds", hint="--builds 2 or more")
    chosen = [VARIATIONS[n] for n in (names or list(VARIATIONS))]
    for v in chosen:
        for tool in v.tools:
            if shutil.which(tool) is None:
                raise ToolUnavailable(f"{tool} is needed for the {v.name!r} variation",
                                      hint="./scripts/setup installs it (or drop the variation)")
    fetch_lock(lock, lock_path, store, cli_mirrors=cli_mirrors or {}, offline=False)
    with tempfile.TemporaryDirectory(prefix="imagelock-check-") as tmp:
        t = Path(tmp)

        def build(tag: str, variations: Sequence[Variation]) -> Path:
            deeper = any(v.deeper_path for v in variations)
            root = t / tag / ("a/much/deeper/build/path" if deeper else "p")
            copy = _copy_project(lock_path, root / "project",
                                 reorder=any(v.reorder_context for v in variations))
            out = root / "out"
            _build(copy, out, store.root, variations)
            return out

        control = build("control", [])
        findings: list[CheckFinding] = []
        all_same = True
        for i in range(builds - 1):
            if _differences(control, build(f"all-{i}", chosen)):
                all_same = False
        if not all_same:
            again = _differences(control, build("control-2", []))
            if again:
                findings.append(CheckFinding(variation="every-build", differences=again))
            noise = {(d.path, d.field) for d in again}
            for v in chosen:
                diffs = [d for d in _differences(control, build(f"only-{v.name}", [v]))
                         if (d.path, d.field) not in noise]
                if diffs:
                    findings.append(CheckFinding(variation=v.name, differences=diffs))
        return CheckResult(reproducible=all_same, builds=builds,
                           control_manifest_digest=read_layout(control).manifest_digest,
                           variations=[v.name for v in chosen], findings=findings)
