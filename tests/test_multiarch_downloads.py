"""A download that differs by platform: one binary per architecture, each pinned by its own
sha256 and placed only in its platform's image (issue 17)."""

from __future__ import annotations

import hashlib
import json
import tarfile
import textwrap
from pathlib import Path

from helpers import file_server, run


def _project(tmp: Path, base: str, amd_platforms: str = "[linux/amd64]") -> Path:
    d = tmp / "proj"
    d.mkdir(exist_ok=True)
    (d / "imagelock.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        image: {{name: test/tool, platforms: [linux/amd64, linux/arm64]}}
        contents:
          downloads:
            - {{url: "{base}/files/tool-amd64", dest: /usr/local/bin/tool, mode: "0755", platforms: {amd_platforms}}}
            - {{url: "{base}/files/tool-arm64", dest: /usr/local/bin/tool, mode: "0755", platforms: [linux/arm64]}}
            - {{url: "{base}/files/README", dest: /usr/share/doc/tool/README}}
        """))
    return d


def _file_in(layout: Path, manifest: str, path: str) -> bytes | None:
    blobs = layout / "blobs/sha256"
    for layer in json.loads((blobs / manifest[7:]).read_bytes())["layers"]:
        with tarfile.open(blobs / layer["digest"][7:]) as t:
            try:
                f = t.extractfile(path)
            except KeyError:
                continue
            assert f is not None
            return f.read()
    return None


def test_each_platform_gets_its_own_download_and_both_get_the_shared_one(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "tool-amd64").write_bytes(b"\x7fELF amd64 build")
    (served / "tool-arm64").write_bytes(b"\x7fELF arm64 build")
    (served / "README").write_bytes(b"one for all\n")
    with file_server(served) as (base, _):
        proj = _project(tmp_path, base)
        r = run(["lock", str(proj)], env=store_env)
        assert r.returncode == 0, r.stderr
    lock = json.loads((proj / "imagelock.lock").read_text())
    assert [d.get("platforms") for d in lock["downloads"]] == [["linux/amd64"], ["linux/arm64"], None]
    r = run(["build", str(proj), "-o", str(tmp_path / "oci"), "--offline"], env=store_env)
    assert r.returncode == 0, r.stderr
    for platform, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        manifest = lock["expected"][platform]["manifest_digest"]
        assert _file_in(tmp_path / "oci", manifest, "usr/local/bin/tool") == f"\x7fELF {arch} build".encode()
        assert _file_in(tmp_path / "oci", manifest, "usr/share/doc/tool/README") == b"one for all\n"
    pins = {d["location"].rsplit("/", 1)[1]: d["sha256"] for d in lock["downloads"]}
    assert pins["tool-arm64"] == hashlib.sha256(b"\x7fELF arm64 build").hexdigest()


def test_a_download_for_a_platform_the_image_lacks_names_the_field(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    proj = _project(tmp_path, "http://127.0.0.1:9", amd_platforms="[linux/s390x]")
    r = run(["lock", str(proj)], env=store_env)
    assert r.returncode == 2, r.stderr
    assert "contents.downloads[0].platforms" in r.stderr and "linux/s390x" in r.stderr
    assert "traceback" not in r.stderr.lower()
