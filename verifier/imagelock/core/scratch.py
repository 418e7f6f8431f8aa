"""Scratch space that a killed process does not leave behind forever.

A process that is killed (kill -9, OOM, power loss) cannot clean up after itself, so the next
run does it: every scratch directory and partial file carries a lock (flock) held by the process
that uses it, for as long as it uses it. The kernel releases the lock when that process dies,
however it dies, so "the lock can be taken" means exactly "its owner is gone". Another process
at work, even one sharing the same store or temporary directory, always holds its lock, and its
files are never touched.

To leave no moment in which a new directory or file exists unlocked under its final name, the
lock is taken on a file created under a temporary name, which is then renamed into place (a
lock belongs to the open file, and survives the rename).

Leftovers of older versions, which did not lock, and the rare file caught between creation and
rename, carry no lock: they are removed only once `UNLOCKED_AGE` old.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

OWNER = ".imagelock-owner"  # the lock file inside a scratch directory
UNLOCKED_AGE = 24 * 3600  # seconds after which an unlocked leftover is taken to be abandoned


def _lock_new(path: Path) -> int:
    """Create `path` already locked (created as a temporary name, locked, renamed); returns the
    descriptor that holds the lock."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lock-")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, path)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd


def abandoned(path: Path | str) -> int | None:
    """If the file at `path` is locked by nobody, lock it and return the descriptor (the caller
    removes what it guards, then closes it); None while its owner lives (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def old_enough(st: os.stat_result) -> bool:
    return time.time() - st.st_mtime > UNLOCKED_AGE


def sweep_dirs(base: Path, prefix: str) -> list[Path]:
    """Remove the directories `base/<prefix>*` of this user whose owner died; returns them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue  # only our own real directories, never a link or another user's
        path = Path(entry.path)
        if os.path.lexists(path / OWNER):
            fd = abandoned(path / OWNER)
            if fd is None:
                continue  # its owner is at work
        elif old_enough(st):
            fd = -1  # never marked (an older version's, or killed while being created)
        else:
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


@contextlib.contextmanager
def scratch_dir(prefix: str, base: Path | None = None) -> Iterator[Path]:
    """A private directory `base/<prefix>XXXX` (base: the temporary directory), removed on
    exit; directories of the same prefix whose owner died are removed first."""
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    sweep_dirs(root, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        fd = _lock_new(path / OWNER)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)  # the lock outlives the removal: no sweeper sees a half-removed tree


def locked_temp_file(directory: Path, prefix: str) -> tuple[int, Path]:
    """A new file `directory/<prefix>XXXX`, open for writing and locked until the descriptor is
    closed; `sweep_files(directory, prefix)` removes it only once its owner has died."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".new-")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        final = directory / (prefix + Path(tmp).name.removeprefix(".new-"))
        os.rename(tmp, final)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, final


def sweep_files(directory: Path, prefix: str, legacy: tuple[str, ...] = ()) -> list[Path]:
    """Remove `directory/<prefix>*` files whose owner died, and our own unlocked `.new-*` files
    or files named with a `legacy` prefix (an older version's) once UNLOCKED_AGE old; returns
    them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(prefix):
            fd = abandoned(path)
            if fd is None:
                continue
            try:
                path.unlink(missing_ok=True)
                removed.append(path)
            except OSError:
                pass  # a read-only store (inside the sandbox): the next writer will do it
            finally:
                os.close(fd)
        elif entry.name.startswith((".new-", *legacy)):
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and old_enough(st):
                    path.unlink()
                    removed.append(path)
            except OSError:
                pass
    return removed
