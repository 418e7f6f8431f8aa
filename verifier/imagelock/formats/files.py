"""Reading and writing the two files a user keeps: the spec (YAML) and the lock (JSON, byte-stable)."""

from __future__ import annotations

import json
from pathlib import Path

from imagelock.core.atomic import atomic_file
from imagelock.core.confine import own_file
from imagelock.core.errors import InputError
from imagelock.core.strict_json import read_limited
from imagelock.formats.load import (
    MAX_JSON_BYTES,
    MAX_YAML_BYTES,
    load_json_model,
    load_yaml_model,
    parse_yaml,
)
from imagelock.formats.lock import (
    Lock,
)
from imagelock.formats.sets import SetLock, SetSpec, image_spec
from imagelock.formats.spec import Spec


def load_spec(path: Path, image: str | None = None) -> Spec:
    """The spec at `path`; a symlink leading out of its directory is refused unread. For a set
    spec, the spec of its image `image` (a lock's `set_image`), as the set derives it."""
    if is_set_spec(path):
        if image is None:
            raise InputError(f"{path.name} defines a set of images; this command takes one image",
                             path=path, field="images",
                             hint="give the lock of one image of the set (imagelock.NAME.lock)")
        return image_spec(load_set_spec(path), image)
    return load_yaml_model(own_file(path, "spec"), Spec, "spec")


def is_set_spec(path: Path) -> bool:
    """Whether the spec at `path` defines a set of images (`images:` at the top)."""
    text = read_limited(own_file(path, "spec"), limit=MAX_YAML_BYTES, what="spec")
    try:
        data, _ = parse_yaml(text.decode("utf-8"))
    except Exception:  # noqa: BLE001 - load_spec then says what is wrong, with its line
        return False
    return isinstance(data, dict) and "images" in data and "image" not in data


def load_set_spec(path: Path) -> SetSpec:
    """The set spec at `path`; a symlink leading out of its directory is refused unread."""
    return load_yaml_model(own_file(path, "spec"), SetSpec, "spec")


def is_set_lock(path: Path) -> bool:
    """Whether the lock at `path` is a set's index (`"kind": "set"`) rather than an image lock."""
    raw = read_limited(own_file(path, "lock"), limit=MAX_JSON_BYTES, what="lock")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return False  # read_lock then says what is wrong, within its bounds
    return isinstance(data, dict) and data.get("kind") == "set"


def read_set_lock(path: Path) -> SetLock:
    """The set index at `path`; a symlink leading out of its directory is refused unread."""
    return load_json_model(own_file(path, "lock"), SetLock, "lock")


def set_lock_bytes(index: SetLock) -> bytes:
    """The index's exact bytes, written like a lock's."""
    data = index.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_lock(path: Path) -> Lock:
    """The lock at `path`; a symlink leading out of its directory is refused unread. A set's
    index is refused naming what this command takes instead."""
    if is_set_lock(path):
        raise InputError(f"{path.name} is the index of a set of images; this command takes one "
                         "image's lock", path=path,
                         hint="give imagelock.NAME.lock beside it (`imagelock build` takes the "
                         "index, with --select)")
    return load_json_model(own_file(path, "lock"), Lock, "lock")


def lock_bytes(lock: Lock) -> bytes:
    """The lock's exact bytes: fixed key order, two-space indent, UTF-8, final newline."""
    data = lock.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_lock(lock: Lock, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(lock_bytes(lock))
