"""The files pip reads for a lock besides the spec: the `constraints` file, and every file a
`-r`/`-c` line of a requirements file names (followed the way pip follows them, relative to the
file that names them). Each is pinned by sha256 in the lock (`python_install.files_sha256`), so
that an edit to any of them makes the lock stale for `build` as well as for `lock --check`.

Each file must be inside the build context (symlinks resolved) and carries no index options.
Bounds: at most MAX_FILES files, MAX_FILE_BYTES each, nested at most MAX_NESTING deep.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from imagelock.core.errors import InputError
from imagelock.core.strict_json import read_limited
from imagelock.formats.python import PythonContents, forbidden_file_option

MAX_FILES = 64
MAX_FILE_BYTES = 4 << 20
MAX_NESTING = 8
_INCLUDE = re.compile(r"^(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=[^-\s]))(\S+)")


def constraints_path(contents: PythonContents, context_dir: Path) -> Path | None:
    """The spec's constraints file, checked: inside the context, present."""
    if contents.constraints is None:
        return None
    return _inside(context_dir, contents.constraints, "contents.python.constraints")


def _inside(context_dir: Path, rel: str, field: str, *, named_in: Path | None = None,
            line: int | None = None) -> Path:
    if "://" in rel:
        raise InputError(f"{rel!r} is a URL: pip's files come from the build context",
                         field=field, path=named_in, line=line,
                         hint="copy the file into the context and name it by path")
    base = named_in.parent if named_in is not None else context_dir
    path = base / rel
    if not path.resolve().is_relative_to(context_dir.resolve()):
        raise InputError(f"{rel!r} leads outside the context {context_dir}", field=field,
                         path=named_in, line=line, hint="keep it inside the build context")
    if not path.is_file():
        raise InputError(f"{rel!r} is not a file in the context {context_dir}", field=field,
                         path=named_in, line=line, hint="add it to the context or fix the name")
    return path


def pip_files(contents: PythonContents, context_dir: Path) -> dict[str, Path]:
    """Every file pip reads besides the requirements file itself, by path relative to the
    context: the constraints file, and what requirement files include, recursively."""
    out: dict[str, Path] = {}
    roots: list[tuple[Path, int]] = []
    if contents.requirements_file is not None:
        req = _inside(context_dir, contents.requirements_file, "contents.python.requirements_file")
        roots.append((req, 0))
    c = constraints_path(contents, context_dir)
    if c is not None:
        out[_rel(c, context_dir)] = c
        roots.append((c, 0))
    seen = {p.resolve() for p, _ in roots}
    while roots:
        path, depth = roots.pop(0)
        text = read_limited(path, limit=MAX_FILE_BYTES, what="requirements file").decode(
            "utf-8", errors="replace")
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split(" #", 1)[0].strip()
            opt = forbidden_file_option(line)
            if opt is not None:
                raise InputError(f"uses {opt}: the indexes a lock is fetched from are "
                                 "configuration, not input", path=path, line=n,
                                 hint="remove the line; configure indexes with pip config")
            m = _INCLUDE.match(line)
            if m is None:
                continue
            if depth + 1 > MAX_NESTING:
                raise InputError(f"requirement files nest more than {MAX_NESTING} deep",
                                 path=path, line=n)
            inc = _inside(context_dir, m.group(1), "contents.python", named_in=path, line=n)
            if inc.resolve() in seen:
                continue
            seen.add(inc.resolve())
            out[_rel(inc, context_dir)] = inc
            if len(out) > MAX_FILES:
                raise InputError(f"pip would read more than {MAX_FILES} files", path=path,
                                 line=n, hint="merge the requirement files")
            roots.append((inc, depth + 1))
    return out


def _rel(path: Path, context_dir: Path) -> str:
    return path.resolve().relative_to(context_dir.resolve()).as_posix()


def pip_files_sha256(contents: PythonContents, context_dir: Path) -> dict[str, str] | None:
    """sha256 of each of `pip_files`, sorted by path; None when there are none."""
    files = pip_files(contents, context_dir)
    if not files:
        return None
    return {rel: hashlib.sha256(read_limited(p, limit=MAX_FILE_BYTES, what="requirements file"))
            .hexdigest() for rel, p in sorted(files.items())}


def constraint_args(contents: PythonContents, context_dir: Path) -> list[str]:
    """pip's arguments for the spec's constraints file."""
    path = constraints_path(contents, context_dir)
    return ["-c", str(path.absolute())] if path is not None else []  # pip runs in the context


def keep_args(keep: Sequence[str], tmp: Path) -> list[str]:
    """pip's arguments holding the previous lock's pins (`NAME==VERSION`), as a constraints file
    in `tmp`: they bound versions and ask for nothing, so a dependency no longer needed goes."""
    if not keep:
        return []
    path = tmp / "kept-pins.txt"
    path.write_text("".join(f"{k}\n" for k in keep), encoding="utf-8")
    return ["-c", str(path)]
