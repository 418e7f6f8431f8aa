"""Reading and writing the two files a user keeps: the spec (YAML) and the lock (JSON, byte-stable)."""

from __future__ import annotations

import json
from pathlib import Path

from imagelock.core.atomic import atomic_file
from imagelock.core.confine import own_file
from imagelock.formats.load import load_json_model, load_yaml_model
from imagelock.formats.lock import (
    Lock,
)
from imagelock.formats.spec import Spec


def load_spec(path: Path) -> Spec:
    """The spec at `path`; a symlink leading out of its directory is refused unread."""
    return load_yaml_model(own_file(path, "spec"), Spec, "spec")


def read_lock(path: Path) -> Lock:
    """The lock at `path`; a symlink leading out of its directory is refused unread."""
    return load_json_model(own_file(path, "lock"), Lock, "lock")


def lock_bytes(lock: Lock) -> bytes:
    """The lock's exact bytes: fixed key order, two-space indent, UTF-8, final newline."""
    data = lock.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_lock(lock: Lock, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(lock_bytes(lock))
