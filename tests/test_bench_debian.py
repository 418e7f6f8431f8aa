"""`bench/run debian` compares building, not downloading: the mmdebstrap run it times reads a local
file repository made from the lock's own .debs, so it succeeds with no network at all."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from helpers import REPO, need, run


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_debian_build",
                                                  REPO / "bench/bench_debian_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.network
def test_the_timed_mmdebstrap_run_needs_no_network(tmp_path: Path, debian_store: object) -> None:
    bench = _bench()
    bench._apt_install()  # as the bench does: mmdebstrap and dpkg-dev when missing
    need("unshare")
    store = Path(str(debian_store.root))  # type: ignore[attr-defined]
    example = REPO / "examples/python-base"
    r = run(["fetch", str(example)], env={"IMAGELOCK_STORE": str(store)})
    assert r.returncode == 0, r.stderr
    pins = json.loads((example / "imagelock.lock").read_text())["debian"]["linux/amd64"]["packages"]
    repo = bench.local_repository(tmp_path, store, pins, None)
    names = [p["name"] for p in pins]
    out = tmp_path / "rootfs.tar"
    # In a network namespace of its own, with nothing but loopback: only local disk to read.
    cmd = ["unshare", "--net", *bench.mmdebstrap_command("extract", names, repo, out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with tarfile.open(out) as tf:
        members = set(tf.getnames())
    assert "./usr/bin/python3.11" in members
