"""The store: content-addressed, checked on every use, safe with concurrent writers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import IMAGELOCK, copy_example, file_server, run
from imagelock.core.errors import IntegrityError
from imagelock.core.scratch import scratch_dir
from imagelock.fetch.store import Store


def _fill(root: str, data: bytes, n: int) -> str:
    store = Store(root)
    for _ in range(n):
        store.add_chunks(iter([data[: len(data) // 2], data[len(data) // 2 :]]),
                         sha256=hashlib.sha256(data).hexdigest())
    return "ok"


def test_two_processes_filling_the_same_object_both_succeed(tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_fill, [(str(tmp_path), data, 20), (str(tmp_path), data, 20)])
    assert results == ["ok", "ok"]
    store = Store(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    assert store.path_for(sha).read_bytes() == data
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_corrupted_object_is_detected_deleted_and_reported(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sha, _ = store.add_chunks(iter([b"good bytes"]))
    p = store.path_for(sha)
    os.chmod(p, 0o644)
    p.write_bytes(b"evil bytes")
    with pytest.raises(IntegrityError, match="corrupt") as e:
        store.verify(sha)
    assert e.value.exit_code == 3
    assert not p.exists()


def test_wrong_content_never_enters_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(IntegrityError):
        store.add_chunks(iter([b"abc"]), sha256="0" * 64)
    assert list((tmp_path / "sha256").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


# -- what a killed process leaves behind ----------------------------------------------------------

def _download_project(tmp: Path, base: str) -> Path:
    d = tmp / "proj"
    d.mkdir()
    (d / "imagelock.yaml").write_text(
        "version: 1\nimage: {name: dl/test}\n"
        f"sources:\n  tools: {{kind: http, mirrors: [\"{base}/files\"]}}\n"
        "contents:\n  downloads:\n    - {source: tools, path: blob, dest: /blob}\n")
    return d


def _wait_for(predicate: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_download_killed_mid_way_leaves_a_partial_file_the_next_run_removes(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(os.urandom(100_000))
    with file_server(served) as (base, srv):
        d = _download_project(tmp_path, base)
        assert run(["lock", str(d)], env=store_env).returncode == 0
        fresh = {**store_env, "IMAGELOCK_STORE": str(tmp_path / "fresh")}
        srv.stall_seconds = 60
        proc = subprocess.Popen([IMAGELOCK, "fetch", str(d), "--mirror", f"tools={base}/stall"],
                                env={**os.environ, **fresh}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        tmp = tmp_path / "fresh" / "tmp"
        _wait_for(lambda: tmp.is_dir() and any(tmp.iterdir()), "the partial download")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(list(tmp.iterdir())) == 1  # the killed download's partial file
        r = run(["fetch", str(d)], env=fresh)  # the next run
        assert r.returncode == 0, r.stderr
    assert list(tmp.iterdir()) == []


def _write_slowly(root: str, started: Any, go_on: Any, data: bytes, done: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield data[:1000]
        started.set()
        go_on.wait(30)
        yield data[1000:]

    sha, _ = Store(root).add_chunks(chunks(), sha256=hashlib.sha256(data).hexdigest())
    done.put(sha)


def test_two_runs_sharing_a_store_never_remove_each_others_partial_files(tmp_path: Path) -> None:
    """While one process downloads into the store, another opens it (which sweeps the partial
    files of dead writers): the live download's file stays, and completes."""
    data = os.urandom(50_000)
    ctx = multiprocessing.get_context("fork")
    started, go_on, done = ctx.Event(), ctx.Event(), ctx.Queue()
    writer = ctx.Process(target=_write_slowly, args=(str(tmp_path), started, go_on, data, done))
    writer.start()
    try:
        assert started.wait(30)
        partial = list((tmp_path / "tmp").iterdir())
        assert len(partial) == 1
        swept = Store(tmp_path).sweep()  # another run opening the same store
        assert swept == [] and partial[0].exists()
        go_on.set()
        sha = done.get(timeout=30)
    finally:
        writer.join(30)
    assert writer.exitcode == 0
    assert Store(tmp_path).path_for(sha).read_bytes() == data
    assert list((tmp_path / "tmp").iterdir()) == []


def _hold_scratch(base: str, ready: Any) -> None:
    with scratch_dir("imagelock-build-", Path(base)) as d:
        (d / "half-built-layer.tar").write_bytes(b"x" * 1000)
        ready.set()
        time.sleep(120)


def test_build_directories_of_killed_builds_are_removed_by_the_next_build(
    tmp_path: Path,
) -> None:
    """$TMPDIR/imagelock-build-*: a killed build's directory goes, a running build's stays, and
    so do another user's and an unmarked one younger than a day (an older version may be at
    work in it); an unmarked one older than a day goes."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    ctx = multiprocessing.get_context("fork")
    dead_ready, live_ready = ctx.Event(), ctx.Event()
    dead = ctx.Process(target=_hold_scratch, args=(str(tmpdir), dead_ready))
    live = ctx.Process(target=_hold_scratch, args=(str(tmpdir), live_ready))
    dead.start()
    assert dead_ready.wait(30)
    dead_dir = next(tmpdir.iterdir())
    os.kill(dead.pid, signal.SIGKILL)
    dead.join()
    live.start()
    try:
        assert live_ready.wait(30)
        live_dir = next(p for p in tmpdir.iterdir() if p != dead_dir)
        others = tmpdir / "imagelock-build-someone-else"
        others.mkdir()
        (others / ".imagelock-owner").write_bytes(b"")
        os.chown(others, 12345, 12345)
        young, old = tmpdir / "imagelock-build-young", tmpdir / "imagelock-build-old"
        young.mkdir()
        old.mkdir()
        os.utime(old, (time.time() - 2 * 86400,) * 2)

        r = run(["build", str(copy_example("hello", tmp_path / "hello")), "-o",
                 str(tmp_path / "out")],
                env={"TMPDIR": str(tmpdir), "IMAGELOCK_STORE": str(tmp_path / "store")})
        assert r.returncode == 0, r.stderr
        left = set(tmpdir.iterdir())
        assert dead_dir not in left and old not in left
        assert {live_dir, others, young} == left
    finally:
        live.kill()
        live.join()


def test_a_corrupt_store_object_is_fetched_again_in_the_same_online_run(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(b"payload " * 1000)
    with file_server(served) as (base, _):
        d = _download_project(tmp_path, base)
        assert run(["lock", str(d)], env=store_env).returncode == 0
        sha = json.loads((d / "imagelock.lock").read_text())["downloads"][0]["sha256"]
        obj = Path(store_env["IMAGELOCK_STORE"]) / "sha256" / sha
        os.chmod(obj, 0o644)
        obj.write_bytes(b"bit rot " * 1000)
        r = run(["fetch", str(d), "--offline"], env=store_env)
        assert r.returncode == 3 and "corrupt" in r.stderr, r.stderr
        obj.write_bytes(b"bit rot " * 1000)
        r = run(["build", str(d), "-o", str(tmp_path / "out"), "--json"], env=store_env)
        assert r.returncode == 0, r.stderr
    assert obj.read_bytes() == b"payload " * 1000
