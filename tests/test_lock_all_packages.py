"""`Architecture: all` Debian packages are pinned once in a lock of several platforms (issue 17):
the lock file lists them in `debian_all` and each platform's `packages` only its own; in memory
every platform's list is whole. Locks written before (each platform listing everything) read the
same, and a `debian_all` that contradicts itself is refused with a hint to re-lock."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO
from imagelock.core.errors import InputError
from imagelock.formats.files import lock_bytes, read_lock


def _two_platform_lock() -> dict[str, Any]:
    """python-base's lock given an arm64 platform: the `all` pins the same, the others not."""
    lock = json.loads((REPO / "examples/python-base/imagelock.lock").read_text())
    amd = lock["debian"]["linux/amd64"]
    arm = copy.deepcopy(amd)
    for p in arm["packages"]:
        if p["architecture"] != "all":
            p["architecture"] = "arm64"
            p["sha256"] = p["sha256"][::-1]
            p["location"] = p["location"].replace("_amd64.deb", "_arm64.deb")
    for i in arm["indexes"]:
        i["architecture"] = "arm64"
    lock["platforms"] = ["linux/amd64", "linux/arm64"]
    lock["debian"]["linux/arm64"] = arm
    lock["expected"]["linux/arm64"] = lock["expected"]["linux/amd64"]
    return lock


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    p = tmp_path / "imagelock.lock"
    p.write_text(json.dumps(doc, indent=2) + "\n")
    return p


def test_a_two_platform_lock_writes_each_all_package_once_and_reads_back_whole(tmp_path: Path) -> None:
    old_form = _two_platform_lock()
    lock = read_lock(_write(tmp_path, old_form))
    written = json.loads(lock_bytes(lock))
    all_names = sorted(p["name"] for p in old_form["debian"]["linux/amd64"]["packages"]
                       if p["architecture"] == "all")
    assert all_names  # python-base has some (tzdata, ca-certificates, ...)
    assert [p["name"] for p in written["debian_all"]] == all_names
    assert list(written).index("debian_all") == list(written).index("debian") + 1
    for platform in ("linux/amd64", "linux/arm64"):
        own = written["debian"][platform]["packages"]
        assert own and all(p["architecture"] != "all" for p in own)
    # Read back, every platform installs both lists; the old form and the new are one lock.
    again = read_lock(_write(tmp_path, written))
    assert again == lock
    assert [p.name for p in again.debian["linux/arm64"].packages] == \
        [p["name"] for p in old_form["debian"]["linux/arm64"]["packages"]]
    assert lock_bytes(again) == lock_bytes(lock)


def test_a_one_platform_lock_has_no_debian_all_and_keeps_its_bytes() -> None:
    path = REPO / "examples/python-base/imagelock.lock"
    assert lock_bytes(read_lock(path)) == path.read_bytes()
    assert b"debian_all" not in path.read_bytes()


def test_an_all_package_at_another_version_on_one_platform_stays_with_each_platform(tmp_path: Path) -> None:
    doc = _two_platform_lock()
    tz = next(p for p in doc["debian"]["linux/arm64"]["packages"] if p["name"] == "tzdata")
    tz["version"] += "+other"
    written = json.loads(lock_bytes(read_lock(_write(tmp_path, doc))))
    assert "tzdata" not in {p["name"] for p in written["debian_all"]}
    for platform in ("linux/amd64", "linux/arm64"):
        assert "tzdata" in {p["name"] for p in written["debian"][platform]["packages"]}


@pytest.mark.parametrize("break_it, said", [
    (lambda d: d["debian"]["linux/arm64"]["packages"].append(d["debian_all"][0]), "is also pinned for linux/arm64"),
    (lambda d: d["debian_all"].append(d["debian"]["linux/amd64"]["packages"][0]), "only Architecture: all pins"),
])
def test_a_debian_all_that_contradicts_the_platforms_is_refused_with_a_hint_to_relock(
    tmp_path: Path, break_it: Any, said: str
) -> None:
    written = json.loads(lock_bytes(read_lock(_write(tmp_path, _two_platform_lock()))))
    break_it(written)
    with pytest.raises(InputError) as e:
        read_lock(_write(tmp_path, written))
    text = str(e.value) + (e.value.hint or "")
    assert said in text and "re-lock" in text and "imagelock.lock" in text


def test_diff_per_platform_reviews_only_what_that_platforms_image_gets(tmp_path: Path) -> None:
    from imagelock import api

    old = _two_platform_lock()
    new = copy.deepcopy(old)
    pin = next(p for p in new["debian"]["linux/arm64"]["packages"] if p["architecture"] == "arm64")
    pin["version"] += "+deb12u9"
    pin["sha256"] = "0" * 64
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    a, b = _write(tmp_path / "old", old), _write(tmp_path / "new", new)
    assert api.diff(a, b, platform="linux/amd64").empty
    arm = api.diff(a, b, platform="linux/arm64")
    assert not arm.empty and list(arm.debian) == ["linux/arm64"]
    assert [u.name for u in arm.debian["linux/arm64"].upgraded] == [pin["name"]]
    whole = api.diff(a, b)
    assert set(whole.debian) == {"linux/amd64", "linux/arm64"} and not whole.debian["linux/amd64"].upgraded
    with pytest.raises(InputError, match="no platform linux/s390x"):
        api.diff(a, b, platform="linux/s390x")
