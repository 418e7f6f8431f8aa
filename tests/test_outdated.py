"""The weekly security update: `imagelock outdated` says which pins a configured suite now holds
newer versions of, with security updates flagged (exit 1 while one is pending), and
`lock --upgrade-security` moves exactly those pins and what they newly need. `--upgrade NAME`
moves every locked binary of NAME's source package, and says which it left behind and why.

Which package is ahead in the live security suite is never written here: the live archive's pick
comes from tests/security_ahead.py at run time, and the generated archive (served on loopback,
signed for the run) is ahead by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import run
from security_ahead import CveDay


@pytest.fixture(params=[pytest.param("live", marks=[pytest.mark.network, pytest.mark.slow]), "generated"])
def cve_day(request: pytest.FixtureRequest) -> CveDay:
    day: CveDay = request.getfixturevalue(f"{request.param}_cve_day")
    return day


def _pins(lock: Path) -> dict[str, dict[str, str]]:
    return {p["name"]: p for p in json.loads(lock.read_text())["debian"]["linux/amd64"]["packages"]}


def _store(day: CveDay, tmp_path: Path, shared_store: Path) -> dict[str, str]:
    store = shared_store if day.where == "the live archive" else tmp_path / "store"
    return {"IMAGELOCK_STORE": str(store)}


def test_outdated_flags_a_security_update_until_upgrade_security_takes_it(
    cve_day: CveDay, tmp_path: Path, shared_store: Path,
) -> None:
    env = _store(cve_day, tmp_path, shared_store)
    where = cve_day.where
    d = tmp_path / "img"
    d.mkdir()
    spec = d / "imagelock.yaml"
    spec.write_text(cve_day.spec(with_security=False))
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    old = _pins(d / "imagelock.lock")
    (tmp_path / "old.lock").write_bytes((d / "imagelock.lock").read_bytes())

    # Against main alone, nothing is pending.
    r = run(["outdated", str(d), "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["security_pending"] == 0

    # The security suite is added to the spec: the lock's pins are behind it.
    spec.write_text(cve_day.spec(with_security=True))
    r = run(["outdated", str(d), "--json"], env=env)
    assert r.returncode == 1, r.stderr + r.stdout
    report = json.loads(r.stdout)
    flagged = {u["name"]: u for u in report["updates"] if u["security"]}
    assert {cve_day.target, *cve_day.bystanders, *cve_day.siblings} <= set(flagged), (where, report)
    suite = cve_day.security.suites[0]
    for name, u in flagged.items():
        assert u["locked"] == old[name]["version"] and u["security_suite"] == f"security/{suite}"
    assert any(s.startswith(f"security/{suite} (") and s.endswith("[security]")
               for s in report["suites"]), report["suites"]
    human = run(["outdated", str(d)], env=env)
    assert human.returncode == 1
    assert cve_day.target in human.stdout and "SECURITY" in human.stdout
    assert "--upgrade-security" in human.stdout

    # --upgrade-security moves exactly the flagged pins (and adds what they newly need) ...
    r = run(["lock", str(d), "--upgrade-security"], env=env)
    assert r.returncode == 0, r.stderr
    new = _pins(d / "imagelock.lock")
    r = run(["diff", str(tmp_path / "old.lock"), str(d / "imagelock.lock"), "--json"], env=env)
    deb = json.loads(r.stdout)["debian"]["linux/amd64"]
    assert sorted(c["name"] for c in deb["upgraded"]) == sorted(flagged), where
    for name, u in flagged.items():
        assert new[name]["version"] == u["security_version"], (where, name)
    assert not deb["removed"] and not deb["downgraded"] and not deb["hash_changed"]
    assert all(p["name"] not in old for p in deb["added"])
    if where == "the generated archive":
        assert [p["name"] for p in deb["added"]] == list(cve_day.adds)
    # ... and then nothing is pending.
    r = run(["outdated", str(d), "--json"], env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    after = json.loads(r.stdout)
    assert after["security_pending"] == 0 and not any(u["security"] for u in after["updates"])


def _generated_spec(day: CveDay, packages: list[str]) -> str:
    doc = yaml.safe_load(day.spec(with_security=True))
    doc["contents"]["debian"]["packages"] = packages
    return yaml.safe_dump(doc, sort_keys=False)


def test_upgrade_moves_every_binary_of_the_source_package_and_names_who_stays(
    generated_cve_day: CveDay, tmp_path: Path,
) -> None:
    """libcve1, cve-tool and cve-doc are built from one source, `cve`. The fix rebuilt libcve1
    and cve-tool, not cve-doc: `--upgrade libcve1` moves cve-tool too, and says that cve-doc
    stays and why. libother1 (another source, also fixed) does not move."""
    day = generated_cve_day
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    d = tmp_path / "img"
    d.mkdir()
    spec = d / "imagelock.yaml"
    main_only = yaml.safe_load(day.spec(with_security=False))
    main_only["contents"]["debian"]["packages"] = ["cve-doc", "cve-tool", "libother1"]
    spec.write_text(yaml.safe_dump(main_only, sort_keys=False))
    assert run(["lock", str(d)], env=env).returncode == 0
    old = _pins(d / "imagelock.lock")
    spec.write_text(_generated_spec(day, ["cve-doc", "cve-tool", "libother1"]))

    r = run(["lock", str(d), "--upgrade", "libcve1", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    new = _pins(d / "imagelock.lock")
    moved = {n for n in new if n in old and new[n]["version"] != old[n]["version"]}
    assert moved == {"libcve1", "cve-tool"}
    assert new["libcve-data"]["source"] == "debian"  # newly needed by the new libcve1
    notes = json.loads(r.stdout)["notes"]
    assert "--upgrade libcve1 also moved cve-tool (source package cve)" in notes
    assert ("--upgrade libcve1 left cve-doc at 1.0-1 (source package cve): no configured suite "
            "has a newer version") in notes


def test_upgrade_says_a_sibling_pinned_by_the_spec_stays(
    generated_cve_day: CveDay, tmp_path: Path,
) -> None:
    day = generated_cve_day
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    d = tmp_path / "img"
    d.mkdir()
    (d / "imagelock.yaml").write_text(_generated_spec(day, ["cve-tool=1.0-1", "libcve1=1.0-1"]))
    assert run(["lock", str(d)], env=env).returncode == 0
    (d / "imagelock.yaml").write_text(_generated_spec(day, ["cve-tool=1.0-1", "libcve1"]))
    r = run(["lock", str(d), "--upgrade", "libcve1"], env=env)
    assert r.returncode == 0, r.stderr
    assert _pins(d / "imagelock.lock")["cve-tool"]["version"] == "1.0-1"
    assert _pins(d / "imagelock.lock")["libcve1"]["version"] == "1.0-1+deb1u1"
    assert ("--upgrade libcve1 left cve-tool at 1.0-1 (source package cve): the spec pins "
            "cve-tool=1.0-1") in r.stdout

    # `outdated` flags the pinned one as pending, and says what holds it.
    r = run(["outdated", str(d), "--json"], env=env)
    assert r.returncode == 1
    (tool,) = [u for u in json.loads(r.stdout)["updates"] if u["name"] == "cve-tool"]
    assert tool["security"] and tool["held"] == "the spec pins cve-tool=1.0-1"


def test_outdated_without_the_spec_beside_the_lock_says_what_it_needs(
    generated_cve_day: CveDay, tmp_path: Path,
) -> None:
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    d = tmp_path / "img"
    d.mkdir()
    (d / "imagelock.yaml").write_text(generated_cve_day.spec(with_security=False))
    assert run(["lock", str(d)], env=env).returncode == 0
    (d / "imagelock.yaml").unlink()
    r = run(["outdated", str(d)], env=env)
    assert r.returncode == 2, r.stderr
    assert "imagelock.yaml" in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr
