"""Installing pinned wheels as image entries: pypa `installer` into staging, deterministically.

Each wheel is verified in the store, its member names and RECORD checked (no absolute paths, no
`..`), and installed by `installer` through a destination that writes under a staging root at
the in-image paths (Debian's layout for locally installed packages: site-packages
`/usr/local/lib/pythonX.Y/dist-packages`, scripts `/usr/local/bin`). Console scripts get the
image interpreter's shebang; dist-info gets INSTALLER (`imagelock`), REQUESTED for requested
projects, and a RECORD with paths relative to site-packages, as pip writes them. Nothing records a
host path: no `direct_url.json`.

Bytecode is not compiled here: `bytecode` compiles the modules with the image's own Python, once
the whole tree is assembled, and `with_bytecode` then adds the .pyc files and lists them in each
RECORD (as pip does: without a hash). Until then every RECORD lists the installed files only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from installer import install
from installer.destinations import WheelDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry, parse_record_file
from installer.scripts import Script
from installer.sources import WheelFile
from installer.utils import Scheme, copyfileobj_with_hashing, fix_shebang
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.fetch.store import Store
from imagelock.formats.python import WheelPin
from imagelock.tar.entry import Entry, FileContent, normalize_path

if TYPE_CHECKING:
    from installer.scripts import ScriptSection

INSTALLER = b"imagelock\n"
FILE_MODE = 0o644
EXEC_MODE = 0o755

@dataclass(frozen=True)
class Layout:
    """In-image directories (normalised, no leading slash) a wheel's schemes install into."""

    site_packages: str
    scripts: str
    prefix: str
    python_version: str

    def scheme_dir(self, scheme: str, distribution: str) -> str:
        if scheme in ("purelib", "platlib"):
            return self.site_packages
        if scheme == "scripts":
            return self.scripts
        if scheme == "headers":
            return f"{self.prefix}/include/python{self.python_version}/{distribution}"
        return self.prefix  # "data"


@dataclass
class _Placed:
    staged: Path
    size: int
    digest: str
    executable: bool
    wheel: str


@dataclass
class _Installed:
    pin: WheelPin
    distribution: str
    root_scheme: Scheme
    record_path: str
    records: list[tuple[Scheme, RecordEntry]]
    modules: list[str] = field(default_factory=list)  # in-image .py paths under site-packages


def _refuse_path(path: str) -> str | None:
    """Why a path inside a wheel is unsafe, or None."""
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return "is an absolute path"
    if ".." in path.replace("\\", "/").split("/"):
        return "has a '..' component and would escape site-packages"
    return None


