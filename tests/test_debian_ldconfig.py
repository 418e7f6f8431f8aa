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
    lib = b"not really a library\n"
    # It tries to write on the host, to change a library the build shares with the image, and
    # says that it ran (the note carries the end of its stderr), so the test knows it did.
    evil = (f"#!/usr/bin/busybox sh\necho ran > {marker}\n"
            "echo tampered >> /usr/lib/x86_64-linux-gnu/libevil.so.1\n"
            "echo hostile-ldconfig-ran >&2\nexit 1\n").encode()
    deb = make_deb(tmp_path / "libc-bin.deb", [
        M("./usr/", "dir", mode=0o755), M("./usr/bin/", "dir", mode=0o755),
        M("./usr/bin/busybox", data=busybox, mode=0o755), M("./usr/sbin/", "dir", mode=0o755),
        M("./usr/sbin/ldconfig", data=evil, mode=0o755), M("./usr/lib/", "dir", mode=0o755),
        M("./usr/lib/x86_64-linux-gnu/", "dir", mode=0o755),
        M("./usr/lib/x86_64-linux-gnu/libevil.so.1", data=lib, mode=0o644)],
        package="libc-bin", version="2.36-9")
    store = Store(tmp_path / "store")
    pin = pin_for(store, deb, "libc-bin", "2.36-9", "amd64")
    root = debian_entries([pin], store, tmp_path / "staging", source_date_epoch=0)
    # It did run (in the sandbox), and failed: the build says so instead of failing.
    assert any("ld.so.cache left out" in n and "hostile-ldconfig-ran" in n for n in root.notes), \
        root.notes
    assert not marker.exists(), "the package's ldconfig ran on the host"
    assert not any(e.path == "etc/ld.so.cache" for e in root.system)
    shipped = {e.path: e for e in root.packages["libc-bin"]}
    content = shipped["usr/lib/x86_64-linux-gnu/libevil.so.1"].content
    assert content is not None
    with content.open() as f:
        assert f.read() == lib, "the sandboxed ldconfig changed a file the image ships"
