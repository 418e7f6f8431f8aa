"""Reading one pinned .deb into image entries, safely and without running maintainer scripts.

A .deb is an ar archive (`debian-binary`, `control.tar.*`, `data.tar.*`); python-debian's
`ArFile` reads the ar container and hands out members as bounded streams. Its `DebFile.data`
is not used because it decompresses zstd members whole into memory; here the data member is
streamed through `tarfile`'s stream mode (gzip, xz, bzip2, none) or `zstandard`, and each regular
file goes straight to a content-addressed staging directory, so no package is ever held in memory.

Refused, with the package and member named: absolute or `..` paths, hardlinks to anything but an
earlier regular file of the same package, relative symlinks that climb out of the root, members
below one of the package's own symlinks, device nodes, FIFOs and other special files.

Merged /usr (docs/field-notes.md): bookworm packages still ship `./bin`, `./lib`, ...; a real
`bin/` directory in a layer would replace the image's `bin -> usr/bin` link. Such paths move under
`usr/`, hardlink targets and absolute symlink targets with them, and relative symlink targets are
recomputed only where the move would change what they point at. dpkg's database keeps the paths
as shipped (`/bin/bash`), as on a real merged-/usr bookworm system, so `ShippedPath` keeps both.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from debian.arfile import ArError, ArFile, ArMember
from debian.deb822 import Deb822

from imagelock.core.digest import CHUNK
from imagelock.core.errors import InputError, ToolUnavailable, UnsafeContentError
from imagelock.fetch.store import Store
from imagelock.tar.entry import (
    Entry,
    FileContent,
    normalize_path,
    parent_dirs,
    symlink_stays_inside,
)

#: Top-level directories that live under /usr on a merged-/usr system (what usrmerge links).
MERGED_USR_DIRS = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")

_DAMAGED: tuple[type[BaseException], ...] = (
    tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile
)
try:
    import zstandard as _zstd

    _DAMAGED += (_zstd.ZstdError,)
except ImportError:  # pragma: no cover - depends on the environment
    pass
_TAR_MODES = {"": "r|", ".gz": "r|gz", ".xz": "r|xz", ".lzma": "r|xz", ".bz2": "r|bz2"}


class DebPin(Protocol):
    """What this module needs of a lock's `DebianPackagePin`."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class StagedFile(FileContent):
    """A regular file streamed out of a package into staging, with the digests dpkg needs."""

    sha256: str = ""
    md5: str = ""


@dataclass(frozen=True)
class InfoFile:
    """A control.tar member other than `control` (md5sums, conffiles, scripts, shlibs, ...)."""

    data: bytes
    mode: int


@dataclass(frozen=True)
class ShippedPath:
    """A data.tar member as dpkg records it (`original`) and where it lands in the image."""

    original: str
    path: str
    type: str


@dataclass(frozen=True)
class DebPackage:
    """Everything one .deb contributes: entries for the image and facts for the dpkg database."""

    name: str
    version: str
    architecture: str
    control: dict[str, str]
    info: dict[str, InfoFile]
    conffiles: list[str]
    entries: list[Entry]
    shipped: list[ShippedPath]
    md5: dict[str, str] = field(default_factory=dict)
    control_text: str = ""  # the control file as shipped (dpkg keeps some whitespace Deb822 drops)

    @property
    def multi_arch_same(self) -> bool:
        return self.control.get("Multi-Arch", "").strip() == "same"

    @property
    def db_name(self) -> str:
        """The name of its files in /var/lib/dpkg/info: `name:arch` for Multi-Arch: same."""
        return f"{self.name}:{self.architecture}" if self.multi_arch_same else self.name


# --- merged /usr -------------------------------------------------------------------------------


def merge_usr_path(path: str) -> str:
    """Where a normalised in-image path lands on a merged-/usr system (`bin/sh` -> `usr/bin/sh`)."""
    head = path.split("/", 1)[0]
    return f"usr/{path}" if head in MERGED_USR_DIRS else path


