"""The bubblewrap sandbox, checked with the real bwrap: each test proves one isolation property.

bwrap missing is a setup failure (./scripts/setup installs it), never a skip.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import IMAGELOCK, copy_example, need
from imagelock import api
from imagelock.core.errors import FetchError, StaleLockError, ToolUnavailable
from imagelock.rebuild.sandboxed import build_in_sandbox
from imagelock.sandbox import bwrap as sb
from imagelock.sandbox.bwrap import OverlayChange, Sandbox, build_sandbox

pytestmark = pytest.mark.tools


@pytest.fixture(autouse=True, scope="module")
def _bwrap() -> None:
    need("bwrap")
    assert sb.available(), sb._probe(False)


def inside(box: Sandbox, code: str) -> subprocess.CompletedProcess[bytes]:
    """Run Python `code` in the sandbox (build mode binds the interpreter where inside_path says)."""
    return box.run([sb.inside_path(sys.executable), "-I", "-B", "-c", textwrap.dedent(code)])


def probe(box: Sandbox, code: str) -> object:
    """Run `code`, which sets `out`; return `out` as JSON from inside."""
    r = inside(box, textwrap.dedent(code) + "\nimport json as _j; print(_j.dumps(out))")
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    (store / "sha256" / "obj").write_text("pinned")
    (tmp_path / "out").mkdir()
    return build_sandbox(inputs=[store], outputs=[tmp_path / "out"], source_date_epoch=1767225600)


@pytest.fixture
def loopback_listener() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    accepted: list[object] = []
    t = threading.Thread(target=lambda: accepted.append(srv.accept()), daemon=True)
    t.start()
    yield srv.getsockname()[1]
    srv.close()


def test_build_sandbox_cannot_reach_a_listener_on_the_host_loopback(
    box: Sandbox, loopback_listener: int
) -> None:
    # The listener is really there: from outside the connection succeeds.
    socket.create_connection(("127.0.0.1", loopback_listener), timeout=5).close()
    out = probe(box, f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {loopback_listener}), timeout=5)
            out = "connected"
        except OSError as e:
            out = type(e).__name__
    """)
    assert out == "ConnectionRefusedError"


def test_build_sandbox_has_no_dns_and_only_loopback(box: Sandbox) -> None:
    out = probe(box, """
        import socket
        try:
            socket.getaddrinfo("example.com", 80)
            dns = "resolved"
        except OSError as e:
            dns = type(e).__name__
        links = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
        out = [dns, links]
    """)
    assert out == ["gaierror", ["lo"]]


