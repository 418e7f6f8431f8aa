"""The store: content-addressed, checked on every use, safe with concurrent writers."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import pytest
from imagelock.core.errors import IntegrityError
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
