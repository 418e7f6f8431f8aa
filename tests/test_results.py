"""What a script reads from `--json` is what the committed schemas say: every command has a
result schema (spec/schema/<command>.result.schema.json), and the JSON the real commands print,
for success, refusal and error alike, validates against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from helpers import REPO, copy_example, run
from imagelock.cli import app
from imagelock.formats.schema import RESULTS
from registry_fixture import Registry

SCHEMAS = REPO / "spec" / "schema"
POLICY = """\
version: 1
vendors:
  - {name: vendor, key: vendor.key.pub}
rebuilders:
  threshold: 1
  trusted:
    - {name: rebuilder, key: rebuilder.key.pub}
max_age: 1d
"""


def _schema(name: str) -> dict[str, Any]:
    schema = json.loads((SCHEMAS / f"{name}.result.schema.json").read_text())
    return schema  # type: ignore[no-any-return]


def printed(schema: str, args: list[str], env: dict[str, str], *, code: int = 0) -> dict[str, Any]:
    """Run `imagelock ARGS --json`, check the exit code, and validate what it printed."""
    r = run([*args, "--json"], env=env)
    assert r.returncode == code, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, _schema(schema))
    return doc  # type: ignore[no-any-return]


def test_every_command_has_a_result_schema() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert commands <= set(RESULTS), f"commands without a result model: {commands - set(RESULTS)}"
    for name in RESULTS:
        assert (SCHEMAS / f"{name}.result.schema.json").is_file(), name


def test_a_schema_refuses_what_the_command_does_not_print() -> None:
    """The validation below can fail: a document with a field the model lacks is refused."""
    good = {"store": "/s", "present": 1, "downloaded": 0, "bytes_downloaded": 0}
    jsonschema.validate(good, _schema("fetch"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "extra": 1}, _schema("fetch"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One store for the module: hello's inputs are its context files, so nothing is downloaded."""
    return {"IMAGELOCK_STORE": str(tmp_path_factory.mktemp("results") / "store")}


def _built(tmp: Path, env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """hello, copied, its vendor key made and the image built and signed, all through --json."""
    ex = copy_example("hello", tmp / "hello")
    key = printed("keygen", ["keygen", "-o", str(tmp / "vendor.key"), "--no-passphrase"], env)
    assert key["encrypted"] is False and Path(key["public"]).is_file()
    built = printed("build", ["build", str(ex), "-o", str(tmp / "img"), "--sign",
                              str(tmp / "vendor.key")], env)
    assert built["verdict"] == "reproduced"
    assert built["attestations"] == str(tmp / "img.intoto.jsonl")
    return ex, built


def test_the_vendors_commands_print_their_schemas(env: dict[str, str], tmp_path: Path) -> None:
    ex, built = _built(tmp_path, env)
    locked = printed("lock", ["lock", str(ex)], env)
    assert locked["changed"] is False  # the committed lock is what locking writes
    assert built["platforms"]["linux/amd64"] == locked["expected"]["linux/amd64"]
    assert printed("lock-check", ["lock", str(ex), "--check"], env)["up_to_date"] is True
    assert printed("fetch", ["fetch", str(ex), "--offline"], env)["downloaded"] == 0
    assert printed("diff", ["diff", str(ex), str(ex)], env)["empty"] is True


def test_a_stale_lock_and_a_changed_lock_print_their_schemas(env: dict[str, str],
                                                             tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "hello").write_bytes((ex / "hello").read_bytes() + b"\n")
    state = printed("lock-check", ["lock", str(ex), "--check"], env, code=1)
    assert {k: state[k] for k in ("up_to_date", "lock")} == {
        "up_to_date": False, "lock": str(ex / "imagelock.lock")}
    assert any("hello" in d for d in state["differences"]), state  # names the changed file
    assert printed("lock", ["lock", str(ex)], env)["changed"] is True
    changed = printed("diff", ["diff", str(REPO / "examples/hello"), str(ex)], env, code=1)
    assert changed["empty"] is False and any("hello" in line for line in changed["inputs"])


def test_check_prints_its_schema(env: dict[str, str], tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    checked = printed("check", ["check", str(ex), "--variation", "timezone"], env)
    assert checked["reproducible"] is True and checked["variations"] == ["timezone"]
    printed("error", ["check", str(ex), "--variation", "moon-phase"], env, code=2)


def test_an_error_prints_the_error_schema(env: dict[str, str], tmp_path: Path) -> None:
    err = printed("error", ["build", str(tmp_path / "nowhere.lock")], env, code=2)
    assert err["error"] == "InputError" and err["exit_code"] == 2


@pytest.mark.tools
def test_the_rebuilders_and_consumers_commands_print_their_schemas(env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    ex, _ = _built(tmp_path, env)
    printed("keygen", ["keygen", "-o", str(tmp_path / "rebuilder.key"), "--no-passphrase"], env)
    report = printed("rebuild", ["rebuild", str(ex), "--image", f"oci:{tmp_path / 'img'}",
                                 "--sign", str(tmp_path / "rebuilder.key"), "--attestation-out",
                                 str(tmp_path / "vsa.intoto.jsonl")], env)
    assert (report["verdict"], report["sandbox"]) == ("reproduced", "bubblewrap")
    assert report["attestation"] == str(tmp_path / "vsa.intoto.jsonl")
    assert report["referrer"] is None
    (tmp_path / "policy.yaml").write_text(POLICY)
    verify = ["verify", str(tmp_path / "img"), "--policy", str(tmp_path / "policy.yaml")]
    passed = printed("verify", [*verify, str(tmp_path / "vsa.intoto.jsonl")], env)
    assert passed["passed"] is True and len(passed["attestations"]) == 2
    refused = printed("verify", verify, env, code=1)  # without the rebuilder's VSA
    assert refused["passed"] is False


@pytest.mark.tools
def test_the_registry_commands_print_their_schemas(env: dict[str, str], registry: Registry,
                                                   tmp_path: Path) -> None:
    _built(tmp_path, env)
    pushed = printed("push", ["push", str(tmp_path / "img"), f"{registry.host}/results/hello:1"],
                     env)
    ref = f"{registry.host}/results/hello@{pushed['digest']}"
    pulled = printed("pull", ["pull", ref, "-o", str(tmp_path / "pulled")], env)
    assert pulled["manifest_digest"] == pushed["digest"]
    attached = printed("attach", ["attach", ref, str(tmp_path / "img.intoto.jsonl")], env)
    assert len(attached["referrers"]) == 1
