"""The build stage of a source build: an sdist built into a wheel with the image's own Python, in
the rootfs sandbox, with nothing of the host but what the lock pins.

The stage's root is assembled from pins only: the image's Debian packages plus the build's own
(`build_debian`: compilers, `-dev` packages, the Essential set), the build requirements' wheels
under `/build/env` (on PYTHONPATH, never in the image's site-packages), pypa's `pyproject_hooks`
under `/build/tools` (it calls the PEP 517 backend in a subprocess, as pip and `build` do), and
the sdist unpacked at the fixed path `/build/src`. The build runs there with no network, a clean
environment, SOURCE_DATE_EPOCH, PYTHONHASHSEED=0, PYTHONDONTWRITEBYTECODE=1 and CFLAGS that map
the build path away (`-ffile-prefix-map=/build/src=.`), so the wheel depends on the pins alone.
Only the wheel leaves the stage; the stage is thrown away.

`imagelock lock` builds once (`lock_builder`) and pins the wheel's sha256. A `build` takes the
wheel from the store when the lock-time build left it there (or from the cache of built wheels,
keyed by every input of the stage); a `rebuild` and `imagelock check` build it again
(IMAGELOCK_SOURCE_BUILDS=always) and a wheel with other bytes stops the build naming the
differing members.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyproject_hooks
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from imagelock.core.digest import CHUNK
from imagelock.core.scratch import scratch_dir
from imagelock.core.errors import InputError, UnsafeContentError, VerificationFailed
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianPackagePin
from imagelock.formats.lock import Lock
from imagelock.formats.python_build import BUILD_RULES, SourceBuildPin
from imagelock.inputs.debian.root import debian_entries
from imagelock.inputs.python.wheels import wheel_entries
from imagelock.inputs.steps.rootfs import materialize
from imagelock.inputs.steps.run import _faketime
from imagelock.lock.python_sources import BuildOutcome, BuildPlan
from imagelock.sandbox.bwrap import StepFailed, rootfs_sandbox
from imagelock.tar.entry import BytesContent, Entry, FileContent, normalize_path
from imagelock.tar.unpack import unpack_tar

SRC = "/build/src"
ENV_DIR = "/build/env"
OUT = "/build/out"
TOOLS = "/build/tools"
HOME = "/build/home"
RESULT = ".imagelock-result.json"
CACHE = "derived/python-builds"  # in the store: built wheels by the digest of their stage
MODE_ENV = "IMAGELOCK_SOURCE_BUILDS"  # "always": build again, whatever the store holds
TIMEOUT = 3600.0
_SHOWN = 5

# Runs under the image's interpreter inside the stage; writes its answer to /build/out.
_DRIVER = r"""
import json, subprocess, sys
sys.path.insert(0, "/build/tools")
from pyproject_hooks import BuildBackendHookCaller, BackendUnavailable
spec = json.loads(sys.argv[1])
def done(**kw):
    with open("/build/out/.imagelock-result.json", "w") as f:
        json.dump(kw, f)
hooks = BuildBackendHookCaller("/build/src", spec["backend"], spec["backend_path"] or None,
                               python_executable=sys.executable)
try:
    requires = hooks.get_requires_for_build_wheel({})
    if spec["mode"] == "requires":
        done(requires=requires)
    else:
        done(requires=requires, wheel=hooks.build_wheel("/build/out", {}))
except BackendUnavailable as e:
    done(error="backend", detail=(e.traceback or "")[-3000:])
except subprocess.CalledProcessError:
    sys.exit(1)  # the hook's own output (on stderr) says why; ours would only bury it
"""


class BuildBackendMissing(InputError):
    """The build backend (or a requirement it asks for) is not among the pinned build wheels."""


class SourceBuildFailed(StepFailed):
    """The backend failed in the sandbox (a build that needs the network fails here)."""


class WheelNotReproduced(VerificationFailed):
    """A source build gave a wheel with other bytes than the lock's."""


