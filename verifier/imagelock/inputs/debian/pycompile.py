"""Bytecode for Debian's Python modules, compiled by the image's own interpreter in a sandbox.

py3compile and the interpreter packages' postinsts compile modules with `py_compile` in a
fresh interpreter; with SOURCE_DATE_EPOCH set (as here and in any reproducible install) that
gives hash-checked .pyc files, the same bytes wherever the same interpreter compiles the same
source. The build compiles every source of the lock's `python-compile` actions the way the
wheels' bytecode is compiled (inputs/python/bytecode.py: the image's interpreter on a staged,
read-only root in the sandbox); the lock-time check compares the result with what the scripts
wrote, and the oracle test with mmdebstrap's.

Compiled files are kept in the store by the sha256 of what their bytes depend on, so a build
after `imagelock lock` (which compiled them) compiles nothing; misses compile in the
background while the layer is written (`PendingFile`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imagelock.core.errors import InputError
from imagelock.formats.maintscripts import PythonCompile
from imagelock.inputs.debian.merge import View
from imagelock.inputs.python.bytecode import compile_in_image
from imagelock.tar.entry import Entry, FileContent

# Bump when what the cache key covers changes.
CACHE_VERSION = "pyc-2"


def pyc_path(source: str, tag: str, optimize: int) -> str:
    """Where a module's bytecode goes: `dir/__pycache__/name.TAG[.opt-N].pyc` (no leading /)."""
    head, _, name = source.strip("/").rpartition("/")
    stem = name[:-3] if name.endswith(".py") else name
    opt = f".opt-{optimize}" if optimize else ""
    return f"{head}/__pycache__/{stem}.{tag}{opt}.pyc" if head else f"__pycache__/{stem}.{tag}{opt}.pyc"


def interpreter_tag(interpreter: str) -> str:
    """`/usr/bin/python3.11` -> `cpython-311`."""
    name = interpreter.rsplit("/", 1)[-1]
    version = name.removeprefix("python")
    return "cpython-" + version.replace(".", "")


def _sha(view: View, path: str) -> str:
    """sha256 of a file of the view (staged package files carry theirs)."""
    e = view[path][0]
    if e.type == "hardlink":
        e = view[e.linkname][0]
    known = getattr(e.content, "sha256", None)
    if isinstance(known, str) and known:
        return known
    h = hashlib.sha256()
    if e.content is not None:
        with e.content.open() as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _compiler_key(view: View, interpreter: str, optimize: int) -> str:
    """What the bytes of a .pyc depend on besides its source: the interpreter and the modules
    that compile and write it (py_compile, importlib's bootstrap, marshal in the binary)."""
    real = _resolve(view, interpreter.lstrip("/")) or interpreter.lstrip("/")
    version = real.rsplit("python", 1)[-1]
    parts = [CACHE_VERSION, str(optimize), _sha(view, real)]
    for mod in ("py_compile.py", "importlib/_bootstrap_external.py", "importlib/util.py"):
        path = f"usr/lib/python{version}/{mod}"
        parts.append(_sha(view, path) if path in view else "-")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _pyc_mode(view: View, source: str) -> int:
    """py_compile's mode for a .pyc: the source's, writable by its owner, no execute bits,
    under umask 022 (maintainer scripts and this sandbox both run with it)."""
    return (view[source][0].mode | 0o200) & 0o666 & ~0o022


