"""The fleet's commands refuse what cannot work before doing anything, with exit codes a
scheduler can act on: 2 for a recipe to fix, 3 for "retry later"."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import run

from imagelock.core.errors import FetchError
from imagelock.fleet.once import _locked

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event


def test_watch_without_the_rebuilders_key_is_a_usage_error(tmp_path: Path) -> None:
    r = run(["watch", "127.0.0.1:1/acme/app"])
    assert r.returncode == 2
    assert "--rebuilder" in r.stderr


def test_skip_if_vouched_needs_a_signing_key_and_a_pushed_vsa(tmp_path: Path) -> None:
    r = run(["rebuild", "127.0.0.1:1/acme/app@sha256:" + "0" * 64, "--skip-if-vouched",
             "--json"])
    assert r.returncode == 2, r.stderr
    assert "--skip-if-vouched needs --sign KEY and --push-attestation" in json.loads(
        r.stdout)["message"]


def test_a_registry_that_cannot_be_reached_is_exit_3_retry_later(tmp_path: Path) -> None:
    key = tmp_path / "fleet.key"
    assert run(["keygen", "-o", str(key), "--no-passphrase"]).returncode == 0
    env = {"IMAGELOCK_HTTP_BACKOFF": "0.01", "IMAGELOCK_HTTP_RETRY_SECONDS": "0.1"}
    r = run(["watch", "127.0.0.1:1/acme/app", "--rebuilder", f"{key}.pub"], env=env)
    assert r.returncode == 3, r.stderr
    r = run(["status", "127.0.0.1:1/acme/app", "--rebuilder", f"{key}.pub"], env=env)
    assert r.returncode == 3, r.stderr
    r = run(["rebuild", "127.0.0.1:1/acme/app@sha256:" + "0" * 64, "--no-sandbox"], env=env)
    assert r.returncode == 3, r.stderr


def test_a_file_of_references_names_the_bad_line(tmp_path: Path) -> None:
    key = tmp_path / "fleet.key"
    assert run(["keygen", "-o", str(key), "--no-passphrase"]).returncode == 0
    listed = tmp_path / "images.txt"
    listed.write_text("# the images we watch\n127.0.0.1:1/acme/app:1.0\nnot a reference\n")
    r = run(["watch", str(listed), "--rebuilder", f"{key}.pub", "--json"])
    assert r.returncode == 2
    err = json.loads(r.stdout)
    assert err["path"] == str(listed) and err["field"] == "line 3"


def _hold(path: str, ready: Event, release: Event) -> None:
    with _locked(Path(path), 5):
        ready.set()
        release.wait(10)


def test_a_claim_held_by_another_worker_past_the_wait_is_retry_later(tmp_path: Path) -> None:
    path = tmp_path / "claims" / ("ab" * 32 + ".lock")
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(FetchError) as e, _locked(path, 0.5):
            pass
        assert e.value.exit_code == 3 and "held" in e.value.message
    finally:
        release.set()
        holder.join(10)
    with _locked(path, 0.5):  # let go of when its holder ends
        pass