def test_undeclared_host_files_cannot_be_read(box: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "unbound" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("s3cret")
    tests_dir = Path(__file__).parent  # on sys.path under pytest, yet not bound
    paths = [str(secret), "/etc/hostname", "/etc/passwd", "/etc/shadow", "/root/.bash_history",
             str(tests_dir / "conftest.py"), "/home"]
    out = probe(box, f"""
        import os
        out = {{p: os.path.exists(p) for p in {paths!r}}}
        out["/etc"] = os.path.exists("/etc")
        out["/root"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
        out["/tmp"] = os.listdir("/tmp")
    """)
    assert isinstance(out, dict)
    assert not any(out[p] for p in paths), out
    assert out["/etc"] is False
    # Only the way down to a bound path (e.g. a pyenv interpreter under /root/.pyenv) exists.
    bound = [d for _, d in box.ro_binds + box.rw_binds]
    allowed = {Path(d).relative_to("/root").parts[0] for d in bound if d.startswith("/root/")}
    assert set(out["/root"]) <= allowed


def test_store_is_read_only_and_readable(box: Sandbox, tmp_path: Path) -> None:
    store, out_dir = sb.inside_path(tmp_path / "store"), sb.inside_path(tmp_path / "out")
    out = probe(box, f"""
        import errno
        data = open("{store}/sha256/obj").read()
        res = []
        for path in ("{store}/sha256/new", "{store}/sha256/obj", "/new-in-root"):
            try:
                open(path, "a").write("x")
                res.append("written")
            except OSError as e:
                res.append(errno.errorcode[e.errno])
        open("{out_dir}/result", "w").write("ok")
        out = [data, res]
    """)
    assert out == ["pinned", ["EROFS", "EROFS", "EROFS"]]
    assert (tmp_path / "out" / "result").read_text() == "ok"
    assert sorted(os.listdir(tmp_path / "store" / "sha256")) == ["obj"]


def test_build_sandbox_keeps_only_chroot_and_cannot_remount(box: Sandbox) -> None:
    """CAP_SYS_CHROOT alone (for the image's ldconfig -r), inside the sandbox's user namespace."""
    out = probe(box, """
        import ctypes, os
        caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")]
        libc = ctypes.CDLL(None, use_errno=True)
        MS_REMOUNT, MS_BIND = 32, 4096  # a bind remount without MS_RDONLY: make /usr writable
        rc = libc.mount(None, b"/usr", None, MS_REMOUNT | MS_BIND, None)
        out = [caps[0], rc, os.strerror(ctypes.get_errno())]
    """)
    assert out == ["0000000000040000", -1, "Operation not permitted"]


def test_environment_is_clean_and_fixed(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGELOCK_TEST_LEAK", "must-not-pass")
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    out = probe(box, """
        import os, socket
        os.umask(old := os.umask(0))
        out = [dict(os.environ), socket.gethostname(), oct(old)]
    """)
    assert out == [
        {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC", "LANG": "C.UTF-8",
         "LC_ALL": "C.UTF-8", "HOME": "/nonexistent", "SOURCE_DATE_EPOCH": "1767225600",
         "IMAGELOCK_IN_SANDBOX": "1", "PWD": "/"},
        "imagelock",
        "0o22",
    ]


@pytest.mark.parametrize("disk_backed", [False, True])
def test_tmp_is_empty_and_private(tmp_path: Path, disk_backed: bool) -> None:
    host_tmp = tmp_path / "fresh-tmp"
    host_tmp.mkdir()
    box = build_sandbox(inputs=[], outputs=[], tmp=host_tmp if disk_backed else None)
    out = probe(box, """
        import os
        before = os.listdir("/tmp")
        open("/tmp/written-inside", "w").write("x")
        out = before
    """)
    assert out == []
    assert not Path("/tmp/written-inside").exists()
    assert os.listdir(host_tmp) == (["written-inside"] if disk_backed else [])


def _locked_hello(tmp_path: Path, store: Path, download: Path | None = None) -> Path:
    """examples/hello copied and locked afresh; with `download`, also a file:// download."""
    ctx = copy_example("hello", tmp_path / "hello")
    (ctx / "imagelock.lock").unlink()
    store.mkdir(exist_ok=True)
    if download is not None:
        spec = ctx / "imagelock.yaml"
        spec.write_text(spec.read_text().replace(
            "contents:\n", f"contents:\n  downloads:\n    - {{url: 'file://{download}', "
            "dest: /usr/share/hello/blob}\n", 1))
    r = subprocess.run([IMAGELOCK, "lock", str(ctx), "--store", str(store)], check=False,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return ctx / "imagelock.lock"


def test_build_in_sandbox_reproduces_the_locked_digest(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lock = _locked_hello(tmp_path, store)
    expected = json.loads(lock.read_text())["expected"]["linux/amd64"]
    res = build_in_sandbox(lock, None, store, tmp_path / "out", "oci")
    plat = res["platforms"]["linux/amd64"]
    assert res["verdict"] == "reproduced"
    assert res["output"] == str(tmp_path / "out")
    assert plat["manifest_digest"] == expected["manifest_digest"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == expected["manifest_digest"]
    # The same bytes as the unsandboxed build, and nothing left beside the output.
    direct = api.build(lock, output=tmp_path / "direct", store=store, offline=True)
    assert direct.model_dump(mode="json")["platforms"] == res["platforms"]
    assert sorted(os.listdir(tmp_path)) == ["direct", "hello", "out", "store"]


def test_build_in_sandbox_writes_a_docker_archive_in_place(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lock = _locked_hello(tmp_path, store)
    res = build_in_sandbox(lock, None, store, tmp_path / "image.tar", "docker-archive")
    assert res["verdict"] == "reproduced"
    assert (tmp_path / "image.tar").is_file()
    assert sorted(os.listdir(tmp_path)) == ["hello", "image.tar", "store"]


def test_build_in_sandbox_takes_downloads_from_the_store_only(tmp_path: Path) -> None:
    served = tmp_path / "served" / "blob"  # reachable at lock time, never bound in the sandbox
    served.parent.mkdir()
    served.write_bytes(b"pinned download\n" * 100)
    store = tmp_path / "store"
    lock = _locked_hello(tmp_path, store, download=served)
    res = build_in_sandbox(lock, None, store, tmp_path / "out", "oci")
    assert res["verdict"] == "reproduced"
    objects = list((store / "sha256").iterdir())
    assert len(objects) == 1
    for obj in objects:
        obj.unlink()
    with pytest.raises(FetchError) as e:
        build_in_sandbox(lock, None, store, tmp_path / "out2", "oci")
    assert e.value.exit_code == 3 and "not in the store" in e.value.message


def test_an_error_inside_is_raised_outside_as_the_same_class(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lock = _locked_hello(tmp_path, store)
    spec = lock.parent / "imagelock.yaml"
    spec.write_text(spec.read_text().replace('tag: "1.0"', 'tag: "1.1"'))
    with pytest.raises(StaleLockError) as e:
        build_in_sandbox(lock, None, store, tmp_path / "out", "oci")
    assert "stale" in e.value.message and e.value.hint and "imagelock lock" in e.value.hint
    assert e.value.path == str(lock)
    assert not (tmp_path / "out").exists()


def test_missing_bwrap_is_tool_unavailable_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    sb._probe.cache_clear()
    try:
        assert not sb.available()
        with pytest.raises(ToolUnavailable) as e:
            sb.require()
        assert e.value.exit_code == 4
        assert e.value.hint and "apt-get install bubblewrap" in e.value.hint
    finally:
        monkeypatch.undo()
        sb._probe.cache_clear()


# --- rootfs mode: a command inside an image root ------------------------------------------------

@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A root of busybox alone, with a few files for a step to change."""
    busybox = need("busybox")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "var" / "cache").mkdir(parents=True)
    subprocess.run(["cp", busybox, str(root / "bin" / "busybox")], check=True)
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "etc" / "motd").write_text("hello\n")
    (root / "etc" / "old.conf").write_text("remove me\n")
    (root / "var" / "cache" / "stale").write_text("x\n")
    return root


@pytest.fixture
def as_root() -> None:
    assert os.geteuid() == 0, "rootfs mode needs root; the test machine runs as root"
    assert sb.available(rootfs=True), sb._probe(True)


def test_rootfs_step_can_chown_to_other_uids_without_network(
    tiny_root: Path, as_root: None
) -> None:
    r = sb.rootfs_sandbox(tiny_root, source_date_epoch=0).run(["/bin/sh", "-c", """
        busybox touch /owned && busybox chown 1234:1234 /owned
        busybox mknod /disk b 253 0 2>/dev/null && echo mknod-allowed
        busybox cat /proc/net/dev | busybox tail -n +3 | busybox cut -d: -f1 | busybox tr -d ' '
        busybox hostname; echo "$SOURCE_DATE_EPOCH"
    """])
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == ["lo", "imagelock", "0"]
    st = (tiny_root / "owned").stat()
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    assert not (tiny_root / "disk").exists()


def test_overlay_step_reports_added_changed_and_deleted(tiny_root: Path, as_root: None) -> None:
    before = {p: p.read_bytes() for p in tiny_root.rglob("*") if p.is_file()}
    upper = sb.overlay_run(tiny_root, ["/bin/sh", "-c", """
        echo new > /etc/new.conf && busybox chown 1234 /etc/new.conf
        echo more >> /etc/motd
        busybox rm /etc/old.conf
        busybox rm -r /var/cache && busybox mkdir /var/cache
        echo scratch > /tmp/ignored
    """])
    try:
        changes = sb.upper_to_changes(upper, tiny_root)
        assert changes == [
            OverlayChange("etc", "changed"),
            OverlayChange("etc/motd", "changed"),
            OverlayChange("etc/new.conf", "added"),
            OverlayChange("etc/old.conf", "deleted"),
            OverlayChange("var", "changed"),
            OverlayChange("var/cache", "changed"),
            OverlayChange("var/cache", "opaque"),
        ]
        assert (upper / "etc" / "new.conf").stat().st_uid == 1234
        assert stat.S_ISCHR((upper / "etc" / "old.conf").lstat().st_mode)
        # The lower root is untouched, and no mount point of the sandbox is left in the change.
        assert {p: p.read_bytes() for p in tiny_root.rglob("*") if p.is_file()} == before
        assert sorted(os.listdir(tiny_root)) == ["bin", "etc", "var"]
        assert stat.S_IMODE(upper.stat().st_mode) == stat.S_IMODE(tiny_root.stat().st_mode)
    finally:
        subprocess.run(["rm", "-rf", str(upper)], check=True)


def test_overlay_step_that_fails_raises_with_its_output(tiny_root: Path, as_root: None) -> None:
    with pytest.raises(sb.StepFailed) as e:
        sb.overlay_run(tiny_root, ["/bin/sh", "-c", "echo boom >&2; exit 3"])
    assert "exited with 3" in e.value.message and "stderr:\n    boom" in e.value.message


def test_a_root_step_cannot_change_kernel_settings(tiny_root: Path, as_root: None) -> None:
    """Real root in rootfs mode: /proc/sys and friends are read-only, kernel memory hidden."""
    box = sb.rootfs_sandbox(tiny_root)
    r = box.run(["/bin/busybox", "sh", "-c",
                 "v=$(busybox cat /proc/sys/vm/swappiness); echo $v > /proc/sys/vm/swappiness"
                 " && echo WROTE; echo x > /proc/sysrq-trigger && echo SYSRQ; echo done"])
    out, err = r.stdout.decode(), r.stderr.decode()
    assert out.strip() == "done", (out, err)
    assert "Read-only file system" in err


def test_step_symlinks_never_lead_the_build_to_host_paths(tmp_path: Path, as_root: None) -> None:
    """A step that links /x to a host directory, then a step that replaces /x with a fresh
    directory: applying the changes must not empty or chmod the host directory."""
    from imagelock.formats.spec import Step
    from imagelock.inputs.steps.run import run_steps
    from imagelock.tar.entry import Entry

    busybox = need("busybox")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    os.chmod(victim, 0o700)
    data = Path(busybox).read_bytes()
    from imagelock.tar.entry import BytesContent

    below = [[Entry("bin", "dir", 0o755), Entry("bin/busybox", "file", 0o755, content=BytesContent(data)),
              Entry("bin/sh", "symlink", 0o777, linkname="busybox")]]
    steps = [Step(name="one", run=["/bin/sh", "-c", f"ln -s {victim} /x"]),
             Step(name="two", run=["/bin/sh", "-c", "rm /x; mkdir /x; chmod 777 /x"])]
    out = run_steps(steps, below, tmp_path / "work", source_date_epoch=0)
    assert (victim / "precious").read_text() == "keep me"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700
    assert any(e.path == "x" and e.type == "dir" for e in out["two"])
