"""An SBOM signed at build time travels with the image as an in-toto statement, and a consumer's
policy can require it: `verify` passes an image whose vendor signed one, and refuses an image
without it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from helpers import REPO, run

POLICY = """\
version: 1
vendors:
  - {{name: vendor, key: vendor.key.pub}}
rebuilders: {{threshold: 0}}
required_predicate_types:
{required}
"""


def _policy(d: Path, *types: str) -> Path:
    p = d / "policy.yaml"
    p.write_text(POLICY.format(required="\n".join(f"  - {t}" for t in types)))
    return p


def test_a_policy_requiring_an_sbom_passes_the_signed_one_and_refuses_its_absence(
    tmp_path: Path,
) -> None:
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    key = tmp_path / "vendor.key"
    assert run(["keygen", "-o", str(key), "--no-passphrase"]).returncode == 0
    with_sbom, without = tmp_path / "with", tmp_path / "without"
    r = run(["build", str(REPO / "examples/hello"), "-o", str(with_sbom), "--sign", str(key),
             "--sbom", "spdx", "--sbom", "cyclonedx"], env=env)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "with.intoto.jsonl").read_text().splitlines()
    statements = [json.loads(base64.b64decode(json.loads(x)["payload"])) for x in lines]
    assert [s["predicateType"] for s in statements] == [
        "https://slsa.dev/provenance/v1", "https://spdx.dev/Document", "https://cyclonedx.org/bom"]
    assert statements[1]["subject"] == statements[0]["subject"]
    # The predicate is the document `imagelock sbom` writes for the same lock.
    direct = run(["sbom", str(REPO / "examples/hello"), "--format", "spdx", "--offline"], env=env)
    assert statements[1]["predicate"] == json.loads(direct.stdout)
    assert run(["build", str(REPO / "examples/hello"), "-o", str(without), "--sign", str(key)],
               env=env).returncode == 0

    spdx_policy = _policy(tmp_path, "https://slsa.dev/provenance/v1", "https://spdx.dev/Document")
    r = run(["verify", str(with_sbom), "--policy", str(spdx_policy), "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    rules = {o["rule"]: o for o in json.loads(r.stdout)["rules"]}
    assert rules["require:https://spdx.dev/Document"]["passed"]
    r = run(["verify", str(without), "--policy", str(spdx_policy)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "require:https://spdx.dev/Document" in r.stdout and "REFUSED" in r.stdout

    # An SBOM signed by someone the policy does not trust does not count.
    other = tmp_path / "other.key"
    assert run(["keygen", "-o", str(other), "--no-passphrase"]).returncode == 0
    stranger = tmp_path / "stranger"
    assert run(["build", str(REPO / "examples/hello"), "-o", str(stranger), "--sign", str(other),
                "--sbom", "cyclonedx"], env=env).returncode == 0
    cdx_policy = _policy(tmp_path, "https://cyclonedx.org/bom")
    r = run(["verify", str(stranger), "--policy", str(cdx_policy)])
    assert r.returncode == 1, r.stdout + r.stderr
    r = run(["verify", str(with_sbom), "--policy", str(cdx_policy)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_build_sbom_without_a_signer_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "img"
    r = run(["build", str(REPO / "examples/hello"), "-o", str(out), "--sbom", "spdx"],
            env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 2 and "--sign" in r.stderr and not out.exists()
