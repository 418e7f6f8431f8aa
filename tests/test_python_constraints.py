"""contents.python.constraints (issue 16): a pip `-c` file from the context bounds the wheels,
is pinned by sha256, and an edit to it (or to a file a requirements file includes with -c/-r)
makes the lock stale for `build` as well as for `lock --check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from imagelock import api
from imagelock.core.errors import InputError, StaleLockError
from imagelock.formats.python import PythonContents
from imagelock.lock.python_files import pip_files_sha256

SPEC = """version: 1
image: {name: constrained}
source_date_epoch: 0
contents:
  python:
    python_version: "3.11"
    compile: false
    %s
"""


def _spec(tmp: Path, python: str) -> Path:
    ex = tmp / "ex"
    ex.mkdir(exist_ok=True)
    (ex / "imagelock.yaml").write_text(SPEC % python)
    return ex


def test_every_file_pip_reads_is_found_and_hashed(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "main.txt").write_text("-r more.txt\nsix\n--constraint=../c1.txt # x\n")
    (tmp_path / "reqs" / "more.txt").write_text("-c ../c2.txt\nidna\n")
    (tmp_path / "c1.txt").write_text("six==1.16.0\n")
    (tmp_path / "c2.txt").write_text("idna==3.7\n")
    (tmp_path / "top.txt").write_text("certifi<2030\n")
    got = pip_files_sha256(PythonContents(requirements_file="reqs/main.txt",
                                          constraints="top.txt"), tmp_path)
    assert got is not None and sorted(got) == ["c1.txt", "c2.txt", "reqs/more.txt", "top.txt"]
    (tmp_path / "c2.txt").write_text("idna==3.6\n")
    again = pip_files_sha256(PythonContents(requirements_file="reqs/main.txt",
                                            constraints="top.txt"), tmp_path)
    assert again is not None and again["c2.txt"] != got["c2.txt"]
    assert {k: v for k, v in again.items() if k != "c2.txt"} == \
        {k: v for k, v in got.items() if k != "c2.txt"}


@pytest.mark.parametrize(("line", "words"), [
    ("-c ../outside.txt", "outside the context"),
    ("-c https://example.invalid/c.txt", "is a URL"),
    ("-c missing.txt", "not a file"),
    ("--index-url http://x.invalid/simple", "uses --index-url"),
])
def test_an_included_file_that_would_escape_or_is_missing_is_refused(tmp_path: Path, line: str,
                                                                     words: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "outside.txt").write_text("six\n")
    (ctx / "c.txt").write_text(line + "\n")
    with pytest.raises(InputError) as err:
        pip_files_sha256(PythonContents(requirements=["six"], constraints="c.txt"), ctx)
    assert words in err.value.message
    assert err.value.line == 1


@pytest.mark.network
@pytest.mark.slow
def test_constraints_bound_the_lock_and_an_edit_makes_it_stale(tmp_path: Path) -> None:
    ex = _spec(tmp_path, "requirements: [six]\n    constraints: upper.txt")
    (ex / "upper.txt").write_text("six===1.16.0\n")
    store = tmp_path / "store"
    api.lock(ex, store=store)
    lock = json.loads((ex / "imagelock.lock").read_text())
    assert [w["version"] for w in lock["python"]["linux/amd64"]] == ["1.16.0"]
    assert list(lock["python_install"]["files_sha256"]) == ["upper.txt"]
    assert api.build(ex, output=tmp_path / "o", store=store).verdict == "reproduced"
    (ex / "upper.txt").write_text("six===1.17.0\n")
    with pytest.raises(StaleLockError) as err:
        api.build(ex, output=tmp_path / "o2", store=store)
    assert "upper.txt" in err.value.message
    check = api.lock_up_to_date(ex)
    assert not check.up_to_date and any("upper.txt" in d for d in check.differences)


@pytest.mark.network
@pytest.mark.slow
def test_a_constraints_line_inside_the_requirements_file_is_watched_too(tmp_path: Path) -> None:
    ex = _spec(tmp_path, "requirements_file: requirements.txt")
    (ex / "requirements.txt").write_text("six\n-c pins.txt\n")
    (ex / "pins.txt").write_text("six==1.16.0\n")
    store = tmp_path / "store"
    api.lock(ex, store=store)
    (ex / "pins.txt").write_text("six==1.17.0\n")
    with pytest.raises(StaleLockError) as err:
        api.build(ex, output=tmp_path / "o", store=store)
    assert "pins.txt" in err.value.message


@pytest.mark.network
@pytest.mark.slow
def test_a_conflict_with_the_constraints_shows_pips_causes_and_points_at_the_file(
        tmp_path: Path) -> None:
    ex = _spec(tmp_path, "requirements: [six==1.16.0]\n    constraints: upper.txt")
    (ex / "upper.txt").write_text("six===1.17.0\n")
    with pytest.raises(InputError) as err:
        api.lock(ex, store=tmp_path / "store")
    assert "The user requested (constraint) six===1.17.0" in err.value.message
    assert "The user requested six==1.16.0" in err.value.message
    assert "upper.txt" in (err.value.hint or "")
    assert not (ex / "imagelock.lock").exists()


@pytest.mark.network
@pytest.mark.slow
def test_relocking_keeps_wheel_pins_and_upgrade_moves_only_the_named_one(tmp_path: Path) -> None:
    ex = _spec(tmp_path, "requirements: [six, idna]\n    constraints: upper.txt")
    store = tmp_path / "store"
    (ex / "upper.txt").write_text("six==1.16.0\nidna==3.6\n")
    api.lock(ex, store=store)

    def versions() -> dict[str, str]:
        lock = json.loads((ex / "imagelock.lock").read_text())
        return {w["name"]: w["version"] for w in lock["python"]["linux/amd64"]}

    assert versions() == {"six": "1.16.0", "idna": "3.6"}
    (ex / "upper.txt").write_text("six<=1.17.0\nidna<=3.7\n")
    api.lock(ex, store=store)
    assert versions() == {"six": "1.16.0", "idna": "3.6"}  # kept: the spec still allows them
    api.lock(ex, store=store, upgrade=["six"])
    assert versions() == {"six": "1.17.0", "idna": "3.6"}


@pytest.mark.network
@pytest.mark.slow
def test_a_pin_held_back_for_want_of_a_wheel_is_named_with_the_newer_version(
        tmp_path: Path) -> None:
    # ovs: the releases after 2.17.1.post1 publish a source archive only (nova's case).
    ex = _spec(tmp_path, "requirements: [ovs]")
    res = api.lock(ex, store=tmp_path / "store")
    held = [n for n in res.notes if n.startswith("warning: ovs: locked ")]
    assert len(held) == 1, res.notes
    lock = json.loads((ex / "imagelock.lock").read_text())
    locked = {w["name"]: w["version"] for w in lock["python"]["linux/amd64"]}["ovs"]
    assert f"locked {locked}, though " in held[0] and "source archive only" in held[0]
    # the same pin fixed by the user's constraints is their choice: no warning
    (ex / "c.txt").write_text(f"ovs==={locked}\n")
    _spec(tmp_path, "requirements: [ovs]\n    constraints: c.txt")
    again = api.lock(ex, store=tmp_path / "store", upgrade_all=True)
    assert not [n for n in again.notes if "ovs: locked" in n]