def resolve_relative(base_dir: str, target: str) -> str | None:
    """Lexically resolve a relative `target` from directory `base_dir`; None if it leaves the root."""
    parts = [p for p in base_dir.split("/") if p]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def merge_usr_symlink_target(original: str, moved: str, target: str) -> str:
    """The symlink target to write for a link shipped at `original` and placed at `moved`.

    Absolute targets into the merged directories are rewritten (`/lib/x` -> `/usr/lib/x`).
    A relative target keeps its text unless the move changes what it resolves to (`bin/x ->
    ../usr/bin/y` becomes `y`), so ordinary same-directory links stay byte-identical.
    """
    if target.startswith("/"):
        inner = target.lstrip("/")
        if not inner:
            return target
        return "/" + merge_usr_path(inner) + ("/" if target.endswith("/") and inner else "")
    if original == moved:
        return target
    want = resolve_relative(posixpath.dirname(original), target)
    got = resolve_relative(posixpath.dirname(moved), target)
    if want is None or got is None:
        return target
    want = merge_usr_path(want) if want else want
    if (merge_usr_path(got) if got else got) == want:
        return target
    return posixpath.relpath(want or ".", posixpath.dirname(moved) or ".")


def merged_usr_links(present_dirs: set[str]) -> list[Entry]:
    """The top-level links usrmerge/base-files create, for each `usr/<dir>` that exists."""
    return [
        Entry(path=d, type="symlink", mode=0o777, linkname=f"usr/{d}")
        for d in MERGED_USR_DIRS
        if f"usr/{d}" in present_dirs
    ]


# --- reading the ar container -----------------------------------------------------------------


def verified_deb(pin: DebPin, store: Store) -> Path:
    """The store path of a pin's .deb after its sha256 and size were checked (IntegrityError if not)."""
    what = f"{pin.name}_{pin.version}_{pin.architecture}.deb"
    return store.verify(pin.sha256, pin.size, what=what)


def _ar_members(deb: Path, what: str) -> tuple[ArMember, ArMember]:
    try:
        ar = ArFile(str(deb))
    except (ArError, OSError, ValueError) as e:
        raise InputError(f"{what} is not a .deb (ar archive): {e}") from None
    names = ar.getnames()
    if not names or names[0] != "debian-binary":
        raise InputError(f"{what} is not a .deb: its first member is not debian-binary")
    with _closing(ar.getmember("debian-binary")) as m:
        version = m.read(16)
    if not version.startswith(b"2."):
        raise InputError(f"{what} has unsupported .deb format {version!r}", hint="only 2.x is read")
    control = [n for n in names if n == "control.tar" or n.startswith("control.tar.")]
    data = [n for n in names if n == "data.tar" or n.startswith("data.tar.")]
    if len(control) != 1 or len(data) != 1:
        raise InputError(f"{what} must hold exactly one control.tar and one data.tar (has {names})")
    return ar.getmember(control[0]), ar.getmember(data[0])


@contextmanager
def _closing(m: ArMember) -> Iterator[ArMember]:
    try:
        yield m
    finally:
        m.close()


@contextmanager
def _tar_stream(member: ArMember, what: str) -> Iterator[tarfile.TarFile]:
    """A stream-mode TarFile over a (possibly compressed) ar member; nothing is buffered whole."""
    ext = posixpath.splitext(member.name)[1] if member.name.count(".") > 1 else ""
    src: IO[bytes] = member  # type: ignore[assignment]
    if ext == ".zst":
        try:
            import zstandard
        except ImportError:  # pragma: no cover - depends on the environment
            raise ToolUnavailable(
                f"{what} has a zstd-compressed member and the `zstandard` module is missing",
                hint="pip install zstandard",
            ) from None
        src = zstandard.ZstdDecompressor().stream_reader(member, read_across_frames=True)  # type: ignore[arg-type]
        mode = "r|"
    elif ext in _TAR_MODES:
        mode = _TAR_MODES[ext]
    else:
        raise InputError(f"{what}: member {member.name} has an unknown compression {ext!r}")
    try:
        with tarfile.open(fileobj=src, mode=mode) as tf:  # type: ignore[call-overload]
            yield tf
    except _DAMAGED as e:
        raise InputError(f"{what}: {member.name} is damaged: {e}") from None
    finally:
        member.close()


# --- control.tar ------------------------------------------------------------------------------


