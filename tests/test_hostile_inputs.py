"""Hostile locks, specs, policies and attestations from others: nothing outside the lock's
directory is read, nothing about host files is revealed, a policy that would accept anything is
refused, and the audit's corpus (tests/hostile/) is refused with the right exit code and
message, each case within 200 MB and 30 s."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import IMAGELOCK, REPO, copy_example, run
from imagelock.formats.files import load_spec, read_lock
from imagelock.lock.staleness import spec_digests
from imagelock.trust.attest import lock_pins
from imagelock.trust.dsse import envelope_json, sign_envelope
from imagelock.trust.keys import PrivateKey, generate
from measure import run_measured


def _hostile_lock(tmp: Path, **changes: object) -> Path:
    ex = copy_example("hello", tmp / "hello")
    lock = json.loads((ex / "imagelock.lock").read_text())
    lock.update(changes)
    (ex / "imagelock.lock").write_text(json.dumps(lock))
    return ex


def test_a_lock_naming_a_context_outside_its_directory_is_refused(tmp_path: Path) -> None:
    for changes in ({"context": "../../../../.."}, {"spec": "/etc/hostname"}):
        ex = _hostile_lock(tmp_path / str(len(str(changes))), **changes)
        r = run(["rebuild", str(ex), "--json"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
        assert r.returncode == 2, r.stderr
        assert "relative path without '..'" in r.stderr


def test_a_lock_file_pin_outside_the_context_is_refused_without_revealing_its_hash(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "leak").symlink_to(secret)
    lock = json.loads((ex / "imagelock.lock").read_text())
    lock["spec"] = "absent.yaml"  # no staleness check to hide behind
    lock["files"].append({"type": "file", "src": "leak", "dest": "/leak", "sha256": "0" * 64,
                          "size": 1, "mode": "0644", "owner": "0:0", "layer": "files"})
    (ex / "imagelock.lock").write_text(json.dumps(lock))
    r = run(["build", str(ex), "-o", str(tmp_path / "out")], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "outside the build context" in r.stderr
    import hashlib

    assert hashlib.sha256(b"top secret").hexdigest() not in r.stderr + r.stdout


def test_policies_that_accept_anything_or_let_a_vendor_vouch_for_itself_are_refused(tmp_path: Path) -> None:
    r = run(["keygen", "-o", str(tmp_path / "v"), "--no-passphrase"])
    assert r.returncode == 0
    img = tmp_path / "img"
    assert run(["build", str(REPO / "examples/hello"), "-o", str(img)],
               env={"IMAGELOCK_STORE": str(tmp_path / "s")}).returncode == 0
    (tmp_path / "open.yaml").write_text(
        "version: 1\nrebuilders: {threshold: 0}\nrequired_predicate_types: []\n")
    (tmp_path / "self.yaml").write_text(
        "version: 1\nvendors: [{name: acme, key: v.pub}]\n"
        "rebuilders: {threshold: 1, trusted: [{name: acme-rebuild, key: v.pub}]}\n")
    for policy, needle in (("open.yaml", "requires nothing"), ("self.yaml", "its own")):
        r = run(["verify", str(img), "--policy", str(tmp_path / policy)])
        assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_whiteout_names_are_refused_in_inputs(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / ".wh.passwd").write_text("x")
    (d / "imagelock.yaml").write_text(
        "version: 1\nimage: {name: t}\ncontents:\n  files:\n    - {src: .wh.passwd, dest: /etc/.wh.passwd}\n")
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "whiteout" in r.stderr


def test_provenance_names_every_wheel() -> None:
    lock = read_lock(REPO / "examples/keystone/imagelock.lock")
    names = {p.name for p in lock_pins(lock)}
    wheels = lock.python["linux/amd64"]
    assert all(f"pkg:pypi/{w.name}@{w.version}?filename={w.filename}" in names for w in wheels)
    assert any(n.startswith("pkg:deb/debian/") for n in names)


# --- issue 12, item 1: a lock directory must not reach into the host through symlinks ----------

HOST_SECRET = "s3cr3t-line-of-a-host-file"


def _host_dir(tmp: Path) -> Path:
    """A directory standing for /etc: files the lock's author must never see or ship."""
    host = tmp / "host"
    host.mkdir()
    (host / "shadow").write_text(f"root: {HOST_SECRET}\n{HOST_SECRET}-2: x\n")
    (host / f"{HOST_SECRET}.conf").write_text("x\n")
    return host


