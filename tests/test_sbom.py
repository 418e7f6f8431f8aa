"""`imagelock sbom`: SPDX 2.3 and CycloneDX 1.6 documents of an image, from its lock alone.

The documents are checked by the formats' own validators, read back by their own parsers
(spdx-tools' JSON parser and validator; cyclonedx-python-lib's JSON schema validator for 1.6),
and compared with the lock: every pinned package, wheel and context file exactly once, with its
version and sha256; the same lock gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from example_locks import FreshExample
from helpers import REPO, run
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document


def _pins(lock: dict[str, Any]) -> dict[tuple[str, str], tuple[str | None, str]]:
    """(kind, name) -> (version, sha256) of every pinned input of the lock's first platform."""
    plat = lock["platforms"][0]
    out: dict[tuple[str, str], tuple[str | None, str]] = {}
    for p in lock.get("debian", {}).get(plat, {}).get("packages", []):
        out[("debian", p["name"])] = (p["version"], p["sha256"])
    for w in lock.get("python", {}).get(plat, []):
        out[("python", w["name"])] = (w["version"], w["sha256"])
    for f in lock.get("files", []):
        if f["type"] == "file":
            out[("files", f["dest"])] = (None, f["sha256"])
    return out


def _spdx_components(doc: dict[str, Any]) -> list[tuple[tuple[str, str], tuple[str | None, str]]]:
    out = []
    for p in doc["packages"]:
        kind = next((c.split(": ", 1)[1] for c in (p.get("comment") or "").split("; ")
                     if c.startswith("kind: ")), None)
        if p["SPDXID"].startswith(("SPDXRef-debian-", "SPDXRef-python-", "SPDXRef-files-")):
            kind = p["SPDXID"].split("-")[1]
        if kind is None:
            continue
        (sha,) = [c["checksumValue"] for c in p["checksums"] if c["algorithm"] == "SHA256"]
        out.append(((kind, p["name"]), (p.get("versionInfo"), sha)))
    return out