def _read_control(member: ArMember, what: str) -> tuple[dict[str, str], dict[str, InfoFile], str]:
    files: dict[str, InfoFile] = {}
    with _tar_stream(member, what) as tf:
        for m in tf:
            name = m.name.removeprefix("./")
            if not m.isreg() or not name or "/" in name:
                continue  # only flat regular files are control information
            src = tf.extractfile(m)
            assert src is not None
            files[name] = InfoFile(src.read(), m.mode & 0o7777)
    if "control" not in files:
        raise InputError(f"{what}: control.tar has no control file")
    raw = files.pop("control").data
    try:
        text = raw.decode("utf-8")
        fields = dict(Deb822(text).items())
    except UnicodeDecodeError:
        raise InputError(f"{what}: control file is not UTF-8") from None
    return fields, files, text


def parse_conffiles(data: bytes) -> list[str]:
    """Conffile paths in file order; a line may carry flags before the path (remove-on-upgrade)."""
    out = []
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        words = line.split()
        if words:
            out.append(words[-1])
    return out


# --- data.tar ---------------------------------------------------------------------------------


def _stage(src: IO[bytes], staging: Path, size: int) -> StagedFile:
    """Stream `src` into `staging/sha256/<hex>` (content-addressed: equal files share one copy)."""
    tmpdir = staging / "tmp"
    (staging / "sha256").mkdir(parents=True, exist_ok=True)
    tmpdir.mkdir(parents=True, exist_ok=True)
    sha, md5 = hashlib.sha256(), hashlib.md5()
    n = 0
    fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix="deb-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                out.write(chunk)
                n += len(chunk)
        final = staging / "sha256" / sha.hexdigest()
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if n != size:
        raise InputError(f"tar member is {n} bytes, its header says {size}")
    return StagedFile(final, n, sha.hexdigest(), md5.hexdigest())


def _member_path(name: str, pkg: str) -> str | None:
    """The normalised path of a data.tar member; None for the root itself."""
    if name.startswith("/"):
        raise UnsafeContentError(
            f"package {pkg}: member {name!r} has an absolute path",
            hint="the .deb is malformed or hostile; it cannot be installed",
        )
    if name.strip("/") in ("", "."):
        return None
    try:
        return normalize_path(name, what=f"package {pkg}: member")
    except UnsafeContentError as e:
        raise UnsafeContentError(e.message, hint="the .deb is hostile; it cannot be installed") from None


def _link_target(linkname: str) -> str | None:
    """A hardlink's normalised target, or None when it is absolute or climbs with `..`."""
    if linkname.startswith("/"):
        return None
    try:
        return normalize_path(linkname)
    except UnsafeContentError:
        return None


def _extract_data(member: ArMember, pkg: str, staging: Path) -> tuple[
    list[Entry], list[ShippedPath], dict[str, str]
]:
    entries: dict[str, Entry] = {}
    shipped: list[ShippedPath] = []
    md5: dict[str, str] = {}
    files: set[str] = set()  # original paths of regular files, for hardlink targets
    links: set[str] = set()  # image paths of the package's own symlinks

    def refuse(m: tarfile.TarInfo, why: str) -> UnsafeContentError:
        return UnsafeContentError(
            f"package {pkg}: member {m.name!r} {why}",
            hint="the .deb is malformed or hostile; it cannot be installed",
        )

    with _tar_stream(member, f"package {pkg}") as tf:
        for m in tf:
            original = _member_path(m.name, pkg)
            if original is None:
                continue
            path = merge_usr_path(original)
            if any(p in links for p in parent_dirs(path)):
                raise refuse(m, "lies below a symlink of the same package")
            mode = m.mode & 0o7777
            if m.isdir():
                entry = Entry(path, "dir", mode, m.uid, m.gid)
            elif m.issym():
                if not symlink_stays_inside(original, m.linkname):
                    raise refuse(m, f"is a symlink to {m.linkname!r}, which leaves the image root")
                if original in MERGED_USR_DIRS:
                    if m.linkname.strip("/") != f"usr/{original}":
                        raise refuse(m, f"replaces the merged-/usr link /{original}")
                    path = original  # the package ships the merged-/usr link itself
                    target = m.linkname
                else:
                    target = merge_usr_symlink_target(original, path, m.linkname)
                links.add(path)
                entry = Entry(path, "symlink", 0o777, m.uid, m.gid, linkname=target)
            elif m.islnk():
                t = _link_target(m.linkname)
                if t is None or t not in files:
                    raise refuse(m, f"is a hardlink to {m.linkname!r}, not an earlier file of it")
                target = merge_usr_path(t)
                entry = Entry(path, "hardlink", mode, m.uid, m.gid, linkname=target)
                md5[path] = md5[target]
            elif m.isreg():
                src = tf.extractfile(m)
                assert src is not None
                staged = _stage(src, staging, m.size)
                files.add(original)
                md5[path] = staged.md5
                entry = Entry(path, "file", mode, m.uid, m.gid, content=staged)
            else:
                kind = "a device node" if (m.ischr() or m.isblk()) else (
                    "a FIFO" if m.isfifo() else "a special file")
                raise refuse(m, f"is {kind}; images may not carry these")
            shipped.append(ShippedPath(original, path, entry.type))
            old = entries.get(path)
            if old is not None and not (old.type == entry.type == "dir") and old != entry:
                raise refuse(m, f"lands at /{path}, where the package already put a {old.type}")
            entries[path] = entry
    return list(entries.values()), shipped, md5


