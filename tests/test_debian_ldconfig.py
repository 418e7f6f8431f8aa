"""The image's ldconfig is a program from a package (possibly hostile): it runs in a sandbox,
never on the host, and the cache it writes is the same wherever the build runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from deb_factory import M, make_deb, pin_for
from helpers import need
from imagelock.fetch.store import Store
from imagelock.inputs.debian.root import debian_entries

pytestmark = pytest.mark.tools  # the package's ldconfig runs in bubblewrap


def test_a_hostile_ldconfig_cannot_touch_the_host(tmp_path: Path) -> None:
    need("bwrap")  # the sandbox it runs in
    busybox = Path(need("busybox")).read_bytes()
    marker = tmp_path / "pwned"
    evil = f"#!/usr/bin/busybox sh\necho ran > {marker}\nexit 0\n".encode()
    deb = make_deb(tmp_path / "libc-bin.deb", [
        M("./usr/", "dir", mode=0o755), M("./usr/bin/", "dir", mode=0o755),
        M("./usr/bin/busybox", data=busybox, mode=0o755), M("./usr/sbin/", "dir", mode=0o755),
        M("./usr/sbin/ldconfig", data=evil, mode=0o755)], package="libc-bin", version="2.36-9")
    store = Store(tmp_path / "store")
    pin = pin_for(store, deb, "libc-bin", "2.36-9", "amd64")
    root = debian_entries([pin], store, tmp_path / "staging", source_date_epoch=0)
    assert not marker.exists(), "the package's ldconfig ran on the host"
    # It ran in the sandbox, wrote no cache, and the build says so instead of failing.
    assert not any(e.path == "etc/ld.so.cache" for e in root.system)
    assert any("ld.so.cache left out" in n for n in root.notes)