def stage_environment(source_date_epoch: int) -> dict[str, str]:
    """The build stage's environment besides the sandbox's fixed one (spec/README.md)."""
    flags = f"-ffile-prefix-map={SRC}=. -fdebug-prefix-map={SRC}=."
    return {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ENV_DIR,
            "CFLAGS": flags, "CXXFLAGS": flags, "HOME": HOME, "TMPDIR": "/tmp",
            "SOURCE_DATE_EPOCH": str(source_date_epoch), "PIP_NO_INDEX": "1"}


def stage_digest(plan: BuildPlan, image_debian: Sequence[DebianPackagePin], interpreter: str,
                 python_version: str, source_date_epoch: int) -> str:
    """Every input of a build stage, as one digest: the key of the cache of built wheels."""
    doc = {"rules": BUILD_RULES, "sdist": plan.sdist.sha256, "backend": plan.backend,
           "backend_path": plan.backend_path, "hooks": pyproject_hooks.__version__,
           "wheels": sorted(w.sha256 for w in plan.build_wheels),
           "debian": sorted({p.sha256 for p in [*image_debian, *plan.build_debian]}),
           "interpreter": interpreter, "python": python_version, "sde": source_date_epoch}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _tool_entries() -> list[Entry]:
    """pyproject_hooks, the imagelock machine's copy (pure Python, any 3.7+), for the stage."""
    base = Path(pyproject_hooks.__file__).parent
    out = [Entry(normalize_path(TOOLS), "dir", 0o755)]
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = Path(dirpath).relative_to(base.parent).as_posix()
        out.append(Entry(normalize_path(f"{TOOLS}/{rel}"), "dir", 0o755))
        for name in sorted(filenames):
            if name.endswith(".pyc"):
                continue
            data = (Path(dirpath) / name).read_bytes()
            out.append(Entry(normalize_path(f"{TOOLS}/{rel}/{name}"), "file", 0o644,
                             content=BytesContent(data)))
    return out