def compile_bytecode(
    view: View,
    actions: Sequence[PythonCompile],
    workdir: Path,
    *,
    source_date_epoch: int,
    cache: Path | None = None,
) -> list[Entry]:
    """The .pyc files (and their __pycache__ directories) of `actions`, compiled in the image.

    `cache`: a directory of .pyc files by the sha256 of everything their bytes depend on
    (compiler, source, path, optimization); hits are not compiled again, misses are added.
    A .pyc from the cache is the image's only if it is what the image's interpreter writes:
    the build's result is checked against the lock's digests, like every other byte.
    """
    if not actions:
        return []
    workdir.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Entry] = {}
    groups: dict[tuple[str, int], list[str]] = {}
    for a in actions:
        groups.setdefault((a.interpreter, a.optimize), []).extend(a.sources)
    for (interpreter, optimize), sources in sorted(groups.items()):
        exe = interpreter.lstrip("/")
        if exe not in view or view[exe][0].type not in ("file", "hardlink", "symlink"):
            raise InputError(f"the lock compiles Python bytecode with {interpreter}, which the "
                             "image does not have", hint="re-lock: `imagelock lock`")
        tag = interpreter_tag(interpreter)
        compiler = _compiler_key(view, interpreter, optimize)
        keys = {s: hashlib.sha256(f"{compiler}\0{s}\0{_sha(view, s.strip('/'))}".encode()).hexdigest()
                for s in sources}
        found: dict[str, Path] = {}
        pending: dict[str, Future[dict[str, Path]]] = {}
        if cache is not None:
            for s, k in keys.items():
                hit = cache / k[:2] / k
                if hit.is_file():
                    found[s] = hit
        missing = [s for s in sources if s not in found]
        if missing:
            # The compiler runs in the background: the layer writer reaches these files last
            # but for a few, so compiling overlaps with writing the rest of the layer.
            job = _BACKGROUND.submit(_compile_and_keep, view, interpreter, optimize, missing,
                                     source_date_epoch, workdir, cache, keys)
            for s in missing:
                pending[s] = job
        for s in sources:
            rel = pyc_path(s, tag, optimize)
            content: FileContent | PendingFile = (
                PendingFile(pending[s], s) if s in pending
                else FileContent(found[s], found[s].stat().st_size))
            entries[rel] = Entry(rel, "file", _pyc_mode(view, s.strip("/")), content=content)
            parent = rel.rsplit("/", 1)[0]
            entries.setdefault(parent, Entry(parent, "dir", 0o755))
    return [entries[k] for k in sorted(entries)]


_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imagelock-pycompile")


@dataclass(frozen=True)
class PendingFile:
    """A .pyc the image's interpreter is still compiling: its size and bytes wait for it (and
    raise what it raised)."""

    job: Future[dict[str, Path]]
    source: str

    @property
    def size(self) -> int:
        return self.job.result()[self.source].stat().st_size

    def open(self) -> BinaryIO:
        return open(self.job.result()[self.source], "rb")


def _compile_and_keep(view: View, interpreter: str, optimize: int, sources: Sequence[str],
                      source_date_epoch: int, workdir: Path, cache: Path | None,
                      keys: dict[str, str]) -> dict[str, Path]:
    """Compile with the image's interpreter in the sandbox, as the wheels' bytecode is
    (inputs/python/bytecode.py: the same staging, sandbox and compiler); keep each result."""
    if optimize:
        raise InputError(f"the lock compiles optimized bytecode (-O{optimize}), which imagelock "
                         "does not make yet", hint="report the package whose script asks for it")
    version = interpreter.rsplit("python", 1)[-1]
    compiled = compile_in_image([[e for e, _ in view.values()]], [s.strip("/") for s in sources],
                                interpreter=interpreter, python_version=version,
                                source_date_epoch=source_date_epoch, workdir=workdir)
    if compiled.failed:
        raise InputError(f"{interpreter} could not compile {len(compiled.failed)} of the Debian "
                         f"packages' modules, which the lock says it compiled: "
                         + ", ".join("/" + f for f in compiled.failed[:5]),
                         hint="re-lock: `imagelock lock`")
    out: dict[str, Path] = {}
    for s in sources:
        _, f = compiled.pycs[s.strip("/")]
        out[s] = f
        if cache is not None:
            _remember(cache, keys[s], f)
    return out


def _remember(cache: Path, key: str, f: Path) -> None:
    """Add a compiled file to the cache (atomically; a read-only store just does without)."""
    try:
        (cache / key[:2]).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache / key[:2], prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(f.read_bytes())
        os.chmod(tmp, 0o444)
        os.replace(tmp, cache / key[:2] / key)
    except OSError:
        return


def _resolve(view: View, path: str, depth: int = 0) -> str | None:
    """The in-image path a symlink chain ends at (the interpreter binary to copy privately)."""
    hit = view.get(path)
    if hit is None or depth > 16:
        return None
    e = hit[0]
    if e.type != "symlink":
        return path
    target = e.linkname
    nxt = target.strip("/") if target.startswith("/") else os.path.normpath(
        os.path.join(os.path.dirname(path), target))
    return _resolve(view, nxt, depth + 1)
