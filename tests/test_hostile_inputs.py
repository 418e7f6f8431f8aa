"""Hostile locks and policies from others: nothing outside the lock's directory is read, nothing
about host files is revealed, and a policy that would accept anything is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import REPO, copy_example, run
from imagelock.formats.files import load_spec, read_lock
from imagelock.lock.staleness import spec_digests
from imagelock.trust.attest import lock_pins


def _hostile_lock(tmp: Path, **changes: object) -> Path:
    ex = copy_example("hello", tmp / "hello")
    lock = json.loads((ex / "imagelock.lock").read_text())
    lock.update(changes)
    (ex / "imagelock.lock").write_text(json.dumps(lock))
    return ex


def test_a_lock_naming_a_context_outside_its_directory_is_refused(tmp_path: Path) -> None:
    for changes in ({"context": "../../../../.."}, {"spec": "/etc/hostname"}):
        ex = _hostile_lock(tmp_path / str(len(str(changes))), **changes)
        r = run(["rebuild", str(ex), "--json"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
        assert r.returncode == 2, r.stderr
        assert "relative path without '..'" in r.stderr


def test_a_lock_file_pin_outside_the_context_is_refused_without_revealing_its_hash(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "leak").symlink_to(secret)
    lock = json.loads((ex / "imagelock.lock").read_text())
    lock["spec"] = "absent.yaml"  # no staleness check to hide behind
    lock["files"].append({"type": "file", "src": "leak", "dest": "/leak", "sha256": "0" * 64,
                          "size": 1, "mode": "0644", "owner": "0:0", "layer": "files"})
    (ex / "imagelock.lock").write_text(json.dumps(lock))
    r = run(["build", str(ex), "-o", str(tmp_path / "out")], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "outside the build context" in r.stderr
    import hashlib

    assert hashlib.sha256(b"top secret").hexdigest() not in r.stderr + r.stdout


def test_policies_that_accept_anything_or_let_a_vendor_vouch_for_itself_are_refused(tmp_path: Path) -> None:
    r = run(["keygen", "-o", str(tmp_path / "v"), "--no-passphrase"])
    assert r.returncode == 0
    img = tmp_path / "img"
    assert run(["build", str(REPO / "examples/hello"), "-o", str(img)],
               env={"IMAGELOCK_STORE": str(tmp_path / "s")}).returncode == 0
    (tmp_path / "open.yaml").write_text(
        "version: 1\nrebuilders: {threshold: 0}\nrequired_predicate_types: []\n")
    (tmp_path / "self.yaml").write_text(
        "version: 1\nvendors: [{name: acme, key: v.pub}]\n"
        "rebuilders: {threshold: 1, trusted: [{name: acme-rebuild, key: v.pub}]}\n")
    for policy, needle in (("open.yaml", "requires nothing"), ("self.yaml", "its own")):
        r = run(["verify", str(img), "--policy", str(tmp_path / policy)])
        assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_whiteout_names_are_refused_in_inputs(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / ".wh.passwd").write_text("x")
    (d / "imagelock.yaml").write_text(
        "version: 1\nimage: {name: t}\ncontents:\n  files:\n    - {src: .wh.passwd, dest: /etc/.wh.passwd}\n")
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "whiteout" in r.stderr


def test_provenance_names_every_wheel() -> None:
    lock = read_lock(REPO / "examples/keystone/imagelock.lock")
    names = {p.name for p in lock_pins(lock)}
    wheels = lock.python["linux/amd64"]
    assert all(f"pkg:pypi/{w.name}@{w.version}?filename={w.filename}" in names for w in wheels)
    assert any(n.startswith("pkg:deb/debian/") for n in names)


# --- issue 12, item 1: a lock directory must not reach into the host through symlinks ----------

HOST_SECRET = "s3cr3t-line-of-a-host-file"


def _host_dir(tmp: Path) -> Path:
    """A directory standing for /etc: files the lock's author must never see or ship."""
    host = tmp / "host"
    host.mkdir()
    (host / "shadow").write_text(f"root: {HOST_SECRET}\n{HOST_SECRET}-2: x\n")
    (host / f"{HOST_SECRET}.conf").write_text("x\n")
    return host


@pytest.mark.parametrize("command", ["build", "rebuild"])
def test_a_spec_that_is_a_symlink_to_a_host_file_is_refused_without_showing_it(
    command: str, tmp_path: Path
) -> None:
    host = _host_dir(tmp_path)
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "imagelock.yaml").unlink()
    (ex / "imagelock.yaml").symlink_to(host / "shadow")
    args = [command, str(ex), "--json"]
    args += ["-o", str(tmp_path / "out")] if command == "build" else ["--no-sandbox"]
    r = run(args, env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2, r.stderr
    assert "leads outside" in r.stderr
    assert HOST_SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["build", "rebuild"])
def test_a_context_that_is_a_symlink_out_of_the_lock_directory_is_refused(
    command: str, tmp_path: Path
) -> None:
    host = _host_dir(tmp_path)
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "ctx").symlink_to(host, target_is_directory=True)
    (ex / "imagelock.yaml").write_text((ex / "imagelock.yaml").read_text() + "context: ctx\n")
    # A consistent lock, as its author would make one: not stale, just pointing at the host.
    lock = json.loads((ex / "imagelock.lock").read_text())
    lock["spec_digest"], lock["spec_sections"] = spec_digests(load_spec(ex / "imagelock.yaml"))
    lock["context"] = "ctx"
    (ex / "imagelock.lock").write_text(json.dumps(lock))
    args = [command, str(ex), "--json"]
    args += ["-o", str(tmp_path / "out")] if command == "build" else ["--no-sandbox"]
    r = run(args, env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2, r.stderr
    assert "leads outside" in r.stderr
    # Neither the names in the host directory ("new in the context: ...") nor its content.
    assert HOST_SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_spec_is_refused_without_quoting_it(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    # Looks like YAML mappings, as /etc/passwd-like files do: every line would be an "unknown key".
    (d / "imagelock.yaml").write_text(f"root: x\n{HOST_SECRET}: y\n")
    r = run(["lock", str(d), "--json"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "not an imagelock spec" in r.stderr, r.stderr
    assert HOST_SECRET not in r.stdout + r.stderr
