"""Committed example locks outlive the archive: a test of a committed example runs on the lock
as committed while its pins are served, and on a re-locked copy, with a warning that says how to
refresh the lock, once they are not (tests/example_locks.py).

Played on the signed archive generated for the run (tests/deb_archive.py), where "the archive
moved on" is a pin whose pool path nothing serves."""

from __future__ import annotations

import json
import shutil
import socket
import warnings
from pathlib import Path

import pytest
from example_locks import ExampleLockRotted, fresh_copy, unserved_pins
from helpers import REPO, run
from security_ahead import CveDay


@pytest.fixture
def example(generated_cve_day: CveDay, tmp_path: Path) -> Path:
    """An example locked against the generated archive: cve-tool, libother1 and what they need."""
    d = tmp_path / "examples" / "cve"
    d.mkdir(parents=True)
    (d / "imagelock.yaml").write_text(generated_cve_day.spec(with_security=True))
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 0, r.stderr
    return d


def _packages(lock: Path) -> dict[str, dict[str, str]]:
    return {p["name"]: p for p in json.loads(lock.read_text())["debian"]["linux/amd64"]["packages"]}


def test_a_lock_whose_pins_are_all_served_is_used_as_committed(example: Path, tmp_path: Path) -> None:
    assert unserved_pins(example) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExampleLockRotted)
        got = fresh_copy(example, tmp_path / "copy", shown_as="examples/cve",
                         store=tmp_path / "store")
    assert got.rotted == ()
    assert (got.path / "imagelock.lock").read_bytes() == (example / "imagelock.lock").read_bytes()


def test_a_pin_the_archive_no_longer_serves_is_relocked_in_a_copy_with_a_warning(
    example: Path, tmp_path: Path,
) -> None:
    lock = json.loads((example / "imagelock.lock").read_text())
    pins = lock["debian"]["linux/amd64"]["packages"]
    gone = next(p for p in pins if p["name"] == "libother1")
    served_location = gone["location"]
    gone["location"] = served_location.replace(gone["version"], "0.1-removed")
    assert gone["location"] != served_location
    (example / "imagelock.lock").write_text(json.dumps(lock, indent=2) + "\n")
    committed = (example / "imagelock.lock").read_bytes()
    assert unserved_pins(example) == [f"libother1 {gone['version']} ({gone['location']})"]

    with pytest.warns(ExampleLockRotted) as caught:
        got = fresh_copy(example, tmp_path / "copy", shown_as="examples/cve",
                         store=tmp_path / "store")
    (warning,) = caught
    message = str(warning.message)
    assert f"libother1 {gone['version']} ({gone['location']})" in message
    assert "imagelock lock examples/cve --upgrade-all" in message
    assert got.rotted == (f"libother1 {gone['version']} ({gone['location']})",)
    # The copy is re-locked and everything it pins is served again; the example is untouched.
    assert _packages(got.path / "imagelock.lock")["libother1"]["location"] == served_location
    assert unserved_pins(got.path) == []
    assert (example / "imagelock.lock").read_bytes() == committed
    # The re-locked copy builds to the digest its own lock expects.
    r = run(["build", str(got.path), "-o", str(tmp_path / "img"), "--json"],
            env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout)["platforms"]["linux/amd64"]["manifest_digest"]
    assert built == got.expected["manifest_digest"]


def test_a_mirror_that_cannot_be_asked_is_an_error_not_a_rotted_lock(
    example: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving: nothing listens there
    for source in ("DEBIAN", "SECURITY"):
        monkeypatch.setenv(f"IMAGELOCK_MIRROR_{source}", f"http://127.0.0.1:{port}/{source}")
    with pytest.raises(AssertionError, match="not a rotted lock"):
        unserved_pins(example)


@pytest.mark.network
def test_the_real_mirror_says_which_pin_of_a_committed_lock_is_gone(tmp_path: Path) -> None:
    """The same question put to the machine's Debian mirror about python-base's lock, with one
    pin's pool path changed to a file it never had: exactly that pin is reported."""
    ex = tmp_path / "python-base"
    shutil.copytree(REPO / "examples/python-base", ex)
    lock = json.loads((ex / "imagelock.lock").read_text())
    pin = lock["debian"]["linux/amd64"]["packages"][0]
    pin["location"] = pin["location"].replace(pin["version"], pin["version"] + "~never")
    (ex / "imagelock.lock").write_text(json.dumps(lock, indent=2) + "\n")
    assert unserved_pins(ex) == [f"{pin['name']} {pin['version']} ({pin['location']})"]