def _cdx_components(doc: dict[str, Any]) -> list[tuple[tuple[str, str], tuple[str | None, str]]]:
    out = []
    for c in doc["components"]:
        props = {p["name"]: p["value"] for p in c.get("properties", [])}
        if "imagelock:kind" not in props:
            continue  # a layer
        (sha,) = [h["content"] for h in c["hashes"] if h["alg"] == "SHA-256"]
        out.append(((props["imagelock:kind"], c["name"]), (c.get("version"), sha)))
    return out


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("example", ["python-base", "keystone"])
def test_sboms_validate_and_list_every_pin_exactly_once(
    example: str, fresh_example: Callable[[str], FreshExample], shared_store: Path,
    tmp_path: Path,
) -> None:
    ex = fresh_example(example)
    lock = ex.lock
    env = {"IMAGELOCK_STORE": str(shared_store)}
    pins = _pins(lock)

    # SPDX: spdx-tools parses the file back and its validator finds nothing.
    spdx = tmp_path / "sbom.spdx.json"
    r = run(["sbom", str(ex.path), "--format", "spdx", "-o", str(spdx), "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == hashlib.sha256(spdx.read_bytes()).hexdigest()
    parsed = parse_file(str(spdx))
    assert validate_full_spdx_document(parsed) == []
    doc = json.loads(spdx.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3"
    listed = _spdx_components(doc)
    assert Counter(k for k, _ in listed) == Counter(pins.keys())  # each exactly once
    assert dict(listed) == pins
    by_name = {p["name"]: p for p in doc["packages"]}
    libc = by_name["libc6"]
    assert {"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
            "referenceLocator": f"pkg:deb/debian/libc6@{pins[('debian', 'libc6')][0]}"
            .replace("+", "%2B") + "?arch=amd64&distro=debian-12"} in libc["externalRefs"]
    assert libc["supplier"].startswith(("Person: ", "Organization: "))
    assert "glibc" in libc["sourceInfo"]
    # A package with a DEP-5 copyright file states its licence; the image contains it and what
    # it depends on is related.
    assert by_name["zlib1g"]["licenseDeclared"] == "Zlib"
    image = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert image["versionInfo"] == lock["expected"][lock["platforms"][0]]["manifest_digest"]
    assert image["externalRefs"][0]["referenceLocator"].startswith("pkg:oci/")
    rels = {(x["spdxElementId"], x["relationshipType"], x["relatedSpdxElement"])
            for x in doc["relationships"]}
    ids = {p["name"]: p["SPDXID"] for p in doc["packages"]}
    assert ("SPDXRef-Image", "CONTAINS", ids["libc6"]) in rels
    assert (ids["libc6"], "DEPENDS_ON", ids["libgcc-s1"]) in rels
    layers = [p for p in doc["packages"] if p.get("primaryPackagePurpose") == "ARCHIVE"]
    assert len(layers) == len(lock["expected"][lock["platforms"][0]]["layers"])
    assert all(x["externalRefs"][0]["referenceLocator"].startswith("pkg:oci/") for x in layers)

    # CycloneDX: valid against the 1.6 schema by cyclonedx-python-lib's own validator.
    cdx = tmp_path / "sbom.cdx.json"
    r = run(["sbom", str(ex.path), "--format", "cyclonedx", "-o", str(cdx)], env=env)
    assert r.returncode == 0, r.stderr
    text = cdx.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    cdoc = json.loads(text)
    assert cdoc["specVersion"] == "1.6"
    listed = _cdx_components(cdoc)
    assert Counter(k for k, _ in listed) == Counter(pins.keys())
    assert dict(listed) == pins
    assert cdoc["metadata"]["component"]["type"] == "container"
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in cdoc["dependencies"]}
    assert len(deps["image"]) == len(cdoc["components"])

    # Two runs, identical bytes (and on standard output the same bytes as the file).
    again = run(["sbom", str(ex.path), "--format", "cyclonedx"], env=env)
    assert again.returncode == 0 and again.stdout.encode() == cdx.read_bytes()
    again = run(["sbom", str(ex.path), "--format", "spdx", "--offline"], env=env)
    assert again.returncode == 0 and again.stdout.encode() == spdx.read_bytes()
    if example == "keystone":
        wheels = {c["name"]: c for c in cdoc["components"]
                  if any(p["value"] == "python" for p in c.get("properties", []))}
        assert wheels["keystone"]["purl"].startswith("pkg:pypi/keystone@")
        # A wheel's Requires-Dist becomes a dependency where the lock pins the requirement.
        assert any(ref.startswith("python:oslo-config@") for ref in deps[next(
            d for d in deps if d.startswith("python:keystone@"))])


def test_a_lock_of_context_files_only_gives_a_valid_sbom_offline(tmp_path: Path) -> None:
    """examples/hello pins only context files: nothing to fetch, so --offline works from an
    empty store, and every file is a component with its sha256."""
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    lock = json.loads((REPO / "examples/hello/imagelock.lock").read_text())
    pins = _pins(lock)
    r = run(["sbom", str(REPO / "examples/hello"), "--format", "spdx", "--offline"], env=env)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "hello.spdx.json"
    out.write_text(r.stdout)
    assert validate_full_spdx_document(parse_file(str(out))) == []
    assert dict(_spdx_components(json.loads(r.stdout))) == pins
    r = run(["sbom", str(REPO / "examples/hello"), "--format", "cyclonedx", "--offline"], env=env)
    assert r.returncode == 0, r.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(r.stdout) is None
    assert dict(_cdx_components(json.loads(r.stdout))) == pins


def test_unknown_format_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "sbom.json"
    r = run(["sbom", str(REPO / "examples/hello"), "--format", "swid", "-o", str(out)])
    assert r.returncode == 2, r.stderr
    assert "--format" in r.stderr and "spdx" in r.stderr and "cyclonedx" in r.stderr
    assert not out.exists() and "Traceback" not in r.stderr


def test_an_image_without_a_reachable_lock_has_no_sbom(tmp_path: Path) -> None:
    r = run(["sbom", "registry.example.com/app@sha256:" + "0" * 64, "--format", "spdx"])
    assert r.returncode == 3, r.stderr
    assert "no lock or recipe reachable" in r.stderr and r.stdout == ""


def test_sbom_of_an_image_needs_its_own_lock(tmp_path: Path) -> None:
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    out = tmp_path / "hello"
    assert run(["build", str(REPO / "examples/hello"), "-o", str(out)], env=env).returncode == 0
    r = run(["sbom", f"oci:{out}", "--lock", str(REPO / "examples/hello"), "--offline"], env=env)
    assert r.returncode == 0, r.stderr
    direct = run(["sbom", str(REPO / "examples/hello"), "--offline"], env=env)
    assert r.stdout == direct.stdout  # the image's SBOM is its lock's
    r = run(["sbom", f"oci:{out}", "--lock", str(REPO / "examples/python-base")], env=env)
    assert r.returncode == 1 and "does not describe" in r.stderr and r.stdout == ""