@pytest.mark.parametrize("command", ["build", "rebuild"])
def test_a_spec_that_is_a_symlink_to_a_host_file_is_refused_without_showing_it(
    command: str, tmp_path: Path
) -> None:
    host = _host_dir(tmp_path)
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "imagelock.yaml").unlink()
    (ex / "imagelock.yaml").symlink_to(host / "shadow")
    args = [command, str(ex), "--json"]
    args += ["-o", str(tmp_path / "out")] if command == "build" else ["--no-sandbox"]
    r = run(args, env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2, r.stderr
    assert "leads outside" in r.stderr
    assert HOST_SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["build", "rebuild"])
def test_a_context_that_is_a_symlink_out_of_the_lock_directory_is_refused(
    command: str, tmp_path: Path
) -> None:
    host = _host_dir(tmp_path)
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "ctx").symlink_to(host, target_is_directory=True)
    (ex / "imagelock.yaml").write_text((ex / "imagelock.yaml").read_text() + "context: ctx\n")
    # A consistent lock, as its author would make one: not stale, just pointing at the host.
    lock = json.loads((ex / "imagelock.lock").read_text())
    lock["spec_digest"], lock["spec_sections"] = spec_digests(load_spec(ex / "imagelock.yaml"))
    lock["context"] = "ctx"
    (ex / "imagelock.lock").write_text(json.dumps(lock))
    args = [command, str(ex), "--json"]
    args += ["-o", str(tmp_path / "out")] if command == "build" else ["--no-sandbox"]
    r = run(args, env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2, r.stderr
    assert "leads outside" in r.stderr
    # Neither the names in the host directory ("new in the context: ...") nor its content.
    assert HOST_SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_spec_is_refused_without_quoting_it(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    # Looks like YAML mappings, as /etc/passwd-like files do: every line would be an "unknown key".
    (d / "imagelock.yaml").write_text(f"root: x\n{HOST_SECRET}: y\n")
    r = run(["lock", str(d), "--json"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "not an imagelock spec" in r.stderr, r.stderr
    assert HOST_SECRET not in r.stdout + r.stderr


# --- the audit's corpus: tests/hostile/cases.yaml, every case bounded in memory and time -------

HOSTILE = Path(__file__).parent / "hostile"
CASES: list[dict[str, Any]] = yaml.safe_load((HOSTILE / "cases.yaml").read_text())
HELLO_LOCK = REPO / "examples" / "hello" / "imagelock.lock"
MAX_RSS_MB = 200
MAX_SECONDS = 30
_SPEC_HEAD = "version: 1\nimage: {name: bomb}\n"
_NO_SIGNATURES = '{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'


# Generators of the large inputs (`generate:` in cases.yaml), made at test time.

def spec_deep_nesting() -> str:
    return _SPEC_HEAD + "config:\n  labels: " + "[" * 100_000 + "]" * 100_000 + "\n"


def spec_huge_integer() -> str:
    return _SPEC_HEAD + "source_date_epoch: " + "9" * 1_000_000 + "\n"


def spec_too_large() -> str:
    return _SPEC_HEAD + ("# " + "x" * 78 + "\n") * ((2 << 20) // 81 + 1)


def spec_too_many_values() -> str:
    return _SPEC_HEAD + "config:\n  cmd: [" + ",".join(["a"] * 60_000) + "]\n"


def lock_deep_nesting() -> str:
    return "[" * 1_000_000 + "]" * 1_000_000


def lock_huge_integer() -> str:
    return '{"lock_version": ' + "1" * 1_000_000 + "}"


def lock_too_large() -> str:
    return '{"lock_version": 1, "x": "' + "a" * (5 << 20) + '"}'


def lock_million_objects() -> str:
    lock = json.loads(HELLO_LOCK.read_text())
    lock["files"] = ["@"]
    # 1.3 million empty objects, just under the 4 MiB limit: each would be 5 errors.
    return json.dumps(lock).replace('"@"', ",".join(["{}"] * 1_300_000))


def lock_190k_objects() -> str:
    # Just under the count limit: parsed, then refused at the first bad entry, not 950,000 errors.
    lock = json.loads(HELLO_LOCK.read_text())
    lock["files"] = ["@"]
    return json.dumps(lock).replace('"@"', ",".join(["{}"] * 190_000))


def lock_string_number() -> str:
    lock = json.loads(HELLO_LOCK.read_text())
    lock["source_date_epoch"] = str(lock["source_date_epoch"])
    return json.dumps(lock)


def envelope_1000_signatures() -> str:
    # As many as are read; each a valid base64 signature by no trusted key.
    return json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                       "signatures": [{"sig": "AAAA"}] * 1000})


def envelope_5000_signatures() -> str:
    return json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                       "signatures": [{"sig": "AAAA"}] * 5000})


def envelope_400k_signatures() -> str:
    # As many as fit in one 4 MiB envelope.
    return ('{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":['
            + ",".join(['{"sig":""}'] * 380_000) + "]}")


def envelope_line_too_large() -> str:
    big = '{"payloadType":"t","payload":"' + "A" * (5 << 20) + '","signatures":[]}'
    return _NO_SIGNATURES + "\n" + big + "\n"


def attestation_file_too_large() -> str:
    return _NO_SIGNATURES + "\n" + (" " * 1023 + "\n") * (17 << 10)


def attestation_file_too_many() -> str:
    return (_NO_SIGNATURES + "\n") * 1001


def attestation_deep_nesting() -> str:
    return "[" * 100_000 + "]" * 100_000


def statement_deep_nesting() -> str:
    return "[" * 1_000_000 + "]" * 1_000_000


def statement_deep_within_count() -> str:
    return '{"_type": ' + "[" * 1000 + "]" * 1000 + "}"


def statement_many_subjects() -> str:
    return ('{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","subject":['
            + ",".join(["{}"] * 190_000) + "]}")


@dataclass(frozen=True)
class HelloImage:
    path: Path
    manifest_hex: str


@pytest.fixture(scope="module")
def hello_image(tmp_path_factory: pytest.TempPathFactory) -> HelloImage:
    root = tmp_path_factory.mktemp("hostile-image")
    r = run(["build", str(REPO / "examples/hello"), "-o", str(root / "img"), "--json"],
            env={"IMAGELOCK_STORE": str(root / "store")})
    assert r.returncode == 0, r.stderr
    (platform,) = json.loads(r.stdout)["platforms"].values()
    return HelloImage(root / "img", platform["manifest_digest"].removeprefix("sha256:"))


@pytest.fixture(scope="module")
def rebuilder_key() -> PrivateKey:
    return generate("ed25519")


def _input(case: dict[str, Any]) -> bytes:
    if "generate" in case:
        return str(globals()[case["generate"]]()).encode()
    return (HOSTILE / case["input"]).read_bytes()


def _trusting_policy(d: Path, name: str, key: PrivateKey) -> Path:
    (d / "rebuilder.pub").write_bytes(key.public.pem())
    policy = d / "policy.yaml"
    policy.write_bytes((HOSTILE / name).read_bytes())
    return policy


def _command(case: dict[str, Any], d: Path, image: HelloImage, key: PrivateKey) -> list[str]:
    data = _input(case)
    kind = case["kind"]
    if kind == "spec":
        (d / "imagelock.yaml").write_bytes(data)
        return ["lock", str(d), "--offline"]
    if kind == "lock" and case.get("run") == "diff":
        (d / "x.lock").write_bytes(data)
        return ["diff", str(HELLO_LOCK), str(d / "x.lock")]
    if kind == "lock":
        ex = copy_example("hello", d / "hello")
        (ex / "imagelock.lock").write_bytes(data)
        return ["build", str(ex), "-o", str(d / "out")]
    if kind == "policy":
        (d / "rebuilder.pub").write_bytes(key.public.pem())
        (d / "policy.yaml").write_bytes(data)
        return ["verify", str(image.path), "--policy", str(d / "policy.yaml")]
    policy = _trusting_policy(d, case.get("policy", "policy.yaml"), key)
    if kind == "statement":
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        payload = data.replace(b"{subject}", image.manifest_hex.encode())
        payload = payload.replace(b"{now}", now.encode())
        data = envelope_json(sign_envelope(payload.strip(), [key])) + b"\n"
    (d / "att.intoto.jsonl").write_bytes(data)
    return ["verify", str(image.path), "--policy", str(policy), str(d / "att.intoto.jsonl")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_hostile_input(case: dict[str, Any], tmp_path: Path, hello_image: HelloImage,
                       rebuilder_key: PrivateKey) -> None:
    argv = _command(case, tmp_path, hello_image, rebuilder_key)
    env = {**os.environ, "IMAGELOCK_STORE": str(tmp_path / "store")}
    m = run_measured([IMAGELOCK, *argv], env=env, timeout=2 * MAX_SECONDS)
    output = m.stdout + m.stderr
    print(f"{case['id']}: exit {m.returncode}, {m.peak_rss_mb:.0f} MB, {m.seconds:.1f} s")
    assert not m.timed_out, f"still running after {2 * MAX_SECONDS} s"
    assert m.returncode == case["exit"], output[-3000:]
    assert case["says"] in output, output[-3000:]
    assert "Traceback" not in output and "internal error" not in output, output[-3000:]
    if "never_says" in case:
        assert case["never_says"] not in output
    assert len(output) < 20_000, "a message must never expand its input"
    assert not (tmp_path / "out").exists(), "no output may be written from bad input"
    assert m.peak_rss_mb < MAX_RSS_MB, f"{m.peak_rss_mb:.0f} MB"
    assert m.seconds < MAX_SECONDS, f"{m.seconds:.1f} s"


def test_the_corpus_covers_every_kind_and_each_case_has_its_input() -> None:
    kinds = {c["kind"] for c in CASES}
    assert kinds == {"spec", "lock", "policy", "envelope", "statement"}
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    for c in CASES:
        assert ("input" in c) != ("generate" in c), c["id"]
        assert "generate" not in c or callable(globals().get(c["generate"])), c["id"]
        assert "input" not in c or (HOSTILE / c["input"]).is_file(), c["id"]
    listed = {c["input"] for c in CASES if "input" in c} | {c.get("policy") for c in CASES}
    committed = {p.name for p in HOSTILE.iterdir()} - {"README.md", "cases.yaml", "policy.yaml"}
    assert committed <= listed, f"inputs no case uses: {committed - listed}"


def test_measuring_sees_the_childs_own_peak_and_not_the_test_process() -> None:
    # A child that touches 300 MB is reported above 250 MB...
    touch = "b = bytearray(300 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1"
    m = run_measured([sys.executable, "-c", touch])
    assert m.returncode == 0 and m.peak_rss_mb > 250, m
    # ...and a small child stays small even when the test process itself is large.
    ballast = bytearray(300 << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    m = run_measured([sys.executable, "-c", "pass"])
    assert m.returncode == 0 and m.peak_rss_mb < 50, m
    del ballast
