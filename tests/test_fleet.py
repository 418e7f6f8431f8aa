"""A rebuilder fleet on the engines rebuilders already run (issue 19): `watch` lists the work,
`rebuild REF --skip-if-vouched` does one unit of it, the verdicts meet in the registry as
referrers, and `status` shows them to anyone.

The world: a real loopback registry (docker-registry) holding 6 small images (hello with its
own greeting) from 3 vendors, each signed by its vendor's key with its recipe attached. One of
them was tampered with on a compromised build server: its layer differs from what its recipe
builds, and the build server signed provenance for it all the same.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import IMAGELOCK, copy_example, need, run
from registry_fixture import Registry, start_registry
from tamper import change_byte, edit_layer

from imagelock import api
from imagelock.fleet.evidence import read_evidence
from imagelock.formats.results import WorkItem
from imagelock.oci.reference import parse_reference
from imagelock.oci.referrer_sources import RegistryReferrers
from imagelock.rebuild.reference import Found
from imagelock.oci.layout import write_layout
from imagelock.oci.layout_read import read_layout
from imagelock.trust.dsse import envelope_json, sign_envelope
from imagelock.trust.keys import load_private_key_file
from imagelock.trust.provenance import build_provenance
from imagelock.trust.statement import statement_bytes

pytestmark = [pytest.mark.tools, pytest.mark.slow]  # bubblewrap, docker-registry; the world takes ~30 s

VENDORS = ("acme", "globex", "initech")
TAMPERED = ("initech", "2.0")


@dataclass
class Fleet:
    tmp: Path
    reg: Registry
    refs: dict[tuple[str, str], str]  # (vendor, tag) -> HOST/REPO@sha256:...
    race: str  # a seventh image, for the race

    def key(self, who: str) -> Path:
        return self.tmp / "keys" / f"{who}.key"

    def sources(self) -> list[str]:
        return [f"{self.reg.host}/{v}/app" for v in VENDORS]

    def env(self) -> dict[str, str]:
        """Every worker shares one store, as on a shared volume."""
        return {"IMAGELOCK_STORE": str(self.tmp / "fleet-store"), "IMAGELOCK_HTTP_BACKOFF": "0.01"}

    def worker_args(self) -> list[str]:
        return ["--policy", str(self.tmp / "policy.yaml"), "--sign", str(self.key("fleet")),
                "--push-attestation", "--sign-failures", "--skip-if-vouched",
                "--attestation-out", str(self.tmp / "fleet.intoto.jsonl"), "--json"]


POLICY = """\
version: 1
vendors:
  - {name: acme, key: keys/acme.key.pub}
  - {name: globex, key: keys/globex.key.pub}
  - {name: initech, key: keys/initech.key.pub}
rebuilders:
  threshold: 1
  trusted:
    - {name: fleet, key: keys/fleet.key.pub}
