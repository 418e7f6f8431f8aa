"""Combining packages into a Debian root: the dpkg database, accounts, conflicts, CA bundle.

The dpkg database and the CA links are checked against the real tools (dpkg installing the same
packages into a scratch root; Debian's update-ca-certificates over the same certificates).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from deb_factory import M, make_deb
from imagelock.core.errors import InputError
from imagelock.inputs.debian.accounts import Group, User
from imagelock.inputs.debian.ca_bundle import subject_hash
from imagelock.inputs.debian.deb import DebPackage, read_deb
from imagelock.inputs.debian.root import DebianRoot, combine
from imagelock.tar.entry import Entry

EPOCH = 1700000000
ROOT = [M("./", "dir", mode=0o755)]


def _read(e: Entry) -> bytes:
    assert e.content is not None
    with e.content.open() as f:
        return f.read()


def _system(root: DebianRoot) -> dict[str, Entry]:
    return {e.path: e for e in root.system}


def _pkg(tmp: Path, name: str, members: list[M], **kw: object) -> DebPackage:
    return read_deb(make_deb(tmp / f"{name}.deb", members, package=name, **kw),  # type: ignore[arg-type]
                    tmp / "stage")


# --- the dpkg database ------------------------------------------------------------------------


def _two_packages(tmp: Path) -> list[Path]:
    a = make_deb(tmp / "alpha.deb", [
        *ROOT, M("./etc/", "dir", mode=0o755), M("./etc/alpha.conf", data=b"a=1\n"),
        M("./bin/", "dir", mode=0o755), M("./bin/alpha", data=b"#!/bin/sh\n", mode=0o755),
        M("./bin/al", "symlink", linkname="alpha"),
        M("./usr/", "dir", mode=0o755), M("./usr/share/", "dir", mode=0o755),
        M("./usr/share/doc/", "dir", mode=0o755), M("./usr/share/doc/alpha/", "dir", mode=0o755),
        M("./usr/share/doc/alpha/copyright", data=b"(c)\n"),
        M("./usr/share/doc/alpha/same", "hardlink", linkname="./usr/share/doc/alpha/copyright"),
    ], package="alpha", conffiles=["/etc/alpha.conf"], fields={
        "Priority": "optional", "Section": "misc", "Homepage": "https://example.org/alpha",
        "Replaces": "oldalpha (<<  1.0)", "Provides": "alpha-virtual", "Essential": "no",
        "Description": "the first\n Longer text.\n .\n Second paragraph.",
    })
    b = make_deb(tmp / "libbeta.deb", [
        *ROOT, M("./usr/", "dir", mode=0o755), M("./usr/lib/", "dir", mode=0o755),
        M("./usr/lib/x86_64-linux-gnu/", "dir", mode=0o755),
        M("./usr/lib/x86_64-linux-gnu/libbeta.so.1", data=b"\x7fELF beta"),
        M("./usr/share/", "dir", mode=0o755), M("./usr/share/doc/", "dir", mode=0o755),
    ], package="libbeta", version="2:3.4-5", md5sums=False,
        fields={"Multi-Arch": "same", "Source": "beta (3.4-5)", "Section": "libs",
                "Priority": "optional", "Essential": "yes"})
    return [a, b]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg not installed")
def test_status_list_md5sums_match_what_dpkg_writes(tmp_path: Path) -> None:
    debs = _two_packages(tmp_path)
    ours = combine([read_deb(d, tmp_path / "stage") for d in debs], source_date_epoch=EPOCH)
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").write_bytes(b"")
    subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-not-root",
                    "--force-unsafe-io", "-i", *map(str, debs)],
                   check=True, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    sys = _system(ours)
    assert _read(sys["var/lib/dpkg/status"]) == (admin / "status").read_bytes()
    theirs = sorted(os.listdir(admin / "info"))
    mine = sorted(p.split("/")[-1] for p in sys if p.startswith("var/lib/dpkg/info/"))
    assert mine == theirs
    for name in theirs:
        assert _read(sys[f"var/lib/dpkg/info/{name}"]) == (admin / "info" / name).read_bytes(), name


def test_database_covers_every_package_whatever_the_input_order(tmp_path: Path) -> None:
    pkgs = [read_deb(d, tmp_path / "stage") for d in _two_packages(tmp_path)]
    one = combine(pkgs, source_date_epoch=EPOCH)
    two = combine(list(reversed(pkgs)), source_date_epoch=EPOCH)
    assert [(e.path, e.type, e.linkname) for e in one.entries()] == [
        (e.path, e.type, e.linkname) for e in two.entries()]
    assert list(one.packages) == ["alpha", "libbeta"]
    status = _read(_system(one)["var/lib/dpkg/status"]).decode()
    assert status.index("Package: alpha") < status.index("Package: libbeta")
    assert "Essential: yes" in status and "Essential: no" not in status
    assert "libbeta:amd64.list" in " ".join(_system(one))
    # the packages' own files are grouped per package; the database is not among them
    assert "usr/bin/alpha" in {e.path for e in one.packages["alpha"]}
    assert not any(e.path.startswith("var/lib/dpkg") for g in one.packages.values() for e in g)
    assert {"bin", "lib"} <= set(_system(one))  # merged-/usr links


# --- accounts ---------------------------------------------------------------------------------

PASSWD_MASTER = b"root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
GROUP_MASTER = b"root:*:0:\ndaemon:*:1:\nshadow:*:42:\nusers:*:100:\n"


def _base_passwd(tmp: Path) -> DebPackage:
    return _pkg(tmp, "base-passwd", [
        *ROOT, M("./usr/", "dir", mode=0o755), M("./usr/share/", "dir", mode=0o755),
        M("./usr/share/base-passwd/", "dir", mode=0o755),
        M("./usr/share/base-passwd/passwd.master", data=PASSWD_MASTER),
        M("./usr/share/base-passwd/group.master", data=GROUP_MASTER),
    ])


def test_passwd_and_group_from_base_passwd_plus_extra_accounts(tmp_path: Path) -> None:
    root = combine(
        [_base_passwd(tmp_path), _pkg(tmp_path, "passwd", [*ROOT])],
        source_date_epoch=EPOCH,
        users=[User("app", 10001, 10001, "/home/app", "/bin/sh")],
        groups=[Group("app", 10001, ["app"])],
    )
    s = _system(root)
    day = EPOCH // 86400
    assert _read(s["etc/passwd"]) == (
        b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        b"app:x:10001:10001::/home/app:/bin/sh\n")
    assert _read(s["etc/group"]) == (
        b"root:x:0:\ndaemon:x:1:\nshadow:x:42:\nusers:x:100:\napp:x:10001:app\n")
    assert _read(s["etc/shadow"]).decode().splitlines() == [
        f"root:*:{day}:0:99999:7:::", f"daemon:*:{day}:0:99999:7:::", f"app:!:{day}:0:99999:7:::"]
    assert _read(s["etc/gshadow"]) == (
        b"root:*::\ndaemon:*::\nshadow:*::\nusers:*::\napp:!::app\n")
    assert (s["etc/shadow"].mode, s["etc/shadow"].gid) == (0o640, 42)


def test_without_the_passwd_package_there_is_no_shadow_file(tmp_path: Path) -> None:
    s = _system(combine([_base_passwd(tmp_path)], source_date_epoch=EPOCH))
    assert _read(s["etc/passwd"]).startswith(b"root:*:0:0:")
    assert "etc/shadow" not in s


def test_an_account_clashing_with_base_passwd_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="clashes with existing user daemon"):
        combine([_base_passwd(tmp_path)], source_date_epoch=EPOCH,
                users=[User("svc", 1, 1, "/", "/bin/sh")])


# --- conflicts --------------------------------------------------------------------------------


def _shipping(tmp: Path, name: str, data: bytes, **kw: object) -> DebPackage:
    return _pkg(tmp, name, [
        *ROOT, M("./usr/", "dir", mode=0o755), M("./usr/share/", "dir", mode=0o755),
        M("./usr/share/common", data=data), M(f"./usr/share/{name}-link", "hardlink",
                                              linkname="./usr/share/common"),
        M(f"./usr/share/{name}", data=name.encode()),
    ], **kw)


def test_identical_files_in_two_packages_are_placed_once(tmp_path: Path) -> None:
    root = combine([_shipping(tmp_path, "one", b"same"), _shipping(tmp_path, "two", b"same")],
                   source_date_epoch=EPOCH)
    one = {e.path for e in root.packages["one"]}
    two = {e.path for e in root.packages["two"]}
    assert "usr/share/common" in one and "usr/share/common" not in two
    assert "usr/share/dir" not in one and {"usr", "usr/share"} <= one & two  # dirs merge
    lists = {p: _read(e) for p, e in _system(root).items() if p.endswith(".list")}
    assert b"/usr/share/common\n" in lists["var/lib/dpkg/info/two.list"]


def test_different_files_without_replaces_stop_the_build_naming_both(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        combine([_shipping(tmp_path, "one", b"1"), _shipping(tmp_path, "two", b"2")],
                source_date_epoch=EPOCH)
    assert "one and two both ship /usr/share/common" in err.value.message
    assert "Replaces" in (err.value.hint or "")


def test_the_package_that_replaces_the_other_wins(tmp_path: Path) -> None:
    root = combine([
        _shipping(tmp_path, "one", b"1", fields={"Replaces": "two (<< 2)"}),
        _shipping(tmp_path, "two", b"2", version="1.5"),
    ], source_date_epoch=EPOCH)
    byp = {e.path: e for e in root.packages["one"]}
    assert _read(byp["usr/share/common"]) == b"1"
    two = {e.path: e for e in root.packages["two"]}
    assert "usr/share/common" not in two
    # two's hardlink lost its target to one: it keeps two's own content as a plain file
    assert two["usr/share/two-link"].type == "file" and _read(two["usr/share/two-link"]) == b"2"
    assert root.packages["one"] and {e.path: e for e in root.packages["one"]}[
        "usr/share/one-link"].type == "hardlink"
    lists = {p: _read(e) for p, e in _system(root).items() if p.endswith(".list")}
    assert b"/usr/share/common\n" not in lists["var/lib/dpkg/info/two.list"]
    assert b"/usr/share/common\n" in lists["var/lib/dpkg/info/one.list"]


def test_a_replaces_whose_version_does_not_match_does_not_count(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="both ship"):
        combine([
            _shipping(tmp_path, "one", b"1", fields={"Replaces": "two (<< 1.0)"}),
            _shipping(tmp_path, "two", b"2", version="1.5"),
        ], source_date_epoch=EPOCH)


# --- CA certificates --------------------------------------------------------------------------


def _cert(cn: str, org: str = "Imagelock Test", key: ec.EllipticCurvePrivateKey | None = None,
          serial: int = 1) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.skipif(shutil.which("update-ca-certificates") is None or shutil.which("openssl") is None,
                    reason="ca-certificates / openssl not installed")
def test_ca_bundle_and_links_match_update_ca_certificates(tmp_path: Path) -> None:
    twin = _cert("Twin  Root", org="Same Org")
    certs = {
        "mozilla/Alpha_Root.crt": _cert("Alpha Root"),
        "mozilla/Beta Root (Test), G2.crt": _cert("  BETA   root  "),
        "mozilla/Collide_A.crt": _cert("collide", org="x"),
        "mozilla/Collide_B.crt": _cert("COLLIDE", org="X"),  # same canonical subject: .0 and .1
        "mozilla/No_Newline.crt": _cert("No Newline").rstrip(b"\n"),
        "mozilla/Twin.crt": twin,
        "mozilla/Twin_Copy.crt": twin,  # a duplicate certificate gets no second hash link
        "extra/Other.crt": _cert("Other"),
    }
    members = [*ROOT, M("./usr/", "dir", mode=0o755), M("./usr/share/", "dir", mode=0o755),
               M("./usr/share/ca-certificates/", "dir", mode=0o755),
               M("./usr/share/ca-certificates/mozilla/", "dir", mode=0o755),
               M("./usr/share/ca-certificates/extra/", "dir", mode=0o755),
               M("./etc/", "dir", mode=0o755), M("./etc/ssl/", "dir", mode=0o755),
               M("./etc/ssl/certs/", "dir", mode=0o755)]
    members += [M(f"./usr/share/ca-certificates/{k}", data=v) for k, v in certs.items()]
    root = combine([_pkg(tmp_path, "ca-certificates", members)], source_date_epoch=EPOCH)
    sys = _system(root)
    conf = _read(sys["etc/ca-certificates.conf"])
    assert conf.endswith(b"#\nextra/Other.crt\nmozilla/Alpha_Root.crt\n"
                         b"mozilla/Beta Root (Test), G2.crt\nmozilla/Collide_A.crt\n"
                         b"mozilla/Collide_B.crt\nmozilla/No_Newline.crt\nmozilla/Twin.crt\n"
                         b"mozilla/Twin_Copy.crt\n")

    # the oracle: Debian's own script over the same files and the same configuration
    certsdir = tmp_path / "oracle/usr/share/ca-certificates"
    for k, v in certs.items():
        (certsdir / k).parent.mkdir(parents=True, exist_ok=True)
        (certsdir / k).write_bytes(v)
    etc = tmp_path / "oracle/etc/ssl/certs"
    etc.mkdir(parents=True)
    (tmp_path / "oracle/ca.conf").write_bytes(conf)
    subprocess.run(["update-ca-certificates", "--certsconf", str(tmp_path / "oracle/ca.conf"),
                    "--certsdir", str(certsdir), "--localcertsdir", str(tmp_path / "none"),
                    "--etccertsdir", str(etc), "--hooksdir", ""],
                   check=True, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    theirs = {}
    for name in os.listdir(etc):
        p = etc / name
        if p.is_symlink():
            theirs[name] = os.readlink(p).replace(str(certsdir), "/usr/share/ca-certificates")
    ours = {p.split("/")[-1]: e.linkname for p, e in sys.items()
            if p.startswith("etc/ssl/certs/") and e.type == "symlink"}
    assert ours == theirs
    assert _read(sys["etc/ssl/certs/ca-certificates.crt"]) == (etc / "ca-certificates.crt").read_bytes()
    assert sum(1 for n in ours if n.endswith(".1")) == 1


def test_subject_hash_matches_openssl_for_the_machines_ca_certificates() -> None:
    import base64
    import re

    files = sorted(Path("/usr/share/ca-certificates/mozilla").glob("*.crt"))[:40]
    if not files or shutil.which("openssl") is None:
        pytest.skip("no CA certificates or openssl on this machine")
    for f in files:
        pem = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", f.read_bytes(), re.DOTALL)
        assert pem is not None
        der = base64.b64decode(b"".join(pem.group(1).split()))
        want = subprocess.run(["openssl", "x509", "-subject_hash", "-noout", "-in", str(f)],
                              check=True, capture_output=True, text=True).stdout.strip()
        assert f"{subject_hash(der):08x}" == want, f.name
    assert hashlib.sha1(b"").hexdigest()  # keeps hashlib import honest
