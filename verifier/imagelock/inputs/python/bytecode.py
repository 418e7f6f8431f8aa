"""Bytecode for installed wheels, compiled by the image's own Python in a sandbox, never the host's.

Why: a .pyc is the marshalled output of one CPython build. The setup's 3.11.7 and Debian's
3.11.2 write other bytes for the same module, and a 3.12 cannot write 3.11 bytecode at all
(issue 11: a Flask image rebuilt under another Python gave MISMATCH on a .pyc). So the compiler
is the interpreter the image ships (`python_install.interpreter`, by default the lock's Debian
`/usr/bin/python3.X`), run like the image's own `ldconfig` (inputs/debian/ldconfig.py): over a
staged copy of the assembled tree, in a bubblewrap sandbox with the root read-only, no network,
a clean fixed environment (`SOURCE_DATE_EPOCH`, `PYTHONHASHSEED=0`), as one process compiling
every module in sorted in-image path order, as CHECKED_HASH pycs whose code objects name the
in-image source. Inside the rebuild's build sandbox (where bwrap cannot nest) the same command
runs chrooted into the staged tree instead, with the same environment.

The host's interpreter is never asked: the bytes depend on the lock's pins alone.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.digest import CHUNK
from imagelock.core.errors import ImagelockError, InputError, UnsafeContentError
from imagelock.sandbox.bwrap import IN_SANDBOX, Sandbox
from imagelock.tar.entry import BytesContent, Entry, FileContent

OUT_DIR = ".imagelock-pyc"  # in the staged root: where the compiler writes, numbered
# The compiler's working directory: `-c` puts the working directory first on sys.path, so it is
# the output directory (empty at the start, then only numbered files), never the image's `/`,
# where a file of the image named json.py would be imported in place of the standard library.
CWD = "/" + OUT_DIR
# No -E/-I (they would drop PYTHONHASHSEED, which fixes the order of frozenset constants);
# PYTHONSAFEPATH is the same safety for a 3.11+ interpreter.
_ENV = {"PYTHONHASHSEED": "0", "PYTHONSAFEPATH": "1"}
TIMEOUT = 3600.0  # seconds; keystone's ~10,000 modules compile in well under a minute here

# Not needed to run an interpreter, and possibly large: left out of the staged tree (the modules
# to compile are always staged, wherever they are).
_SKIP = ("usr/share/", "usr/include/", "usr/local/share/", "var/", "home/", "root/", "srv/",
         "tmp/", "run/")

# Runs in the image's interpreter (any CPython 3.7+): stdin is the sorted in-image sources,
# stdout what compiled and for which interpreter. Nothing but py_compile and json is imported.
_COMPILE = r"""
import json, py_compile, sys
failed = []
for i, src in enumerate(json.load(sys.stdin)):
    try:
        py_compile.compile(src, cfile="/.imagelock-pyc/%d" % i, dfile=src, doraise=True,
                           optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    except py_compile.PyCompileError:
        failed.append(src)
json.dump({"version": "%d.%d" % sys.version_info[:2], "implementation": sys.implementation.name,
           "cache_tag": sys.implementation.cache_tag, "failed": failed}, sys.stdout)
"""


@dataclass(frozen=True)
class Compiled:
    """What the image's interpreter made of the modules."""

    pycs: dict[str, tuple[str, Path]]  # in-image module -> (in-image .pyc path, file on disk)
    failed: list[str]  # in-image modules it could not compile (syntax of another Python)
    interpreter: str  # "cpython 3.11 at /usr/bin/python3.11", for messages

    def note(self) -> str:
        """What the user should know about modules left as source, or ""."""
        if not self.failed:
            return ""
        n = len(self.failed)
        shown = ", ".join("/" + m for m in self.failed[:5]) + (" ..." if n > 5 else "")
        return (f"{n} module{'s' * (n != 1)} did not compile for {self.interpreter} (left as "
                f"source): {shown}")


def _no_python(interpreter: str, why: str) -> InputError:
    return InputError(
        f"the wheels' bytecode is compiled by the image's own Python, but {why}",
        field="contents.python",
        hint=f"add the Debian package that provides {interpreter} (e.g. python3) to "
        "contents.debian.packages, set contents.python.interpreter to the image's Python, or set "
        "contents.python.compile: false to install the wheels without bytecode")


def resolve_in_tree(index: dict[str, Entry], path: str) -> str | None:
    """The in-image path of the regular file `path` names, following symlinks inside the image
    (never on the host), or None when it names no regular file."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        cur = "/".join([*done, part])
        e = index.get(cur)
        if e is None:
            if not parts:
                return None
            done.append(part)  # an implicit parent directory (spec/README.md §6.4)
            continue
        if e.type == "symlink":
            hops += 1
            if hops > 40:
                return None
            target = [p for p in e.linkname.split("/") if p]
            if e.linkname.startswith("/"):
                done = []
            parts = target + parts
            continue
        if e.type == "hardlink":
            cur = e.linkname
        done = cur.split("/")
    final = index.get("/".join(done))
    if final is not None and final.type == "hardlink":
        final = index.get(final.linkname)
    return "/".join(done) if final is not None and final.type == "file" else None


def stage_root(index: dict[str, Entry], root: Path, keep: set[str]) -> None:
    """Write the tree into `root`: regular files as hard links to their staged bytes (copies where
    a link cannot be made), generated ones written; `keep` is staged even under a skipped prefix.

    Entries are safe already (normalised, nothing below a symlink: build/tree.py); parents are
    created as plain directories, and no symlink is ever followed on the host."""
    real_root = os.path.realpath(root)
    checked: set[Path] = set()
    for path in sorted(index, key=lambda p: p.encode()):
        e = index[path]
        if path.startswith(_SKIP) and path not in keep:
            continue
        dest = root / path
        parent = dest.parent
        if parent not in checked:
            # Defence in depth: the tree has nothing below a symlink (build/tree.py), so this
            # never finds one; it checks before anything is made through it.
            real = os.path.realpath(parent)
            if real != real_root and not real.startswith(real_root + os.sep):
                raise UnsafeContentError(f"/{path} would be staged outside the image root")
            if not os.path.lexists(parent):
                parent.mkdir(parents=True)
            if not parent.is_dir():
                continue  # below a file of the image (a skipped one): nothing to stage
            checked.add(parent)
        if e.type == "dir":
            if not os.path.lexists(dest):
                dest.mkdir()
        elif e.type == "symlink":
            os.symlink(e.linkname, dest)
        elif e.type == "hardlink":
            target = root / e.linkname
            if target.is_file() and not target.is_symlink():
                os.link(target, dest)
        elif e.type == "file" and e.content is not None:
            _stage_file(e, dest)


def _stage_file(e: Entry, dest: Path) -> None:
    c = e.content
    executable = e.mode & 0o111
    # Staged files are shared, read-only and not executable (one copy per content): a link will
    # do unless the file must be executable, as the dynamic loader must (the kernel checks the
    # execute bit of a program's ELF interpreter too).
    if isinstance(c, FileContent) and (not executable or os.stat(c.path).st_mode & 0o111):
        try:
            os.link(c.path, dest)
            return
        except OSError:
            pass  # another file system: copy
    if isinstance(c, BytesContent):
        dest.write_bytes(c.data)
    else:
        assert c is not None
        with c.open() as src, open(dest, "xb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
            verify = getattr(src, "verify_rest", None)
            if verify is not None:
                verify()
    os.chmod(dest, 0o755 if executable else 0o644)


def compile_in_image(
    layers: Sequence[list[Entry]],
    modules: Sequence[str],
    *,
    interpreter: str,
    python_version: str,
    source_date_epoch: int,
    workdir: Path,
) -> Compiled:
    """Byte-compile `modules` (in-image .py paths) with the image's interpreter at `interpreter`,
    over the tree of `layers` (bottom first). A module that does not compile for the image's
    Python is returned in `failed`, not raised."""
    index: dict[str, Entry] = {}
    for entries in layers:
        for e in entries:
            index[e.path] = e
    interp = interpreter.strip("/")
    found = resolve_in_tree(index, interp)
    if found is None:
        raise _no_python(interpreter, f"the image has no {interpreter}")
    if not modules:
        return Compiled({}, [], interpreter)
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=workdir, prefix="pyroot-"))
    try:
        stage_root(index, root, keep={*modules, found})
        # A private executable copy: staged files are shared links whose mode is not the image's.
        exe = root / found
        shutil.copyfile(exe, root / ".imagelock-python")
        os.replace(root / ".imagelock-python", exe)
        os.chmod(exe, 0o755)
        out = root / OUT_DIR
        out.mkdir()
        sources = ["/" + m for m in sorted(modules, key=lambda m: m.encode())]
        report = _run(root, out, "/" + interp, json.dumps(sources).encode(), source_date_epoch)
        _check_interpreter(report, interpreter, python_version)
        cache_tag = str(report["cache_tag"])
        failed = sorted(str(f).lstrip("/") for f in report["failed"])  # type: ignore[attr-defined]
        pycs: dict[str, tuple[str, Path]] = {}
        keep_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="pyc-"))
        for i, src in enumerate(sources):
            m = src.lstrip("/")
            if m in failed:
                continue
            head, _, tail = m.rpartition("/")
            pyc = f"{head}/__pycache__/{tail[:-3]}.{cache_tag}.pyc"
            pycs[m] = (pyc, _take(out, str(i), keep_dir))
        return Compiled(pycs, failed, f"{report['implementation']} {report['version']} at "
                                      f"{interpreter}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _take(out: Path, name: str, keep: Path) -> Path:
    """Move one compiled file out of the sandbox's directory, refusing anything but a regular
    file (the sandboxed process wrote it: never follow a link it may have left)."""
    src = out / name
    try:
        st = src.lstat()
    except FileNotFoundError:
        raise InputError(f"the image's Python reported a module compiled but wrote no file {name}",
                         hint="the image's interpreter misbehaves; set compile: false") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"the image's Python left a non-file at {OUT_DIR}/{name}")
    dest = keep / name
    os.replace(src, dest)
    return dest


def _environment(source_date_epoch: int) -> dict[str, str]:
    return Sandbox(source_date_epoch=source_date_epoch, env=_ENV).environment()


def _run(root: Path, out: Path, interpreter: str, payload: bytes,
         source_date_epoch: int) -> dict[str, object]:
    argv = [interpreter, "-s", "-S", "-B", "-W", "ignore", "-c", _COMPILE]
    try:
        if os.environ.get(IN_SANDBOX) == "1":
            # Already in the build sandbox (no network, no host files but its binds, no
            # capability but chroot in its own user namespace): bwrap cannot nest here, so the
            # same command runs chrooted into the staged tree, with the same environment.
            def enter() -> None:
                os.chroot(root)
                os.chdir(CWD)

            r = subprocess.run(argv, input=payload, capture_output=True, timeout=TIMEOUT,
                               env={**_environment(source_date_epoch), "PWD": CWD},
                               preexec_fn=enter, umask=0o022, check=False)
        else:
            box = Sandbox(root=root, writable_root=False, rw_binds=[(out, CWD)],
                          tmpfs=["/tmp"], source_date_epoch=source_date_epoch, env=_ENV)
            for mount_point in box.mount_points():  # the root is read-only: bwrap cannot make them
                mp = root / mount_point.lstrip("/")
                if not os.path.lexists(mp):
                    mp.mkdir(parents=True)
            r = box.run(argv, CWD, stdin=payload, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise InputError(f"the image's Python did not finish byte-compiling within {TIMEOUT:.0f} s",
                         hint="set contents.python.compile: false to install without bytecode"
                         ) from None
    except (OSError, subprocess.SubprocessError) as e:
        raise _no_python(interpreter, f"{interpreter} could not run ({e})") from None
    except ImagelockError as e:
        e.message = f"byte-compiling the wheels with the image's {interpreter}: {e.message}"
        raise
    try:
        report = json.loads(r.stdout)
        if r.returncode != 0 or not isinstance(report, dict):
            raise ValueError
    except ValueError:
        err = (r.stderr or b"").decode(errors="replace").strip()[-800:]
        raise _no_python(interpreter, f"{interpreter} failed to byte-compile (exit "
                         f"{r.returncode}): {err or 'no output'}; an image of another "
                         "architecture needs qemu-user-static registered with binfmt_misc "
                         "(docs/python.md)") from None
    return report


def _check_interpreter(report: dict[str, object], interpreter: str, python_version: str) -> None:
    got = f"{report.get('implementation')} {report.get('version')}"
    if got != f"cpython {python_version}" or not report.get("cache_tag"):
        raise InputError(
            f"the image's {interpreter} is {got}, but the lock installs the wheels for CPython "
            f"{python_version}", field="contents.python",
            hint="set contents.python.interpreter (or python_version) to match the image's "
            "Python, then run `imagelock lock` again")
    if not isinstance(report.get("failed"), list):
        raise InputError(f"the image's {interpreter} gave no list of failed modules")