"""


def publish(tmp: Path, reg: Registry, vendor: str, tag: str, store: Path, *,
            tampered: bool = False, repo: str = "app") -> str:
    """A vendor's signed build of hello with its own greeting, pushed with its recipe."""
    d = copy_example("hello", tmp / f"{vendor}-{repo}-{tag}")
    (d / "share" / "README.txt").write_text(f"hello from {vendor} {repo} {tag}\n")
    spec = d / "imagelock.yaml"
    spec.write_text(spec.read_text().replace("name: imagelock/hello", f"name: {vendor}/{repo}")
                    .replace('tag: "1.0"', f'tag: "{tag}"'))
    api.lock(d, store=store, offline=True)
    out = d / "out"
    signer = api.signer(tmp / "keys" / f"{vendor}.key")
    res = api.build(d, output=out, store=store, offline=True, signer=signer)
    assert res.verdict == "reproduced", res.human()
    provenance = out.with_name("out.intoto.jsonl")
    if tampered:
        # The compromised build server: one byte of the greeting changed after the build, the
        # lock's expected digests made to match, and provenance signed for what was pushed.
        image = edit_layer(read_layout(out), 0, tmp / "tamper" / tag,
                           change_byte("usr/share/hello/README.txt"))
        shutil.rmtree(out)
        write_layout([image], out)
        lock_path = d / "imagelock.lock"
        lock = json.loads(lock_path.read_text())
        manifest = json.loads(image.manifest)
        lock["expected"]["linux/amd64"].update(
            manifest_digest=image.manifest_digest, config_digest=image.config_digest,
            layers=[{**old, "digest": b.digest, "size": b.size, "diff_id": diff}
                    for old, b, diff in zip(lock["expected"]["linux/amd64"]["layers"],
                                            image.layers,
                                            json.loads(image.config)["rootfs"]["diff_ids"],
                                            strict=True)])
        assert manifest["config"]["digest"] == image.config_digest
        lock_path.write_text(json.dumps(lock, indent=2) + "\n")
        st = build_provenance(subject_name=f"{vendor}/{repo}", manifest_digest=image.manifest_digest,
                              lock_digest=hashlib.sha256(lock_path.read_bytes()).hexdigest(),
                              lock_uri="imagelock.lock", pins=[], finished_on=datetime.now(UTC))
        key = load_private_key_file(tmp / "keys" / f"{vendor}.key", None)
        provenance.write_bytes(envelope_json(sign_envelope(statement_bytes(st), [key])) + b"\n")
    pushed = api.push(str(out), f"{reg.host}/{vendor}/{repo}:{tag}")
    ref = f"{reg.host}/{vendor}/{repo}@{pushed.digest}"
    api.attach(ref, [provenance])
    api.attach_recipe(ref, d / "imagelock.lock", store=store, offline=True)
    return ref


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    need("jq")
    need("xargs")
    tmp = tmp_path_factory.mktemp("fleet")
    (tmp / "keys").mkdir()
    for who in (*VENDORS, "fleet"):
        api.keygen(tmp / "keys" / f"{who}.key", encrypt=False)
    (tmp / "policy.yaml").write_text(POLICY)
    store = tmp / "vendor-store"
    with start_registry(tmp / "registry") as reg:
        refs = {(v, t): publish(tmp, reg, v, t, store, tampered=(v, t) == TAMPERED)
                for v in VENDORS for t in ("1.0", "2.0")}
        race = publish(tmp, reg, "acme", "1.0", store, repo="race")
        yield Fleet(tmp, reg, refs, race)


def watch_lines(fleet: Fleet) -> list[dict[str, Any]]:
    r = run(["watch", *fleet.sources(), "--rebuilder", str(fleet.key("fleet")) + ".pub",
             "--policy", str(fleet.tmp / "policy.yaml")])
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    for line in lines:
        WorkItem.model_validate(line)  # each line is the documented work item
    return lines


def fan_out(fleet: Fleet, lines: list[dict[str, Any]], name: str) -> int:
    """Two workers, each `imagelock rebuild` a separate process, over the JSON lines."""
    (fleet.tmp / name).mkdir()
    work = fleet.tmp / f"{name}.jsonl"
    work.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rebuild = " ".join(shlex.quote(a) for a in [IMAGELOCK, "rebuild", *fleet.worker_args()])
    script = (f"jq -r .reference < {shlex.quote(str(work))} | xargs -P2 -I{{}} sh -c "
              f"""'{rebuild} "$1" > "{fleet.tmp / name}/$(echo "$1" | tr -c "a-z0-9" _).json"'"""
              " _ {}")
    env = {**fleet.env(), "PATH": str(Path(IMAGELOCK).parent) + ":/usr/bin:/bin"}
    return subprocess.run(["bash", "-c", script], env=env, timeout=600,
                          capture_output=True, text=True).returncode


def outputs(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((fleet.tmp / name).glob("*.json"))]


def vsas(ref: str) -> list[str]:
    """Every VSA attached to the image, whoever signed it: its verificationResult."""
    found = Found(ref, ref.split("@")[1], RegistryReferrers(parse_reference(ref)), True)
    try:
        return sorted(v.result for v in read_evidence(found, []).verdicts)
    finally:
        found.close()


