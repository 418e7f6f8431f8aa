"""The public API (docs/api.md) does what the commands do and returns what they print, its
documented example runs, and a command loads only the stages it needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, copy_example, run
from imagelock import api
from imagelock.core.errors import InputError, StaleLockError

API_DOC = REPO / "docs" / "api.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", API_DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_documented_examples_run(tmp_path: Path) -> None:
    copy_example("hello", tmp_path / "examples" / "hello")
    api.keygen(tmp_path / "vendor.key", encrypt=False)
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nvendors:\n  - {name: vendor, key: vendor.key.pub}\n"
        "rebuilders:\n  threshold: 0\n  trusted: []\nmax_age: 1d\n")
    blocks = _python_blocks()
    assert len(blocks) == 2
    script = "\n".join([*blocks, "print('passed' if verdict.passed else 'refused')"])
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, env={"IMAGELOCK_STORE": str(tmp_path / "store"),
                                       "PATH": "/usr/bin:/bin"}, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "reproduced" and lines[1].startswith("sha256:")
    assert json.loads("\n".join(lines[2:-2]))["verdict"] == "reproduced"
    assert lines[-2:] == ["out/hello.intoto.jsonl", "passed"]


def test_build_returns_what_the_command_prints(tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    printed = run(["build", str(ex), "-o", str(tmp_path / "cli"), "--json"], env=env)
    assert printed.returncode == 0, printed.stderr
    built = api.build(ex, output=tmp_path / "api", store=tmp_path / "store", offline=True)
    expected = json.loads(printed.stdout)
    assert built.model_dump(mode="json") == {**expected, "output": str(tmp_path / "api")}


def test_a_stale_lock_is_an_error_and_an_out_of_date_lock_a_result(tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "hello").write_bytes(b"changed\n")
    store = tmp_path / "store"
    with pytest.raises(StaleLockError) as err:
        api.build(ex, output=tmp_path / "out", store=store, offline=True)
    assert err.value.exit_code == 2
    state = api.lock_up_to_date(ex)
    assert not state.up_to_date and (ex / "imagelock.lock").read_bytes() == (
        REPO / "examples/hello/imagelock.lock").read_bytes()
    assert api.lock(ex, store=store, offline=True).changed
    assert api.lock_up_to_date(ex).up_to_date
    assert api.diff(REPO / "examples/hello", ex).empty is False


def test_rebuild_refuses_to_sign_an_unisolated_rebuild_before_any_work(tmp_path: Path) -> None:
    api.keygen(tmp_path / "k.key", encrypt=False)
    signer = api.signer(tmp_path / "k.key")
    with pytest.raises(InputError, match="--no-sandbox"):
        api.rebuild(tmp_path / "nowhere.lock", sandbox=False, signer=signer)


def test_the_command_refuses_an_unisolated_signature_before_reading_the_key(tmp_path: Path) -> None:
    r = run(["rebuild", str(tmp_path), "--no-sandbox", "--sign", str(tmp_path / "missing.key")])
    assert r.returncode == 2 and "--no-sandbox" in r.stderr and "missing.key" not in r.stderr


def _modules_loaded(argv: list[str]) -> set[str]:
    """The imagelock modules a command imports, run in a fresh interpreter."""
    code = ("import sys\nfrom imagelock.cli import main\nsys.argv = ['imagelock', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith('imagelock')),\n"
            "      file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                       timeout=120)
    return {line for line in r.stderr.splitlines() if line.startswith("imagelock")}


def test_version_and_verify_load_only_what_they_need(tmp_path: Path) -> None:
    assert _modules_loaded(["--version"]) <= {
        "imagelock", "imagelock.cli", "imagelock.core", "imagelock.core.errors"}
    (tmp_path / "policy.yaml").write_text("version: 1\n")  # refused as invalid: enough to load
    loaded = _modules_loaded(["verify", str(tmp_path), "--policy", str(tmp_path / "policy.yaml")])
    assert "imagelock.trust.policy" in loaded  # the run did reach the policy
    for stage in ("build", "lock", "compare", "rebuild", "fetch", "sandbox", "tar"):
        assert not any(m.startswith(f"imagelock.{stage}") for m in loaded), (stage, loaded)
    assert "imagelock.trust.sigstore_bundle" not in loaded  # sigstore only for bundles
    assert "imagelock.oci.registry.client" not in loaded  # requests only for registries
