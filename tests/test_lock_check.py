"""`imagelock lock --check` in a vendor's CI (issue 11, item 7): is the committed lock still the
lock of the committed spec and context?

It compares the spec and context with the lock (digests, sections, context files) and resolves
nothing, so it answers offline, and a Debian lock does not turn "out of date" each time the
archive republishes its indexes. These tests run with every mirror pointing at a closed port:
a check that tried to resolve would fail.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import copy_example, run

# Nothing listens on port 9 of loopback: a lookup would fail at once, never reach an archive.
NO_MIRRORS = {"IMAGELOCK_MIRROR_BOOKWORM": "http://127.0.0.1:9/debian",
              "IMAGELOCK_MIRROR_SECURITY": "http://127.0.0.1:9/debian-security",
              "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1"}


def _check(ex: Path, tmp: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = run(["lock", str(ex), "--check", "--json", *extra],
            env={**NO_MIRRORS, "IMAGELOCK_STORE": str(tmp / "empty-store")}, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def test_a_debian_lock_whose_archive_republished_its_indexes_is_still_up_to_date(
        tmp_path: Path) -> None:
    ex = copy_example("python-base", tmp_path / "python-base")
    lock_path = ex / "imagelock.lock"
    lock = json.loads(lock_path.read_text())
    # What a fresh resolution would now record: the archive signed new indexes since.
    for index in lock["debian"]["linux/amd64"]["indexes"]:
        index["inrelease_sha256"] = "1" * 64
        index["packages_sha256"] = "2" * 64
        index["date"] = "Sat, 01 Jan 2028 00:00:00 UTC"
    lock_path.write_text(json.dumps(lock, indent=2, ensure_ascii=False) + "\n")
    code, out = _check(ex, tmp_path)
    assert (code, out["up_to_date"], out["differences"]) == (0, True, []), out
    assert not any((tmp_path / "empty-store").rglob("*"))  # nothing fetched

    human = run(["lock", str(ex), "--check"], env=NO_MIRRORS)
    assert human.returncode == 0 and "is up to date" in human.stdout
    assert lock_path.read_text() == json.dumps(lock, indent=2, ensure_ascii=False) + "\n"  # unwritten


def test_an_edited_spec_is_out_of_date_naming_the_section(tmp_path: Path) -> None:
    ex = copy_example("python-base", tmp_path / "python-base")
    spec = ex / "imagelock.yaml"
    spec.write_text("# a comment changes no meaning\n" + spec.read_text())
    code, out = _check(ex, tmp_path)
    assert (code, out["up_to_date"]) == (0, True), out
    spec.write_text(spec.read_text().replace("      - dash ", "      - curl\n      - dash "))
    before = (ex / "imagelock.lock").read_bytes()
    code, out = _check(ex, tmp_path)
    assert (code, out["up_to_date"]) == (1, False)
    assert out["differences"] == ["the lock is stale: the spec changed since it was made "
                                  "(changed: contents)"]
    assert (ex / "imagelock.lock").read_bytes() == before


def test_a_changed_context_file_is_out_of_date_naming_the_file(tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    code, out = _check(ex, tmp_path)
    assert (code, out["differences"]) == (0, []), out
    lock = json.loads((ex / "imagelock.lock").read_text())
    pinned = next(p for p in lock["files"] if p["type"] == "file")
    ctx = ex / lock["context"]
    (ctx / pinned["src"]).write_bytes((ctx / pinned["src"]).read_bytes() + b"\n# changed\n")
    code, out = _check(ex, tmp_path)
    assert code == 1
    assert out["differences"] == ["the lock is stale: context files changed since it was made: "
                                  + pinned["src"]]
    human = run(["lock", str(ex), "--check"], env=NO_MIRRORS)
    assert human.returncode == 1 and pinned["src"] in human.stdout


def test_no_lock_is_out_of_date_and_nonsense_is_bad_input(tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "imagelock.lock").unlink()
    code, out = _check(ex, tmp_path)
    assert (code, out["differences"]) == (1, [f"there is no lock at {ex / 'imagelock.lock'}"])
    (ex / "imagelock.lock").write_text("{not json")
    code, out = _check(ex, tmp_path)
    assert (code, out["path"]) == (2, str(ex / "imagelock.lock"))  # bad input (not JSON), exit 2
    ex2 = copy_example("python-base", tmp_path / "pb")
    code, out = _check(ex2, tmp_path, "--upgrade", "libssl3")
    assert code == 2 and "--check resolves nothing" in out["message"]
