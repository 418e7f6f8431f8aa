"""`imagelock inspect`: what is inside an image, from its lock, and which of many images hold a
package at a version that matches a condition (the security team's "which of my images contain
libssl3 older than X"). The CVE-day package is picked at run time (tests/security_ahead.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO, run
from imagelock.formats.inventory import InspectResult
from security_ahead import CveDay


@pytest.fixture(params=[pytest.param("live", marks=[pytest.mark.network, pytest.mark.slow]), "generated"])
def cve_day(request: pytest.FixtureRequest) -> CveDay:
    day: CveDay = request.getfixturevalue(f"{request.param}_cve_day")
    return day


def test_inspect_lists_every_pinned_input_once_with_its_layer() -> None:
    lock = json.loads((REPO / "examples/keystone/imagelock.lock").read_text())
    r = run(["inspect", str(REPO / "examples/keystone"), "--json"])
    assert r.returncode == 0, r.stderr
    res = InspectResult.model_validate_json(r.stdout)
    (img,) = res.images
    assert img.image == "imagelock/keystone:bookworm" and img.platform == "linux/amd64"
    got = {(i.kind, i.name): i for i in img.items}
    assert len(got) == len(img.items)
    debs = lock["debian"]["linux/amd64"]["packages"]
    wheels = lock["python"]["linux/amd64"]
    files = [f for f in lock["files"] if f["type"] == "file"]
    assert len(img.items) == len(debs) + len(wheels) + len(files)
    for p in debs:
        i = got[("debian", p["name"])]
        assert (i.version, i.sha256, i.layer, i.origin) == (
            p["version"], p["sha256"], "debian", f"{p['source']}/{p['suite']}")
    for w in wheels:
        i = got[("python", w["name"])]
        assert (i.version, i.sha256, i.layer) == (w["version"], w["sha256"], "python")
    for f in files:
        assert got[("files", f["dest"])].sha256 == f["sha256"]
    human = run(["inspect", str(REPO / "examples/keystone")]).stdout
    assert "NAME" in human and "LAYER" in human and "keystone" in human


def test_package_query_across_the_cve_day_locks_lists_only_the_old_one(
    cve_day: CveDay, tmp_path: Path, shared_store: Path,
) -> None:
    store = shared_store if cve_day.where == "the live archive" else tmp_path / "store"
    env = {"IMAGELOCK_STORE": str(store)}
    d = tmp_path / "img"
    d.mkdir()
    (d / "imagelock.yaml").write_text(cve_day.spec(with_security=False))
    assert run(["lock", str(d)], env=env).returncode == 0
    before = tmp_path / "before.lock"
    shutil.copy(d / "imagelock.lock", before)
    (d / "imagelock.yaml").write_text(cve_day.spec(with_security=True))
    r = run(["lock", str(d), "--upgrade", cve_day.target], env=env)
    assert r.returncode == 0, r.stderr
    after = d / "imagelock.lock"
    new_version = next(p["version"] for p in json.loads(after.read_text())["debian"]
                       ["linux/amd64"]["packages"] if p["name"] == cve_day.target)

    r = run(["inspect", str(before), str(after), "--package", f"{cve_day.target}<{new_version}",
             "--json"])
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["matched"] == [str(before)], cve_day.where
    (hit,) = res["images"][0]["items"]
    assert hit["name"] == cve_day.target and hit["version"] != new_version
    assert res["images"][1]["items"] == []
    r = run(["inspect", str(before), str(after), "--package", f"{cve_day.target}>={new_version}",
             "--json"])
    assert json.loads(r.stdout)["matched"] == [str(after)]
    human = run(["inspect", str(before), str(after), "--package",
                 f"{cve_day.target}<{new_version}"]).stdout
    assert f"{before} " in human and "MATCH" in human and "1 of 2 match" in human


def test_debian_versions_compare_by_debians_rules() -> None:
    """`1:4.4.33-2` (epoch 1) is newer than any version without an epoch; `~` sorts before
    everything, so 20250419~deb12u2 is older than 20250419."""
    base = str(REPO / "examples/python-base")
    for cond, hits in (("libcrypt1>5", True), ("libcrypt1<1:4.4.34", True),
                       ("ca-certificates<20250419", True), ("ca-certificates>=20250419", False),
                       ("libcrypt1", True), ("no-such-package", False)):
        r = run(["inspect", base, "--package", cond, "--json"])
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["matched"] == ([base] if hits else []), cond


@pytest.mark.parametrize("cond", ["libssl3<<<3", "libssl3<", "libssl3<abc", "<3.0", "lib ssl3"])
def test_malformed_version_condition_is_refused_with_the_syntax(cond: str) -> None:
    r = run(["inspect", str(REPO / "examples/python-base"), "--package", cond])
    assert r.returncode == 2, r.stderr
    assert cond in r.stderr and "NAME<VERSION" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_an_image_without_a_reachable_lock_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    for target in (f"oci:{layout}", "registry.example.com/app@sha256:" + "0" * 64):
        r = run(["inspect", target])
        assert r.returncode == 3, r.stderr
        assert "no lock or recipe reachable" in r.stderr and "--lock" in r.stderr
    r = run(["inspect", str(tmp_path / "nothing-here")])
    assert r.returncode == 2 and "neither a lock nor an image" in r.stderr


def test_an_image_is_described_by_the_lock_it_was_built_from_and_no_other(tmp_path: Path) -> None:
    out = tmp_path / "hello"
    r = run(["build", str(REPO / "examples/hello"), "-o", str(out)],
            env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 0, r.stderr
    r = run(["inspect", f"oci:{out}", "--lock", str(REPO / "examples/hello"), "--json"])
    assert r.returncode == 0, r.stderr
    (img,) = json.loads(r.stdout)["images"]
    assert img["target"] == f"oci:{out}" and {i["kind"] for i in img["items"]} == {"files"}
    r = run(["inspect", f"oci:{out}", "--lock", str(REPO / "examples/python-base")])
    assert r.returncode == 1, r.stderr
    assert "does not describe" in r.stderr and "config" in r.stderr