def _zip_entries(path: Path, staging: Path, archive: str) -> Iterator[Entry]:
    """The members of a .zip sdist below /build/src (first directory stripped), refusing
    absolute paths and `..`; links are not kept (zip sdists have none)."""
    staging.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as z:
        for n, info in enumerate(z.infolist()):
            parts = [p for p in info.filename.split("/") if p not in ("", ".")]
            if info.filename.startswith("/") or ".." in parts:
                raise UnsafeContentError(f"{archive}: member {info.filename!r} leaves the archive")
            if len(parts) < 2:
                continue
            dest = normalize_path(f"{SRC}/{'/'.join(parts[1:])}")
            if info.is_dir():
                yield Entry(dest, "dir", 0o755)
                continue
            staged = staging / f"{n:08d}"
            with z.open(info) as src, open(staged, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            executable = (info.external_attr >> 16) & 0o111
            yield Entry(dest, "file", 0o755 if executable else 0o644,
                        content=FileContent(staged, info.file_size))


def _sdist_entries(plan: BuildPlan, store: Store, staging: Path) -> list[Entry]:
    path = store.verify(plan.sdist.sha256, plan.sdist.size, f"sdist {plan.sdist.filename}")
    name = plan.sdist.filename
    if name.endswith(".zip"):
        try:
            return list(_zip_entries(path, staging, name))
        except zipfile.BadZipFile as e:
            raise InputError(f"sdist {name} is not a readable zip archive: {e}") from None
    with open(path, "rb") as f:
        entries = list(unpack_tar(f, dest=SRC, strip=1, staging=staging, archive=name))
    # An sdist's owners are its author's: the stage's files are root's, like the image's.
    return [Entry(e.path, e.type, e.mode & 0o755 if e.type != "symlink" else e.mode, 0, 0,
                  e.linkname, e.content) for e in entries]


def _stage_root(plan: BuildPlan, image_debian: Sequence[DebianPackagePin], store: Store,
                work: Path, *, interpreter: str, python_version: str, sde: int) -> Path:
    debian = debian_entries([*image_debian, *plan.build_debian], store, work / "debian",
                            source_date_epoch=sde)
    wheels, _, _ = wheel_entries(list(plan.build_wheels), store, work / "wheels",
                                 site_packages=ENV_DIR, scripts_dir=f"{ENV_DIR}/bin",
                                 interpreter=interpreter, python_version=python_version,
                                 prefix=f"{ENV_DIR}/prefix")
    dirs = [Entry(normalize_path(d), "dir", 0o755) for d in ("/build", ENV_DIR, OUT, HOME)]
    root = work / "root"
    materialize([debian.entries(), _with_parents([*dirs, *wheels, *_tool_entries(),
                                                  *_sdist_entries(plan, store, work / "sdist")])],
                root)
    return root


def _with_parents(entries: list[Entry]) -> list[Entry]:
    """`entries` plus a 0755 directory for every parent none of them declares."""
    have = {e.path for e in entries}
    extra: dict[str, Entry] = {}
    for e in entries:
        parent = e.path.rpartition("/")[0]
        while parent and parent not in have and parent not in extra:
            extra[parent] = Entry(parent, "dir", 0o755)
            parent = parent.rpartition("/")[0]
    return [*extra.values(), *entries]


def _run(root: Path, plan: BuildPlan, mode: str, interpreter: str, sde: int) -> dict[str, object]:
    env = stage_environment(sde)
    binds = _faketime(env)  # `imagelock check` shifts the build's clock too
    box = rootfs_sandbox(root, env=env, source_date_epoch=sde, ro_binds=binds)
    arg = json.dumps({"backend": plan.backend, "backend_path": plan.backend_path, "mode": mode})
    result = root / OUT.lstrip("/") / RESULT
    if result.exists():
        result.unlink()
    r = box.run([interpreter, "-c", _DRIVER, arg], SRC, timeout=TIMEOUT)
    got: dict[str, object] = {}
    if result.is_file() and not result.is_symlink() and result.stat().st_size < 1 << 20:
        try:
            got = json.loads(result.read_text())
        except ValueError:
            got = {}
    if got.get("error") == "backend":
        raise BuildBackendMissing(
            f"the build backend {plan.backend!r} of {plan.sdist.filename} cannot be imported "
            "from the pinned build wheels ("
            + (", ".join(w.filename for w in plan.build_wheels) or "none") + "): "
            + (str(got.get("detail", "")).strip().splitlines() or ["no detail"])[-1],
            field=f"python_builds ({plan.name})",
            hint="lock again (`imagelock lock`): the lock's build wheels must provide the "
            "backend its pyproject.toml names")
    if r.returncode != 0 or not isinstance(got.get("requires"), list):
        tail = (r.stderr or b"").decode(errors="replace").strip().splitlines()[-40:]
        out = (r.stdout or b"").decode(errors="replace").strip().splitlines()[-10:]
        raise SourceBuildFailed(
            f"building {plan.sdist.filename} failed in the sandbox (exit {r.returncode}; no "
            "network, pinned inputs only):\n  " + "\n  ".join(out + tail or ["no output"]),
            field=f"python_builds ({plan.name})",
            hint="a build that downloads (a setup_requires, a fetched library) cannot work "
            "here: pin what it needs (build_requires_debian, or a build requirement with a "
            "wheel); no wheel from an index is used in its place")
    return got


def _unmet(requires: Sequence[str], plan: BuildPlan) -> list[str]:
    have = {w.name: w.version for w in plan.build_wheels}
    out = []
    for r in requires:
        try:
            req = Requirement(r)
        except InvalidRequirement:
            out.append(r)
            continue
        v = have.get(canonicalize_name(req.name))
        if v is None or not req.specifier.contains(v, prereleases=True):
            out.append(r)
    return out


def build_plan(plan: BuildPlan, image_debian: Sequence[DebianPackagePin], store: Store,
               workdir: Path, *, interpreter: str, python_version: str,
               source_date_epoch: int) -> BuildOutcome:
    """Build `plan` in a fresh stage under `workdir`; the wheel is left in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stage-", dir=workdir))
    try:
        root = _stage_root(plan, image_debian, store, work, interpreter=interpreter,
                           python_version=python_version, sde=source_date_epoch)
        asked = _run(root, plan, "requires", interpreter, source_date_epoch)
        requires = [str(r) for r in asked["requires"]]  # type: ignore[attr-defined]
        if _unmet(requires, plan):
            return BuildOutcome(requires=requires)
        got = _run(root, plan, "wheel", interpreter, source_date_epoch)
        name = str(got.get("wheel", ""))
        built = root / OUT.lstrip("/") / name
        if "/" in name or not name.endswith(".whl") or built.is_symlink() or not built.is_file():
            raise SourceBuildFailed(f"the backend of {plan.sdist.filename} reported no wheel "
                                    f"({name!r})", field=f"python_builds ({plan.name})")
        keep = Path(tempfile.mkdtemp(prefix="wheel-", dir=workdir)) / name
        shutil.move(built, keep)
        return BuildOutcome(requires=requires, wheel=keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def source_builder(store: Store) -> Callable[[Sequence[DebianPackagePin], str, str, int],
                                              Callable[[BuildPlan], BuildOutcome]]:
    """The factory `imagelock lock` hands to the lock stage (`lock.make.SourceBuilderFactory`)."""

    def factory(image_debian: Sequence[DebianPackagePin], interpreter: str, python_version: str,
                source_date_epoch: int) -> Callable[[BuildPlan], BuildOutcome]:
        return lock_builder(image_debian, store, interpreter=interpreter,
                            python_version=python_version, source_date_epoch=source_date_epoch)

    return factory


def lock_builder(image_debian: Sequence[DebianPackagePin], store: Store, *, interpreter: str,
                 python_version: str, source_date_epoch: int
                 ) -> Callable[[BuildPlan], BuildOutcome]:
    """The `builder` `imagelock lock` hands to the Python resolution: builds each plan once,
    reusing a wheel built before from exactly the same stage (the cache in the store)."""

    def build(plan: BuildPlan) -> BuildOutcome:
        digest = stage_digest(plan, image_debian, interpreter, python_version, source_date_epoch)
        cached = _cached(store, digest)
        if cached is not None and os.environ.get(MODE_ENV) != "always":
            return BuildOutcome(requires=list(plan.requires), wheel=cached)
        with scratch_dir("imagelock-source-build-") as work:
            outcome = build_plan(plan, image_debian, store, work, interpreter=interpreter,
                                 python_version=python_version,
                                 source_date_epoch=source_date_epoch)
            if outcome.wheel is None:
                return outcome
            return BuildOutcome(outcome.requires, _remember(store, digest, outcome.wheel))

    return build


def _cached(store: Store, digest: str) -> Path | None:
    d = store.root / CACHE / digest
    if not d.is_dir():
        return None
    wheels = [p for p in d.iterdir() if p.name.endswith(".whl") and p.is_file()
              and not p.is_symlink()]
    return wheels[0] if len(wheels) == 1 else None


def _remember(store: Store, digest: str, wheel: Path) -> Path:
    """Keep a built wheel in the cache (replacing an older build of the same stage); its path."""
    d = store.root / CACHE / digest
    tmp = Path(tempfile.mkdtemp(prefix="part-", dir=_mkdir(store.root / CACHE)))
    shutil.copyfile(wheel, tmp / wheel.name)
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
    try:
        os.replace(tmp, d)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process cached it first
    return d / wheel.name


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def plan_of(b: SourceBuildPin) -> BuildPlan:
    return BuildPlan(name=b.name, version=b.version, sdist=b.sdist, backend=b.backend,
                     backend_path=list(b.backend_path), requires=list(b.requires),
                     build_wheels=list(b.build_wheels), build_debian=list(b.build_debian))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def ensure_built(lock: Lock, platform: str, store: Store, workdir: Path) -> list[str]:
    """Put every source-built wheel of `platform` into the store, building what is missing (or
    everything, under IMAGELOCK_SOURCE_BUILDS=always); a wheel with other bytes than the lock's
    stops the build. Returns notes for the user."""
    builds = (lock.python_builds or {}).get(platform, [])
    inst = lock.python_install
    if not builds or inst is None:
        return []
    always = os.environ.get(MODE_ENV) == "always"
    image_debian = lock.debian[platform].packages if platform in lock.debian else []
    notes = []
    for b in builds:
        plan = plan_of(b)
        digest = stage_digest(plan, image_debian, inst.interpreter, inst.python_version,
                              lock.source_date_epoch)
        if not always:
            if store.has(b.wheel_sha256):
                continue
            cached = _cached(store, digest)
            if cached is not None and _sha256(cached) == b.wheel_sha256:
                store.add_file(cached, sha256=b.wheel_sha256, what=f"wheel {b.wheel}")
                continue
        outcome = build_plan(plan, image_debian, store, workdir / "source-builds",
                             interpreter=inst.interpreter, python_version=inst.python_version,
                             source_date_epoch=lock.source_date_epoch)
        if outcome.wheel is None:
            raise BuildBackendMissing(
                f"the build backend of {b.sdist.filename} asks for "
                f"{', '.join(_unmet(outcome.requires, plan))}, which the lock's build wheels "
                "do not provide", field=f"python_builds ({b.name}).build_wheels",
                hint="lock again (`imagelock lock`) to pin them")
        got = _sha256(outcome.wheel)
        if got != b.wheel_sha256:
            reference = store.path_for(b.wheel_sha256) if store.has(b.wheel_sha256) else None
            raise WheelNotReproduced(
                f"the wheel built from {b.sdist.filename} is not the lock's: sha256 {got}, "
                f"expected {b.wheel_sha256}. "
                + (explain_wheels(reference, outcome.wheel) if reference is not None else
                   "No copy of the lock's wheel is here to compare with")
                + f"; the new wheel is kept at {outcome.wheel}",
                field=f"python_builds ({b.name}).wheel_sha256",
                hint="the build is not deterministic: make the backend honour SOURCE_DATE_EPOCH "
                "and the fixed build path, then lock again")
        store.add_file(outcome.wheel, sha256=b.wheel_sha256, what=f"wheel {b.wheel}")
        _remember(store, digest, outcome.wheel)
        notes.append(f"built {b.wheel} from {b.sdist.filename} in the sandbox: reproduced")
    return notes


def explain_wheels(expected: Path, got: Path) -> str:
    """The members two wheels differ in: added, missing, other content, other zip metadata."""
    with zipfile.ZipFile(expected) as a, zipfile.ZipFile(got) as b:
        ia = {i.filename: i for i in a.infolist()}
        ib = {i.filename: i for i in b.infolist()}
        lines: list[str] = []
        for name in sorted(ia.keys() | ib.keys()):
            x, y = ia.get(name), ib.get(name)
            if x is None:
                lines.append(f"member {name}: only in the new wheel")
            elif y is None:
                lines.append(f"member {name}: missing from the new wheel")
            elif a.read(x) != b.read(y):
                lines.append(f"member {name}: content differs"
                             + (f" (size {x.file_size} -> {y.file_size})"
                                if x.file_size != y.file_size else ""))
            elif (x.date_time, x.external_attr, x.compress_type) != (
                    y.date_time, y.external_attr, y.compress_type):
                lines.append(f"member {name}: zip metadata differs (date {x.date_time} -> "
                             f"{y.date_time}, mode {x.external_attr >> 16:o} -> "
                             f"{y.external_attr >> 16:o})")
        if not lines and [i.filename for i in a.infolist()] != [i.filename for i in b.infolist()]:
            lines.append("the members are the same but in another order")
        if not lines:
            lines.append("the members are the same; the archives differ in their zip encoding")
    more = f" (+{len(lines) - _SHOWN} more)" if len(lines) > _SHOWN else ""
    return "Differs in: " + "; ".join(lines[:_SHOWN]) + more
