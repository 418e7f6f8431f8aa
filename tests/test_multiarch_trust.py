"""A two-platform image (linux/amd64 + linux/arm64) through signing, the registry, rebuild and
verify (issue 17): each platform's manifest is signed as itself, pushed as one index, rebuilt
with a VSA for each manifest and one for the index, and a policy can require every platform.

The image is examples/hello (files only) given two platforms: its images differ only in their
config's architecture, which is all these tests need, and they build in a second without the
network or qemu. The Debian side of two platforms is tests/test_multiarch.py's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, run
from imagelock.oci.archive_read import read_docker_archive

PLATFORMS = ["linux/amd64", "linux/arm64"]


def _statements(path: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def hello2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """examples/hello for two platforms, locked, with a vendor's and a rebuilder's key."""
    tmp_path = tmp_path_factory.mktemp("hello2")
    ex = tmp_path / "hello"
    shutil.copytree(REPO / "examples" / "hello", ex)
    (ex / "imagelock.lock").unlink()
    spec = ex / "imagelock.yaml"
    text = spec.read_text()
    assert '  tag: "1.0"\n' in text
    spec.write_text(text.replace('  tag: "1.0"\n', '  tag: "1.0"\n  platforms: [linux/amd64, linux/arm64]\n'))
    env = {"IMAGELOCK_STORE": str(tmp_path / "store"), "IMAGELOCK_KEY_PASSPHRASE": "correct horse"}
    r = run(["lock", str(ex)], env=env)
    assert r.returncode == 0, r.stderr
    for who in ("vendor", "alice"):
        r = run(["keygen", "-o", str(tmp_path / f"{who}.key")], env=env)
        assert r.returncode == 0, r.stderr
    lock = json.loads((ex / "imagelock.lock").read_text())
    assert lock["expected"]["linux/amd64"]["manifest_digest"] != lock["expected"]["linux/arm64"]["manifest_digest"]
    return {"ex": ex, "tmp": tmp_path, "env": env, "lock": lock}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_signed_docker_archive_of_either_platform_is_attested_as_that_platform(
    hello2: dict[str, Any], platform: str
) -> None:
    tmp = hello2["tmp"]
    archive = tmp / f"{platform.replace('/', '-')}.tar"
    r = run(["build", str(hello2["ex"]), "--format", "docker-archive", "--platform", platform,
             "-o", str(archive), "--offline", "--sign", str(tmp / "vendor.key"), "--sbom", "spdx"],
            env=hello2["env"])
    assert r.returncode == 0, r.stderr
    statements = _statements(tmp / f"{archive.name}.intoto.jsonl")
    assert len(statements) == 2  # provenance and SBOM, for the platform the archive holds
    img = read_docker_archive(archive)
    assert img.platform == platform
    for st in statements:
        assert st["subject"][0]["digest"]["sha256"] == img.manifest_digest.removeprefix("sha256:")
    provenance = next(s for s in statements if "provenance" in s["predicateType"])
    assert provenance["predicate"]["buildDefinition"]["externalParameters"]["platform"] == platform


@pytest.fixture(scope="module")
def layout(hello2: dict[str, Any]) -> Path:
    """hello2 built: one layout listing both platforms' manifests."""
    out = hello2["tmp"] / "oci"
    r = run(["build", str(hello2["ex"]), "-o", str(out), "--offline"], env=hello2["env"])
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.tools  # docker-registry
def test_push_of_a_two_platform_layout_sends_the_index_and_pull_gets_each_platform_and_the_whole(
    hello2: dict[str, Any], layout: Path, registry: Any
) -> None:
    expected = {p: hello2["lock"]["expected"][p]["manifest_digest"] for p in PLATFORMS}
    index_digest = "sha256:" + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest()
    ref = f"{registry.host}/hello:multi"
    pushed = json.loads(run(["push", str(layout), ref, "--json"], env=hello2["env"]).stdout)
    assert pushed["digest"] == index_digest and pushed["platforms"] == expected
    for p in PLATFORMS:
        out = hello2["tmp"] / f"pulled-{p.split('/')[1]}"
        r = run(["pull", ref, "-o", str(out), "--platform", p, "--json"], env=hello2["env"])
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["manifest_digest"] == expected[p]
    whole = hello2["tmp"] / "pulled-all"
    r = run(["pull", ref, "-o", str(whole), "--platform", "all", "--json"], env=hello2["env"])
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert (res["manifest_digest"], res["platforms"]) == (index_digest, expected)
    # the pulled layout is the built one: same index.json bytes, so pushing it again is a no-op
    assert (whole / "index.json").read_bytes() == (layout / "index.json").read_bytes()
    one = json.loads(run(["push", f"oci:{layout}:1.0", f"{registry.host}/hello:one",
                          "--json"], env=hello2["env"]).stdout)
    assert "platforms" not in one or one["platforms"] is None


