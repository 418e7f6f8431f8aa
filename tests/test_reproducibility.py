"""Same lock, same bytes: two builds of examples/hello under everything a host can vary."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from helpers import REPO, copy_example, need, run


def _tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _recreate_context_differently(ctx: Path) -> None:
    """Rewrite every context file in reverse order, with other mtimes, owners and umask bits."""
    files = sorted(p for p in ctx.rglob("*") if p.is_file() and p.name != "imagelock.lock")
    saved = [(p, p.read_bytes(), p.stat().st_mode) for p in files]
    for p in files:
        p.unlink()
    old = os.umask(0o002)
    try:
        for i, (p, data, mode) in enumerate(reversed(saved)):
            p.write_bytes(data)
            os.chmod(p, (mode & 0o111) | 0o664)  # group-writable, as umask 002 would leave them
            os.chown(p, 1234 + i, 5678)
            os.utime(p, (1_000_000_000 + i * 7777, 1_000_000_000 + i * 7777))
    finally:
        os.umask(old)


def test_two_builds_under_varied_hosts_give_the_locked_digest(tmp_path: Path) -> None:
    need("unshare")
    need("faketime")
    lock = json.loads((REPO / "examples/hello/imagelock.lock").read_text())
    want = lock["expected"]["linux/amd64"]["manifest_digest"]

    a = copy_example("hello", tmp_path / "a" / "hello")
    b = copy_example("hello", tmp_path / "elsewhere" / "deeper" / "path" / "hello")
    _recreate_context_differently(b)
    (tmp_path / "homeA").mkdir()
    (tmp_path / "homeB").mkdir()
    cwd_b = tmp_path / "some-cwd"
    cwd_b.mkdir()

    env_a = {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(tmp_path / "homeA"),
             "IMAGELOCK_STORE": str(tmp_path / "storeA")}
    ra = run(["build", str(a), "-o", str(tmp_path / "outA"), "--json"], cwd=a, env=env_a,
             prefix=["sh", "-c", 'umask 022; exec "$@"', "sh"])
    assert ra.returncode == 0, ra.stderr

    env_b = {"TZ": "Pacific/Kiritimati", "LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8",
             "HOME": str(tmp_path / "homeB"), "IMAGELOCK_STORE": str(tmp_path / "storeB")}
    # A UTS namespace with another host name, umask 002 and a wall clock 3 years ahead.
    prefix = ["unshare", "--uts", "sh", "-c",
              'hostname other-builder.example && umask 002 && exec faketime -f +1100d "$@"', "sh"]
    rb = run(["build", str(b), "-o", str(tmp_path / "outB"), "--json"], cwd=cwd_b, env=env_b,
             prefix=prefix)
    assert rb.returncode == 0, rb.stderr

    ja, jb = json.loads(ra.stdout), json.loads(rb.stdout)
    assert ja["platforms"]["linux/amd64"]["manifest_digest"] == want
    assert jb["platforms"]["linux/amd64"]["manifest_digest"] == want
    assert ja["verdict"] == jb["verdict"] == "reproduced"
    # Not only the digests: every file of the two OCI layouts is the same.
    assert _tree_digest(tmp_path / "outA") == _tree_digest(tmp_path / "outB")


def test_locking_again_elsewhere_writes_the_same_lock_bytes(tmp_path: Path) -> None:
    b = copy_example("hello", tmp_path / "x" / "hello")
    _recreate_context_differently(b)
    r = run(["lock", str(b), "-o", str(tmp_path / "new.lock")],
            env={"TZ": "Asia/Tokyo", "IMAGELOCK_STORE": str(tmp_path / "s")},
            prefix=["faketime", "-f", "-400d"])
    assert r.returncode == 0, r.stderr
    new = (tmp_path / "new.lock").read_bytes()
    # The lock names its spec and context relative to itself; written elsewhere, only that differs.
    committed = json.loads((REPO / "examples/hello/imagelock.lock").read_text())
    got = json.loads(new)
    assert got["spec"] == "x/hello/imagelock.yaml" and got["context"] == "x/hello"
    got["spec"], got["context"] = committed["spec"], committed["context"]
    assert got == committed
    r = run(["lock", str(b), "--check"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 0, r.stdout + r.stderr


def test_docker_archive_is_deterministic_too(tmp_path: Path) -> None:
    a = copy_example("hello", tmp_path / "a")
    outs = []
    for i, tz in enumerate(["UTC", "America/Lima"]):
        out = tmp_path / f"img{i}.tar"
        r = run(["build", str(a), "-o", str(out), "--format", "docker-archive"],
                env={"TZ": tz, "IMAGELOCK_STORE": str(tmp_path / f"s{i}")},
                prefix=["faketime", "-f", f"+{i * 500}d"])
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    shutil.rmtree(a)


def test_a_build_whose_compressed_blobs_differ_from_the_lock_exits_1_content_only(
    tmp_path: Path,
) -> None:
    """A lock made on a machine whose gzip wrote other bytes: our build has the lock's config
    digest (same content) but not its manifest digest, which is what the lock promises and what
    a consumer pins. That is not the locked image: exit 1, and the output says content only."""
    from imagelock.oci.layout_read import read_layout
    from tamper import recompress

    ex = copy_example("hello", tmp_path / "hello")
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    assert run(["build", str(ex), "-o", str(tmp_path / "ours")], env=env).returncode == 0
    # The lock as another compressor (Python's zlib at level 9) would have written it.
    other = recompress(read_layout(tmp_path / "ours"), tmp_path / "other")
    lock_file = ex / "imagelock.lock"
    lock = json.loads(lock_file.read_text())
    exp = lock["expected"]["linux/amd64"]
    assert other.config_digest == exp["config_digest"]
    exp["manifest_digest"] = other.manifest_digest
    for layer, blob in zip(exp["layers"], other.layers, strict=True):
        layer["digest"], layer["size"] = blob.digest, blob.size
    lock_file.write_text(json.dumps(lock, indent=2) + "\n")

    r = run(["build", str(ex), "-o", str(tmp_path / "again"), "--json"], env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert json.loads(r.stdout)["verdict"] == "reproduced-content"
    human = run(["build", str(ex), "-o", str(tmp_path / "again")], env=env)
    assert human.returncode == 1
    assert "content only" in human.stdout and "exit 1" in human.stdout