# --- one package ------------------------------------------------------------------------------


def read_deb(deb: Path, staging: Path, *, what: str = "") -> DebPackage:
    """Read a .deb that was already verified: control information plus staged data entries."""
    what = what or deb.name
    control_m, data_m = _ar_members(deb, what)
    control, info, control_text = _read_control(control_m, what)
    name = control.get("Package", "")
    if not name:
        raise InputError(f"{what}: control file has no Package field")
    entries, shipped, md5 = _extract_data(data_m, name, staging)
    conffiles = parse_conffiles(info["conffiles"].data) if "conffiles" in info else []
    return DebPackage(
        name=name,
        version=control.get("Version", ""),
        architecture=control.get("Architecture", ""),
        control=control,
        info=info,
        conffiles=conffiles,
        entries=entries,
        shipped=shipped,
        md5=md5,
        control_text=control_text,
    )


def extract_pinned(pin: DebPin, store: Store, staging: Path) -> DebPackage:
    """Verify a pinned .deb in the store, read it, and check it is the package the lock names."""
    deb = verified_deb(pin, store)
    what = f"{pin.name}_{pin.version}_{pin.architecture}.deb"
    pkg = read_deb(deb, staging, what=what)
    got = (pkg.name, pkg.version, pkg.architecture)
    if got != (pin.name, pin.version, pin.architecture):
        raise InputError(
            f"{what} contains {got[0]} {got[1]} ({got[2]}), not the pinned package",
            hint="the lock is inconsistent with its own sha256; run `imagelock lock` again",
        )
    return pkg


# --- what a package says of itself, for an SBOM -----------------------------------------------

#: The most bytes read of one wanted member (a copyright file is a few KB; GPL texts ~40 KB).
MAX_WANTED_MEMBER = 1 << 20


def read_control_and_members(deb: Path, wanted: Callable[[str], bool], *,
                             what: str = "") -> tuple[dict[str, str], dict[str, bytes | str]]:
    """A verified .deb's control fields, and the data members `wanted(path)` accepts (paths
    without the leading `./`): a regular file's bytes (at most MAX_WANTED_MEMBER), or a
    symlink's target as text. The data member is streamed; nothing else is kept."""
    what = what or deb.name
    control_m, data_m = _ar_members(deb, what)
    control, _, _ = _read_control(control_m, what)
    found: dict[str, bytes | str] = {}
    with _tar_stream(data_m, what) as tf:
        for m in tf:
            name = m.name.removeprefix("./").rstrip("/")
            if not name or not wanted(name):
                continue
            if m.issym():
                found[name] = m.linkname
            elif m.isreg() and m.size <= MAX_WANTED_MEMBER:
                src = tf.extractfile(m)
                assert src is not None
                found[name] = src.read()
    return control, found