def check_wheel(zf: zipfile.ZipFile, pin: WheelPin) -> None:
    """Refuse a wheel whose member names or RECORD rows could write outside its directories."""
    seen: set[str] = set()
    hint = "the wheel is malformed or hostile; it cannot be installed"
    for info in zf.infolist():
        why = _refuse_path(info.filename)
        if why:
            raise UnsafeContentError(f"wheel {pin.filename}: member {info.filename!r} {why}", hint=hint)
        if info.filename in seen:
            raise UnsafeContentError(f"wheel {pin.filename}: member {info.filename!r} appears twice",
                                     hint=hint)
        seen.add(info.filename)
    try:
        _, version, _, _ = parse_wheel_filename(pin.filename)
    except InvalidWheelFilename as e:
        raise InputError(f"{pin.filename} is not a wheel file name: {e}") from None
    records = [n for n in seen if n.count("/") == 1 and n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise InputError(f"wheel {pin.filename} has {len(records)} dist-info RECORD files, not one",
                         hint=hint)
    dist_info = records[0].split("/", 1)[0]
    name, _, ver = dist_info[: -len(".dist-info")].rpartition("-")
    if canonicalize_name(name) != pin.name or not _same_version(ver, version, pin.version):
        raise InputError(f"wheel {pin.filename} holds {dist_info}, not {pin.name} {pin.version}",
                         hint="the lock is inconsistent with its own sha256; run `imagelock lock` again")
    text = zf.read(records[0]).decode("utf-8", "replace")
    for row in parse_record_file(text.splitlines()):
        why = _refuse_path(row[0])
        if why:
            raise UnsafeContentError(f"wheel {pin.filename}: RECORD lists {row[0]!r}, which {why}",
                                     hint=hint)


def _same_version(dist_info: str, *expected: Version | str) -> bool:
    try:
        return all(Version(dist_info) == Version(str(e)) for e in expected)
    except InvalidVersion:
        return all(dist_info == str(e) for e in expected)


class _StagingDestination(WheelDestination):
    """Writes a wheel's files under `root` at their in-image paths and remembers each one."""

    def __init__(self, pin: WheelPin, layout: Layout, root: Path, interpreter: str,
                 distribution: str, placed: dict[str, _Placed]) -> None:
        self.pin = pin
        self.layout = layout
        self.root = root
        self.interpreter = interpreter
        self.distribution = distribution
        self.placed = placed
        self.installed: _Installed | None = None
        self.modules: list[str] = []

    def _image_path(self, scheme: Scheme, path: str) -> str:
        why = _refuse_path(path)
        if why:
            raise UnsafeContentError(f"wheel {self.pin.filename}: member {path!r} {why}")
        base = self.layout.scheme_dir(scheme, self.distribution)
        return normalize_path(f"{base}/{path}", what=f"wheel {self.pin.filename}: member")

    def _write(self, image: str, stream: BinaryIO, executable: bool) -> tuple[str, int]:
        target = self.root / image
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if image in self.placed:
                return self._same_as_placed(image, stream)
            with open(target, "xb") as f:
                digest, size = copyfileobj_with_hashing(stream, f, "sha256")
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
            raise InputError(f"wheel {self.pin.filename}: cannot install /{image}: it collides "
                             f"with a path another wheel installed ({type(e).__name__})",
                             hint="two wheels of the set install overlapping files") from None
        self.placed[image] = _Placed(target, size, digest, executable, self.pin.filename)
        return digest, size

    def _same_as_placed(self, image: str, stream: BinaryIO) -> tuple[str, int]:
        """A file another wheel already installed: fine when the bytes agree (pip overwrites)."""
        digest, size = copyfileobj_with_hashing(stream, io.BytesIO(), "sha256")
        old = self.placed[image]
        if (digest, size) != (old.digest, old.size):
            raise InputError(
                f"wheels {old.wheel} and {self.pin.filename} both install /{image}, with "
                "different content",
                hint="the two projects conflict; drop one of them from the requirements")
        return digest, size

    def write_file(self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO,
                   is_executable: bool) -> RecordEntry:
        path = os.fspath(path)
        image = self._image_path(scheme, path)
        if scheme == "scripts":
            with fix_shebang(stream, self.interpreter) as fixed:
                digest, size = self._write(image, fixed, True)
        else:
            digest, size = self._write(image, stream, is_executable)
        site = self.layout.site_packages + "/"
        if image.endswith(".py") and image.startswith(site) and scheme in ("purelib", "platlib"):
            self.modules.append(image)
        return RecordEntry(path, Hash("sha256", digest), size)

    def write_script(self, name: str, module: str, attr: str, section: ScriptSection) -> RecordEntry:
        if "/" in name or "\\" in name:
            raise UnsafeContentError(f"wheel {self.pin.filename}: entry point name {name!r} is a path")
        script_name, data = Script(name, module, attr, section).generate(self.interpreter, "posix")
        image = self._image_path(Scheme("scripts"), script_name)
        digest, size = self._write(image, io.BytesIO(data), True)
        return RecordEntry(script_name, Hash("sha256", digest), size)

    def finalize_installation(self, scheme: Scheme, record_file_path: str,
                              records: Iterable[tuple[Scheme, RecordEntry]]) -> None:
        # RECORD is written after byte-compilation, so it can list the .pyc files too.
        self.installed = _Installed(self.pin, self.distribution, scheme, record_file_path,
                                    list(records), self.modules)


def _install_one(pin: WheelPin, store: Store, layout: Layout, root: Path, interpreter: str,
                 placed: dict[str, _Placed], notices: list[str]) -> _Installed:
    path = store.verify(pin.sha256, pin.size, what=f"wheel {pin.filename}")
    with zipfile.ZipFile(path) as zf:
        zf.filename = pin.filename  # installer reads the name and version from the file name
        check_wheel(zf, pin)
        source = WheelFile(zf)
        dest = _StagingDestination(pin, layout, root, interpreter, source.distribution, placed)
        extra = {"INSTALLER": INSTALLER, **({"REQUESTED": b""} if pin.requested else {})}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                install(source, dest, extra)
            except (InstallerError, ValueError, KeyError) as e:
                raise InputError(f"wheel {pin.filename} cannot be installed: {e}",
                                 hint="the wheel is malformed") from None
        notices += [f"{pin.filename}: {w.message}" for w in caught]
    assert dest.installed is not None
    return dest.installed


def _pyc_rows(base: str, pycs: list[str]) -> list[tuple[str, str, str]]:
    # pip lists bytecode without a hash: it is derived from the sources listed above.
    return [(posixpath.relpath(p, base), "", "") for p in pycs]


def _record_bytes(rows: Iterable[tuple[str, str, str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=",", quotechar='"', lineterminator="\n").writerows(sorted(set(rows)))
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True)
class RecordPlan:
    """One installed distribution as bytecode needs it: its RECORD (in-image path) and rows so
    far, the directory they are relative to, and its modules (in-image .py paths)."""

    wheel: str
    record: str
    base: str
    rows: list[tuple[str, str, str]]
    modules: list[str]


@dataclass(frozen=True)
class Installed:
    """What `wheel_entries` installed, for `with_bytecode` (kept as JSON between the two)."""

    staged: Path
    records: list[RecordPlan]

    @property
    def modules(self) -> list[str]:
        return sorted(m for r in self.records for m in r.modules)

    def to_json(self) -> str:
        return json.dumps({"staged": str(self.staged), "records": [
            {"wheel": r.wheel, "record": r.record, "base": r.base, "rows": r.rows,
             "modules": r.modules} for r in self.records]})

    @classmethod
    def from_json(cls, text: str) -> Installed:
        d = json.loads(text)
        return cls(Path(d["staged"]), [
            RecordPlan(r["wheel"], r["record"], r["base"], [tuple(x) for x in r["rows"]],
                       r["modules"]) for r in d["records"]])


def _plan(inst: _Installed, layout: Layout) -> RecordPlan:
    base = layout.scheme_dir(inst.root_scheme, inst.distribution)
    rows: list[tuple[str, str, str]] = []
    for scheme, rec in inst.records:
        d = layout.scheme_dir(scheme, inst.distribution)
        prefix = None if d == base else posixpath.relpath(d, base) + "/"
        rows.append(rec.to_row(prefix))
    return RecordPlan(inst.pin.filename, f"{base}/{inst.record_path}", base, rows,
                      sorted(inst.modules))


def wheel_entries(
    pins: list[WheelPin],
    store: Store,
    staging: Path,
    *,
    site_packages: str,
    scripts_dir: str,
    interpreter: str,
    python_version: str,
    prefix: str = "/usr/local",
) -> tuple[list[Entry], list[str], Installed]:
    """Install pinned wheels into `staging`; return their image entries (sorted), notices, and
    what `with_bytecode` needs to add their bytecode.

    Files are 0644, scripts and files the wheel marks executable 0755 (as pip does, so bundled
    helper programs still run), everything owned by 0:0.
    """
    layout = Layout(normalize_path(site_packages), normalize_path(scripts_dir),
                    normalize_path(prefix), python_version)
    staging.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=staging, prefix="wheels-"))  # one per call: no collisions
    placed: dict[str, _Placed] = {}
    notices: list[str] = []
    installed = [_install_one(pin, store, layout, root, interpreter, placed, notices)
                 for pin in sorted(pins, key=lambda p: (p.name, p.filename))]
    plans = [_plan(inst, layout) for inst in installed]
    for plan in plans:
        data = _record_bytes(plan.rows)
        (root / plan.record).write_bytes(data)
        placed[plan.record] = _Placed(root / plan.record, len(data), "", False, plan.wheel)
    entries = [
        Entry(path, "file", EXEC_MODE if p.executable else FILE_MODE, 0, 0,
              content=FileContent(p.staged, p.size))
        for path, p in sorted(placed.items())
    ]
    return entries, notices, Installed(root, plans)


def with_bytecode(entries: list[Entry], installed: Installed,
                  pycs: dict[str, tuple[str, Path]]) -> list[Entry]:
    """`entries` (the wheels' layer) with the compiled `pycs` (module -> (.pyc path, file)) added
    as 0644 files and listed in their distribution's RECORD."""
    records: dict[str, Entry] = {}
    for plan in installed.records:
        done = sorted(pycs[m][0] for m in plan.modules if m in pycs)
        data = _record_bytes([*plan.rows, *_pyc_rows(plan.base, done)])
        target = installed.staged / plan.record
        target.write_bytes(data)
        records[plan.record] = Entry(plan.record, "file", FILE_MODE, 0, 0,
                                     content=FileContent(target, len(data)))
    out = [records.get(e.path, e) for e in entries]
    for pyc, path in sorted(pycs.values()):
        out.append(Entry(pyc, "file", FILE_MODE, 0, 0, content=FileContent(path, path.stat().st_size)))
    return out