def _tamper_arm64(layout: Path, dest: Path) -> str:
    """A copy of `layout` whose arm64 config gains an env var (manifest and index re-hashed);
    returns the tampered arm64 manifest digest."""
    shutil.copytree(layout, dest)
    blobs = dest / "blobs/sha256"
    index = json.loads((dest / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    manifest = json.loads((blobs / entry["digest"][7:]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
    config["config"]["Env"] = [*config["config"]["Env"], "TAMPERED=1"]
    data = json.dumps(config, separators=(",", ":")).encode()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    manifest["config"].update(digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data))
    data = json.dumps(manifest, separators=(",", ":")).encode()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    entry.update(digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data))
    (dest / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return str(entry["digest"])


@pytest.fixture(scope="module")
def rebuilt(hello2: dict[str, Any], layout: Path) -> dict[str, Any]:
    """alice rebuilds every platform, signing: once against the built layout, once against a
    copy whose arm64 manifest alone was tampered with."""
    tmp, env = hello2["tmp"], hello2["env"]
    tampered = tmp / "tampered"
    bad = _tamper_arm64(layout, tampered)
    runs = {}
    for name, image, extra in (("good", layout, ["--json"]), ("tampered", tampered, [])):
        runs[name] = run(["rebuild", str(hello2["ex"]), "--platform", "all", "--image", f"oci:{image}",
                          "--sign", str(tmp / "alice.key"), "--attestation-out",
                          str(tmp / f"alice-{name}.intoto.jsonl"), "--offline", *extra], env=env)
    return {**runs, "bad": bad, "tampered_layout": tampered}


@pytest.mark.tools  # bwrap: a rebuild runs in the sandbox
def test_rebuild_of_every_platform_signs_a_vsa_per_manifest_and_one_for_the_index(
    hello2: dict[str, Any], layout: Path, rebuilt: dict[str, Any]
) -> None:
    r = rebuilt["good"]
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    index_digest = "sha256:" + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest()
    assert report["verdict"] == "reproduced" and report["sandbox"] == "bubblewrap"
    assert [(p["platform"], p["verdict"]) for p in report["platforms"]] == \
        [(p, "reproduced") for p in PLATFORMS]
    assert report["index"] == {"verdict": "reproduced", "rebuilt": index_digest, "published": index_digest}
    statements = _statements(hello2["tmp"] / "alice-good.intoto.jsonl")
    subjects = ["sha256:" + st["subject"][0]["digest"]["sha256"] for st in statements]
    assert subjects == [*(hello2["lock"]["expected"][p]["manifest_digest"] for p in PLATFORMS), index_digest]
    assert all(st["predicate"]["verificationResult"] == "PASSED" for st in statements)


@pytest.mark.tools  # bwrap
def test_a_tamper_in_the_arm64_manifest_alone_is_a_mismatch_naming_linux_arm64_and_no_index_vsa(
    hello2: dict[str, Any], rebuilt: dict[str, Any]
) -> None:
    r = rebuilt["tampered"]
    assert r.returncode == 1, r.stderr
    assert "(linux/arm64)" in r.stdout and "config.Env added: TAMPERED=1" in r.stdout
    lines = {ln.split()[0]: ln.split()[1] for ln in r.stdout.splitlines()
             if ln.startswith("  linux/") or ln.startswith("  index")}
    assert lines == {"linux/amd64": "REPRODUCED", "linux/arm64": "MISMATCH", "index": "MISMATCH"}
    # only the amd64 manifest is vouched for: no VSA for the tampered manifest, none for the index
    statements = _statements(hello2["tmp"] / "alice-tampered.intoto.jsonl")
    subjects = ["sha256:" + st["subject"][0]["digest"]["sha256"] for st in statements]
    assert subjects == [hello2["lock"]["expected"]["linux/amd64"]["manifest_digest"]]
    assert rebuilt["bad"] not in subjects


POLICY = """\
version: 1
rebuilders:
  threshold: 1
  trusted:
    - {{name: alice, key: alice.key.pub}}
required_predicate_types: [https://slsa.dev/verification_summary/v1]
{extra}"""


@pytest.mark.tools  # bwrap
def test_a_policy_can_require_every_platform_of_the_index_to_be_reproduced(
    hello2: dict[str, Any], layout: Path, rebuilt: dict[str, Any]
) -> None:
    tmp, env = hello2["tmp"], hello2["env"]
    (tmp / "one.yaml").write_text(POLICY.format(extra=""))
    (tmp / "every.yaml").write_text(POLICY.format(extra="every_platform: true\n"))
    good, partial = str(tmp / "alice-good.intoto.jsonl"), str(tmp / "alice-tampered.intoto.jsonl")

    def verify(policy: str, vsas: str, *extra: str) -> tuple[int, dict[str, Any]]:
        r = run(["verify", str(layout), "--policy", str(tmp / policy), vsas, *extra, "--json"], env=env)
        assert "Traceback" not in r.stderr
        return r.returncode, json.loads(r.stdout)

    # VSAs for amd64 only: enough for the default (one platform), refused when every one counts
    code, res = verify("one.yaml", partial)
    assert (code, res["passed"]) == (0, True)
    code, res = verify("every.yaml", partial)
    assert (code, res["passed"]) == (1, False)
    head = res["rules"][0]
    assert head["rule"] == "every-platform" and not head["passed"]
    assert "not met for linux/arm64" in head["reason"] and "linux/amd64" not in head["reason"].split(":")[0]
    index_digest = "sha256:" + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest()
    assert res["subject_digest"] == index_digest
    code, res = verify("every.yaml", partial, "--platform", "linux/amd64")  # does not narrow it
    assert code == 1
    # every platform reproduced: passes, each platform's rules listed
    code, res = verify("every.yaml", good)
    assert (code, res["passed"]) == (0, True), res["rules"]
    assert {r["rule"].split(":")[0] for r in res["rules"][1:]} == set(PLATFORMS)


def test_the_sbom_describes_one_platform_or_the_image_as_a_whole_with_shared_parts_once(
    hello2: dict[str, Any], layout: Path
) -> None:
    tmp, env = hello2["tmp"], hello2["env"]
    docs = {}
    for platform in (*PLATFORMS, "all"):
        out = tmp / f"sbom-{platform.replace('/', '-')}.spdx.json"
        r = run(["sbom", f"oci:{layout}", "--lock", str(hello2["ex"]), "--platform", platform,
                 "--format", "spdx", "-o", str(out), "--json"], env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["platform"] == platform
        docs[platform] = json.loads(out.read_text())
    arm = next(p for p in docs["linux/arm64"]["packages"] if p["primaryPackagePurpose"] == "CONTAINER")
    assert arm["versionInfo"] == hello2["lock"]["expected"]["linux/arm64"]["manifest_digest"]
    assert "arch=arm64" in arm["externalRefs"][0]["referenceLocator"]
    whole = docs["all"]
    described = [r["relatedSpdxElement"] for r in whole["relationships"] if r["relationshipType"] == "DESCRIBES"]
    assert described == ["SPDXRef-Image-linux-amd64", "SPDXRef-Image-linux-arm64"]
    images = {p["SPDXID"]: p["versionInfo"] for p in whole["packages"] if p["SPDXID"] in described}
    assert images == {f"SPDXRef-Image-{p.replace('/', '-')}": hello2["lock"]["expected"][p]["manifest_digest"]
                      for p in PLATFORMS}
    # the context files are the same in both images: listed once, contained by each image
    files = [p["SPDXID"] for p in whole["packages"] if p["SPDXID"].startswith("SPDXRef-files-")]
    assert len(files) == len(set(files)) == len([p for p in docs["linux/amd64"]["packages"]
                                                 if p["SPDXID"].startswith("SPDXRef-files-")])
    for f in files:
        holders = {r["spdxElementId"] for r in whole["relationships"]
                   if r["relationshipType"] == "CONTAINS" and r["relatedSpdxElement"] == f}
        assert holders == set(described)
    r = run(["sbom", str(hello2["ex"]), "--platform", "all", "--format", "cyclonedx"], env=env)
    assert r.returncode == 0, r.stderr
    cdx = json.loads(r.stdout)
    assert cdx["metadata"]["component"]["bom-ref"] == "index"
    assert {c["bom-ref"] for c in cdx["components"] if c["type"] == "container"} == {f"image:{p}" for p in PLATFORMS}


def test_inspect_shows_each_platform_or_the_one_asked_for(hello2: dict[str, Any], layout: Path) -> None:
    env = hello2["env"]
    both = run(["inspect", f"oci:{layout}", "--lock", str(hello2["ex"])], env=env)
    assert both.returncode == 0, both.stderr
    assert "(linux/amd64)" in both.stdout and "(linux/arm64)" in both.stdout
    one = run(["inspect", f"oci:{layout}", "--lock", str(hello2["ex"]), "--platform", "linux/arm64"], env=env)
    assert one.returncode == 0, one.stderr
    assert "(linux/arm64)" in one.stdout and "(linux/amd64)" not in one.stdout
