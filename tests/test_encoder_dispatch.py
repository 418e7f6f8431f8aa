"""Which of ISA-L's x86-64 code paths give the vectors' gzip blobs (spec/README.md §8), checked
by building the large vectors' locks under qemu-user CPU models.

qemu-x86_64-static reports the chosen model's CPUID to the program, so ISA-L's dispatcher takes
that model's path; dispatch_build.py reads CPUID the same way and names the path, so a model
that silently fell back to another path would be seen. The vectors' committed digests were made
on an SSE4.2-or-later path. Known result (measured, and stated in §8): every path with SSE4.2
gives the vectors' blobs; ISA-L's base C code (CPUs without SSE4.2) hashes differently and gives
other blobs of the same content, a `reproduced-content` build. A path that departs from this,
either way, fails here by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, need
from imagelock.api import resolve as make_lock
from imagelock.formats.files import write_lock
from imagelock.fetch.store import Store
from vector_runner import load, materialise

pytestmark = [pytest.mark.slow, pytest.mark.tools]

VECTORS = ["large-file-and-config", "large-text"]
# qemu CPU model -> the ISA-L path it must select, and whether that path gives the vectors' blobs.
MODELS = {
    "Westmere": ("sse4.2", True),
    "SandyBridge": ("avx", True),
    "Haswell": ("avx2", True),
    "qemu64": ("base", False),
}
SCRIPT = REPO / "tests" / "dispatch_build.py"


def _run(prefix: list[str], store: Path, out: Path, locks: list[Path]) -> dict[str, Any]:
    out.mkdir(parents=True)
    r = subprocess.run([*prefix, sys.executable, str(SCRIPT), str(store), str(out),
                        *map(str, locks)], capture_output=True, text=True, timeout=600)
    errors = "\n".join(line for line in r.stderr.splitlines() if "TCG doesn't support" not in line)
    assert r.returncode == 0, f"{' '.join(prefix) or 'native'}: {errors}"
    result: dict[str, Any] = json.loads(r.stdout)
    result["builds"] = {Path(k).parent.parent.name: v for k, v in result["builds"].items()}
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every model's run and the native one, as many at a time as there are cores."""
    qemu = need("qemu-x86_64-static")
    tmp = tmp_path_factory.mktemp("dispatch")
    store = tmp / "store"
    locks = []
    for name in VECTORS:
        spec, mirrors = materialise(load(name), tmp / name)
        lock = make_lock(spec, store=Store(store), mirrors=mirrors)
        write_lock(lock, spec.parent / "imagelock.lock")
        locks.append(spec.parent / "imagelock.lock")
    prefixes = {"native": [], **{m: [qemu, "-cpu", m] for m in MODELS}}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {m: pool.submit(_run, prefix, store, tmp / f"out-{m}", locks)
                   for m, prefix in prefixes.items()}
        results = {m: f.result() for m, f in futures.items()}
    shutil.rmtree(tmp)
    return results


def _expected(name: str) -> dict[str, Any]:
    return load(name)["expected"]["platforms"]  # type: ignore[no-any-return]


def test_the_native_build_reproduces_the_vectors_blobs(runs: dict[str, Any]) -> None:
    native = runs["native"]
    for name in VECTORS:
        build = native["builds"][name]
        if native["path"] == "base":
            assert build["verdict"] == "reproduced-content", name
        else:
            assert build["verdict"] == "reproduced", f"{name} on the native {native['path']} path"
            assert build["platforms"] == _expected(name)


@pytest.mark.parametrize("model", MODELS)
def test_each_isal_code_path_gives_the_blobs_spec_section_8_says(
    model: str, runs: dict[str, Any]
) -> None:
    path, same_blobs = MODELS[model]
    run = runs[model]
    assert run["path"] == path, (f"qemu -cpu {model} made ISA-L take its {run['path']} path, not "
                                 f"{path}: this model no longer checks the {path} path")
    for name in VECTORS:
        want, got = _expected(name), run["builds"][name]["platforms"]
        native = runs["native"]["builds"][name]["platforms"]
        for plat in want:
            # The content identity never depends on the encoder.
            assert got[plat]["diff_ids"] == want[plat]["diff_ids"], (model, name, plat)
            assert got[plat]["config_digest"] == want[plat]["config_digest"], (model, name, plat)
        if same_blobs:
            assert got == want, (
                f"ISA-L's {path} path (qemu -cpu {model}) compressed {name} to other blobs than "
                f"the vector's (the native {runs['native']['path']} path gave "
                f"{'the same as the vector' if native == want else 'others again'}); spec/README.md "
                "§8 says every SSE4.2-or-later path gives the same bytes")
            assert run["builds"][name]["verdict"] == "reproduced"
        else:
            differing = [p for p in want if got[p]["layers"] != want[p]["layers"]]
            assert differing, (
                f"ISA-L's {path} path (qemu -cpu {model}) now gives the vector's blobs for {name}: "
                "update spec/README.md §8, which says this path gives other bytes")
            assert run["builds"][name]["verdict"] == "reproduced-content"