def status(fleet: Fleet, *sources: str) -> dict[str, Any]:
    r = run(["status", *(sources or fleet.sources()), "--policy",
             str(fleet.tmp / "policy.yaml"), "--json"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_fleet_of_two_workers_vouches_once_for_every_image_and_disputes_the_tampered_one(
        fleet: Fleet) -> None:
    work = watch_lines(fleet)
    assert len(work) == 6
    assert {w["reference"] for w in work} == set(fleet.refs.values())
    assert all(w["platform"] == "linux/amd64" and "no VSA from this rebuilder" in w["reason"]
               for w in work)
    # xargs says 123 when a worker exited 1-125: the tampered image is a mismatch (exit 1).
    assert fan_out(fleet, work, "first") == 123
    results = outputs(fleet, "first")
    assert sorted(r["verdict"] for r in results) == ["mismatch"] + ["reproduced"] * 5
    assert all(r["referrer"].startswith("sha256:") for r in results)
    [bad] = [r for r in results if r["verdict"] == "mismatch"]
    assert bad["reference"]["image"] == fleet.refs[TAMPERED]
    seen = status(fleet)
    assert (seen["vouched"], seen["disputed"], seen["unvouched"]) == (5, 1, 0)
    assert [i["reference"] for i in seen["images"] if i["state"] == "disputed"] == [
        fleet.refs[TAMPERED]]
    assert all(i["provenance"] for i in seen["images"])
    attached = {k: vsas(ref) for k, ref in fleet.refs.items()}
    assert attached == {k: ["FAILED" if k == TAMPERED else "PASSED"] for k in fleet.refs}
    # The work is done: nothing to list, and doing it all again pushes nothing new.
    assert watch_lines(fleet) == []
    assert fan_out(fleet, work, "again") == 0
    again = outputs(fleet, "again")
    assert len(again) == 6 and all(r["skipped"] for r in again)
    assert sorted(r["result"] for r in again) == ["FAILED"] + ["PASSED"] * 5
    assert status(fleet)["images"] == seen["images"]
    assert {k: vsas(ref) for k, ref in fleet.refs.items()} == attached
    # Anyone reads the same view as text.
    r = run(["status", *fleet.sources(), "--policy", str(fleet.tmp / "policy.yaml")])
    assert r.returncode == 0
    assert f"DISPUTED   {fleet.refs[TAMPERED]} (2.0)" in r.stdout
    assert "FAILED by: fleet" in r.stdout


@pytest.mark.slow
def test_two_workers_racing_on_one_image_leave_exactly_one_vsa(fleet: Fleet) -> None:
    args = [IMAGELOCK, "rebuild", fleet.race, *fleet.worker_args()]
    env = {**fleet.env(), "PATH": str(Path(IMAGELOCK).parent) + ":/usr/bin:/bin"}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    done = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in done]
    results = [json.loads(out) for out, _ in done]
    assert sorted("skipped" in r for r in results) == [False, True]
    [rebuilt] = [r for r in results if "skipped" not in r]
    [skipped] = [r for r in results if "skipped" in r]
    assert rebuilt["verdict"] == "reproduced"
    assert skipped["referrer"] == rebuilt["referrer"] and skipped["result"] == "PASSED"
    assert vsas(fleet.race) == ["PASSED"]
    [image] = status(fleet, f"{fleet.reg.host}/acme/race")["images"]
    assert image["state"] == "vouched" and image["vouched_by"] == ["fleet"]
    r = run(["rebuild", fleet.race, *fleet.worker_args()], env=fleet.env())
    assert r.returncode == 0 and json.loads(r.stdout)["skipped"]


def test_watch_reads_the_tags_up_to_a_bound_and_leaves_out_the_referrers_fallback_tags(
        fleet: Fleet) -> None:
    from imagelock.oci.registry import client as registry_client

    ref = parse_reference(f"{fleet.reg.host}/acme/app")
    with registry_client.client_for(ref) as c:
        tags, more = c.tags("acme/app")
        assert not more and {"1.0", "2.0"} <= set(tags)
        assert any(t.startswith("sha256-") for t in tags)  # distribution 2.8 keeps referrers so
        assert c.tags("acme/app", limit=2) == (tags[:2], True)
    # Registries that page (distribution 2.8 answers in one page) say where the next one is.
    assert registry_client._next_link(
        '</v2/acme/app/tags/list?last=2.0&n=2>; rel="next"') == "/v2/acme/app/tags/list?last=2.0&n=2"
    assert registry_client._next_link('</v2/x>; rel="prev"') is None
    result = api.watch([f"{fleet.reg.host}/acme/app"],
                       rebuilder_keys=[api_key(fleet.key("fleet"))], limit=1)
    assert result.images == 2  # the fallback tags are not images
    # Run alone, both are work and --limit keeps one; after the fleet test, both are done.
    assert len(result.items) <= 1
    assert len(result.items) + result.limited + result.vouched == 2


def test_watch_since_a_time_after_every_build_or_for_another_platform_lists_nothing(fleet: Fleet) -> None:
    r = run(["watch", fleet.race, "--rebuilder", str(fleet.key("fleet")) + ".pub",
             "--since", "2999-01-01", "--json"])
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["items"] == [] and res["images"] == 1
    assert res["older"] + res["vouched"] == 1
    # --platform narrows to the platform asked for: these images are all linux/amd64.
    r = run(["watch", fleet.race, "--rebuilder", str(fleet.key("fleet")) + ".pub",
             "--platform", "linux/arm64", "--json"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == 0


def api_key(path: Path) -> Any:
    from imagelock.trust.keys import load_public_key_file

    return load_public_key_file(str(path) + ".pub")
