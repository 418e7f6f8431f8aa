"""Pinned downloads: from a URL or a named source's mirrors (tried in order), copied or
unpacked into the image, with hostile archives refused."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

from helpers import file_server, layer_index, oci_layers, run


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid = len(data), mode, 1000, 1000
    return info, data


def _project(tmp: Path, spec: str) -> Path:
    d = tmp / "proj"
    d.mkdir(exist_ok=True)
    (d / "imagelock.yaml").write_text(textwrap.dedent(spec))
    return d


def test_unpacked_archive_from_the_second_mirror(tmp_path: Path, store_env: dict[str, str]) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "tool.tar.gz").write_bytes(_tar_gz([
        _file("tool-1.0/bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        _file("tool-1.0/share/README", b"readme\n"),
    ]))
    with file_server(served) as (base, srv):
        d = _project(tmp_path, f"""\
            version: 1
            image: {{name: dl/test}}
            sources:
              tools: {{kind: http, mirrors: ["{base}/nothing-here", "{base}/files"]}}
            contents:
              downloads:
                - {{source: tools, path: tool.tar.gz, dest: /opt/tool, unpack: true, strip_components: 1}}
            """)
        r = run(["lock", str(d)], env=store_env)
        assert r.returncode == 0, r.stderr
        assert any(h.startswith("/nothing-here/") for h in srv.hits)  # the first mirror was tried
    lock = json.loads((d / "imagelock.lock").read_text())
    assert lock["downloads"][0]["location"] == "tools:tool.tar.gz"  # never a host
    # Built offline from the store, whatever the mirrors do now.
    r = run(["build", str(d), "-o", str(tmp_path / "out"), "--offline"], env=store_env)
    assert r.returncode == 0, r.stderr
    idx = layer_index(oci_layers(tmp_path / "out")[0])
    assert idx["opt/tool/bin/tool"][1:4] == (0o755, 1000, 1000)
    assert "opt/tool/share/README" in idx and not any("tool-1.0" in p for p in idx)


def test_a_mirror_given_on_the_command_line_wins(tmp_path: Path, store_env: dict[str, str]) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(b"payload")
    with file_server(served) as (base, srv):
        d = _project(tmp_path, """\
            version: 1
            image: {name: dl/test}
            sources:
              tools: {kind: http, mirrors: ["http://127.0.0.1:9/unreachable"]}
            contents:
              downloads:
                - {source: tools, path: blob, dest: /blob}
            """)
        r = run(["lock", str(d), "--mirror", f"tools={base}/files"], env=store_env)
        assert r.returncode == 0, r.stderr
        r = run(["lock", str(d), "-o", str(tmp_path / "b.lock")],
                env={**store_env, "IMAGELOCK_STORE": str(tmp_path / "s2"),
                     "IMAGELOCK_MIRROR_TOOLS": f"{base}/files"})
        assert r.returncode == 0, r.stderr
    assert srv.hits.count("/files/blob") == 2


def test_hostile_archives_are_refused_naming_the_member(tmp_path: Path, store_env: dict[str, str]) -> None:
    link = tarfile.TarInfo("evil-link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/shadow"
    dev = tarfile.TarInfo("dev-null")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    cases = {
        "dotdot.tar.gz": ([_file("../escape", b"x")], "'..'"),
        "abs.tar.gz": ([_file("/etc/passwd", b"x")], "absolute path"),
        "link.tar.gz": ([(link, None)], "escapes the root"),
        "dev.tar.gz": ([(dev, None)], "device node"),
    }
    served = tmp_path / "srv"
    served.mkdir()
    for name, (members, _) in cases.items():
        (served / name).write_bytes(_tar_gz(members))
    with file_server(served) as (base, _):
        for name, (_, needle) in cases.items():
            (tmp_path / name).mkdir()
            d = _project(tmp_path / name, f"""\
                version: 1
                image: {{name: dl/test}}
                contents:
                  downloads:
                    - {{url: "{base}/files/{name}", dest: /opt/x, unpack: true}}
                """)
            r = run(["lock", str(d)], env=store_env)
            assert r.returncode == 2, (name, r.stderr)
            assert needle in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
            assert not (d / "imagelock.lock").exists()
