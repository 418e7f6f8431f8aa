"""End to end, as the docs tell it: a vendor builds and signs examples/python-base; two
independent rebuilders rebuild and sign; a consumer's `verify` with threshold 2 passes; with
only one trusted rebuilder (plus an untrusted one) it refuses. The same through a registry,
with the attestations attached as OCI 1.1 referrers.

python-base comes through `fresh_example` (tests/example_locks.py): the committed lock while the
archive serves its pins, else a re-locked copy and a warning saying how to refresh it."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from example_locks import FreshExample
from helpers import copy_example, run

pytestmark = [pytest.mark.network,  # python-base's .debs come from the Debian mirror
              pytest.mark.tools,  # rebuilds run in bubblewrap; docker-registry
              pytest.mark.slow]  # the module's world builds and rebuilds python-base

POLICY = """\
version: 1
vendors:
  - {{name: vendor, key: vendor.key.pub}}
rebuilders:
  threshold: {threshold}
  trusted:
{rebuilders}
required_predicate_types:
  - https://slsa.dev/provenance/v1
  - https://slsa.dev/verification_summary/v1
max_age: 30d
"""


def _policy(d: Path, threshold: int, names: list[str]) -> Path:
    rb = "\n".join(f"    - {{name: {n}, key: {n}.key.pub}}" for n in names)
    p = d / f"policy-{threshold}-{'-'.join(names)}.yaml"
    p.write_text(POLICY.format(threshold=threshold, rebuilders=rb))
    return p


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, shared_store: Path,
          fresh_example: Callable[[str], FreshExample]) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("e2e")
    env = {"IMAGELOCK_STORE": str(shared_store), "IMAGELOCK_KEY_PASSPHRASE": "correct horse"}
    for who in ("vendor", "alice", "bob", "mallory"):
        r = run(["keygen", "-o", str(tmp / f"{who}.key")], env=env)
        assert r.returncode == 0, r.stderr
    example = fresh_example("python-base")
    vendor = example.checkout(tmp / "vendor-checkout")
    r = run(["build", str(vendor), "-o", str(tmp / "published"), "--sign", str(tmp / "vendor.key")],
            env=env)
    assert r.returncode == 0, r.stderr
    atts = tmp / "published.intoto.jsonl"
    assert len(atts.read_text().splitlines()) == 1
    # Each rebuilder works from its own checkout of the lock and signs with its own key.
    for who in ("alice", "bob", "mallory"):
        checkout = example.checkout(tmp / f"{who}-checkout")
        r = run(["rebuild", str(checkout), "--image", f"oci:{tmp / 'published'}", "--sign",
                 str(tmp / f"{who}.key"), "--verifier-id", f"https://rebuilders.example/{who}",
                 "--attestation-out", str(tmp / f"{who}.intoto.jsonl"), "--offline"], env=env)
        assert r.returncode == 0, r.stderr
    return {"tmp": tmp, "env": env}  # type: ignore[dict-item]


def _verify(world: dict, policy: Path, *atts: str, image: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    tmp = world["tmp"]
    r = run(["verify", image or str(tmp / "published"), "--policy", str(policy), *atts, "--json"],
            env=world["env"])
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout)


def test_two_trusted_rebuilders_meet_a_threshold_of_two(world: dict) -> None:  # type: ignore[type-arg]
    tmp = world["tmp"]
    policy = _policy(tmp, 2, ["alice", "bob"])
    code, res = _verify(world, policy, str(tmp / "alice.intoto.jsonl"), str(tmp / "bob.intoto.jsonl"))
    assert code == 0 and res["passed"], res
    counted = sorted(s for a in res["attestations"] if a["counted"] for s in a["signers"])
    assert counted == ["alice", "bob", "vendor"]


def test_one_trusted_rebuilder_and_an_untrusted_one_are_refused(world: dict) -> None:  # type: ignore[type-arg]
    tmp = world["tmp"]
    policy = _policy(tmp, 2, ["alice", "bob"])
    code, res = _verify(world, policy, str(tmp / "alice.intoto.jsonl"),
                        str(tmp / "mallory.intoto.jsonl"))
    assert code == 1 and not res["passed"]
    failed = [o["rule"] for o in res["rules"] if not o["passed"]]
    assert failed == ["rebuilder-threshold"]
    mallory = [a for a in res["attestations"] if "mallory" in a["source"]]
    assert mallory and not mallory[0]["counted"]
    # The human form names the failed rule.
    r = run(["verify", str(tmp / "published"), "--policy", str(policy),
             str(tmp / "alice.intoto.jsonl"), str(tmp / "mallory.intoto.jsonl")], env=world["env"])
    assert r.returncode == 1 and "rebuilder-threshold" in r.stdout


def test_the_same_through_a_registry_with_referrers(world: dict, registry: object) -> None:  # type: ignore[type-arg]
    tmp, env = world["tmp"], world["env"]
    host = registry.host  # type: ignore[attr-defined]
    ref = f"{host}/e2e/python-base:1"
    r = run(["push", str(tmp / "published"), ref, "--json"], env=env)
    assert r.returncode == 0, r.stderr
    digest = json.loads(r.stdout)["digest"]
    by_digest = f"{host}/e2e/python-base@{digest}"
    # The vendor attaches its provenance; the rebuilders rebuild against the registry image and
    # attach their VSAs.
    r = run(["attach", by_digest, str(tmp / "published.intoto.jsonl"), "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["referrers"]) == 1
    # An attestation made for another image is not attached.
    r = run(["attach", f"{host}/e2e/other:1", str(tmp / "published.intoto.jsonl")], env=env)
    assert r.returncode in (2, 3) and "Traceback" not in r.stderr
    # Nor one that two readers could read differently (a duplicate key).
    line = (tmp / "published.intoto.jsonl").read_text().splitlines()[0]
    (tmp / "dup.intoto.jsonl").write_text(line.replace('{"payload":', '{"payload":"e30=","payload":', 1))
    r = run(["attach", by_digest, str(tmp / "dup.intoto.jsonl")], env=env)
    assert r.returncode == 2 and "'payload' appears twice" in r.stderr, r.stderr
    for who in ("alice", "bob"):
        r = run(["rebuild", str(tmp / f"{who}-checkout"), "--image", by_digest, "--sign",
                 str(tmp / f"{who}.key"), "--attestation-out", str(tmp / f"{who}-reg.jsonl"),
                 "--push-attestation", "--offline", "--json"], env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["referrer"].startswith("sha256:")
        # The VSA names the image it compared as a URI: the registry location, by digest.
        envelope = json.loads((tmp / f"{who}-reg.jsonl").read_text().splitlines()[-1])
        vsa = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
        assert vsa["resourceUri"] == f"oci://{host}/e2e/python-base@{digest}", vsa["resourceUri"]
    code, res = _verify(world, _policy(tmp, 2, ["alice", "bob"]), image=ref)
    assert code == 0 and res["passed"], res
    assert all("referrer" in a["source"] for a in res["attestations"])
    code, res = _verify(world, _policy(tmp, 3, ["alice", "bob", "mallory"]), image=ref)
    assert code == 1 and not res["passed"]


def test_a_tampered_image_is_refused_even_with_every_signature(world: dict) -> None:  # type: ignore[type-arg]
    tmp = world["tmp"]
    other = tmp / "other"
    shutil.copytree(tmp / "published", other)
    # Another image (hello) under the same attestations: no subject matches its digest.
    hello = copy_example("hello", tmp / "hello")
    r = run(["build", str(hello), "-o", str(tmp / "hello-out")], env=world["env"])
    assert r.returncode == 0
    code, res = _verify(world, _policy(tmp, 2, ["alice", "bob"]),
                        str(tmp / "published.intoto.jsonl"), str(tmp / "alice.intoto.jsonl"),
                        str(tmp / "bob.intoto.jsonl"), image=str(tmp / "hello-out"))
    assert code == 1 and not any(a["counted"] for a in res["attestations"])
