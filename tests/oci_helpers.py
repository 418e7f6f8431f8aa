"""Images for the OCI reader and registry tests: the hello example built by our builder, a copy
of it written by skopeo, and small tools to damage or rewrite a layout the way an attacker
would."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, copy_example, need
from imagelock import api

LOCK = json.loads((REPO / "examples/hello/imagelock.lock").read_text())
EXPECTED = LOCK["expected"]["linux/amd64"]


def build_hello(tmp: Path) -> dict[str, Path]:
    """The hello example built in-process as an OCI layout and as a docker-archive."""
    ex = copy_example("hello", tmp / "hello")
    store = tmp / "store"
    out = {"oci": tmp / "oci", "archive": tmp / "hello.tar", "tmp": tmp}
    for fmt, dest in (("oci", out["oci"]), ("docker-archive", out["archive"])):
        result = api.build(ex, output=dest, format=fmt, store=store, offline=True)
        assert result.verdict == "reproduced", result.human()
    return out


@pytest.fixture(scope="session")
def hello(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """hello as our builder writes it (`oci`, `archive`)."""
    return build_hello(tmp_path_factory.mktemp("hello"))


@pytest.fixture(scope="session")
def skopeo_hello_archive(hello: dict[str, Path]) -> Path:
    """hello as skopeo re-writes it: the classic docker-archive with `<id>/layer.tar` symlinks.
    A test that uses it is marked `tools` (conftest.py)."""
    need("skopeo")
    archive = hello["tmp"] / "skopeo.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{hello['oci']}:1.0",
                    f"docker-archive:{archive}:imagelock/hello:1.0"],
                   check=True, capture_output=True)
    return archive


def copy_layout(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs/sha256" / digest.split(":", 1)[1]


def put_blob(layout: Path, data: bytes) -> str:
    d = sha(data)
    blob(layout, d).write_bytes(data)
    return d


def index(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_text())  # type: ignore[no-any-return]


def manifest(layout: Path) -> dict[str, Any]:
    return json.loads(blob(layout, index(layout)["manifests"][0]["digest"]).read_bytes())  # type: ignore[no-any-return]


def rewrite_manifest(layout: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    """Edit the (only) manifest, store it as a new blob and point index.json at it, as an
    attacker who controls the whole layout can."""
    idx = index(layout)
    m = manifest(layout)
    edit(m)
    data = json.dumps(m).encode()
    idx["manifests"][0]["digest"] = put_blob(layout, data)
    idx["manifests"][0]["size"] = len(data)
    (layout / "index.json").write_text(json.dumps(idx))
    return sha(data)


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]], dest: Path) -> Path:
    """A tar holding exactly `members` (names, types and links as given, however hostile)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return dest


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def link_member(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def archive_members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The members of a (small) docker-archive, to rebuild it with some of them changed."""
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(archive) as tf:
        for info in tf.getmembers():
            f = tf.extractfile(info) if info.isreg() else None
            out.append((info, f.read() if f is not None else None))
    return out
