"""Maintainer scripts: run once at lock time, recorded as plain actions, applied by builds.

Packages made at test time (tests/deb_factory.py) with a static busybox as their shell and
tools, so the scripts really run, in the rootfs sandbox, and what they do is checked against
what the build then makes without running them. update-alternatives' state file is checked
against the real update-alternatives on this machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from deb_factory import M, make_deb
from imagelock.formats import maintscripts as ms
from imagelock.formats.debian import DebianPackagePin, DebianPlatformLock
from imagelock.formats.lock import CompressionInfo, ImageInfo, Lock, ToolInfo
from imagelock.formats.spec import ImageConfig
from imagelock.inputs.debian.deb import DebPackage, read_deb
from imagelock.inputs.debian.derive import alternatives, derive_actions
from imagelock.inputs.debian.effects import alternative_state, review_lines
from imagelock.inputs.debian.root import combine
from imagelock.inputs.debian.scripts import acknowledged
from imagelock.inputs.debian.trace import Call, configure_order, parse_log, run_scripts
from imagelock.sandbox import bwrap
from imagelock.tar.entry import Entry

EPOCH = 1767225600
# Long enough to be recorded as a copy of its source (a few bytes are written out as text).
DEFAULT_CONF = b"# the default configuration, copied to /etc/app by the postinst\n" * 4 + b"listen 80\n"
TOOLS = ["sh", "ln", "mkdir", "chmod", "chown", "cp", "rm", "touch", "printf", "cat", "echo",
         "test", "[", "true", "false", "od"]


def _read(e: Entry) -> bytes:
    assert e.content is not None
    with e.content.open() as f:
        return f.read()


def _dirs(*paths: str) -> list[M]:
    return [M("./", "dir", mode=0o755)] + [M(f"./{p}/", "dir", mode=0o755) for p in paths]


def _busybox_members() -> list[M]:
    members = _dirs("usr", "usr/bin", "usr/sbin", "var", "var/lib", "etc", "run", "tmp")
    members.append(M("./usr/bin/busybox", data=Path("/bin/busybox").read_bytes(), mode=0o755))
    members += [M(f"./usr/bin/{t}", "symlink", linkname="busybox") for t in TOOLS]
    members.append(M("./usr/sbin/invoke-rc.d", mode=0o755,
                     data=b"#!/bin/sh\necho started > /var/lib/service-started\n"))
    return members


def _busybox(tmp: Path) -> DebPackage:
    """An Essential package with a static busybox as /bin/sh and the tools scripts use, and an
    invoke-rc.d that leaves a mark if it ever runs."""
    return read_deb(make_deb(tmp / "bb.deb", _busybox_members(), package="bb",
                             fields={"Essential": "yes"}), tmp / "stage")


def _app(tmp: Path) -> DebPackage:
    postinst = b"""#!/bin/sh
set -e
mkdir -p /srv/app
chown 1:2 /srv/app
chmod 0750 /srv/app
ln -s /usr/share/app/default.conf /etc/app/enabled.conf
cp /usr/share/app/default.conf /etc/app/app.conf
printf 'generated for %s by %s\\n' "$DPKG_MAINTSCRIPT_PACKAGE" "$1" > /etc/app/generated
chmod 0600 /usr/share/app/secret
rm /etc/app/obsolete
chown 0:4 /var/log/app
printf '\\001\\002\\000binary' > /var/lib/app.db
od -An -N16 -tx1 /dev/urandom > /var/lib/app.cookie
mkdir -p /run/app
invoke-rc.d app start
"""
    members = _dirs("etc", "etc/app", "usr", "usr/share", "usr/share/app", "var", "var/log",
                    "var/log/app", "var/lib")
    members += [M("./usr/share/app/default.conf", data=DEFAULT_CONF),
                M("./usr/share/app/secret", data=b"s3cret\n"),
                M("./etc/app/obsolete", data=b"old\n")]
    return read_deb(make_deb(tmp / "app.deb", members, package="app",
                             fields={"Depends": "bb"}, control_files={"postinst": postinst}),
                    tmp / "stage")


def _broken(tmp: Path) -> DebPackage:
    postinst = b"#!/bin/sh\ntouch /etc/broken-was-here\necho 'cannot go on' >&2\nexit 3\n"
    return read_deb(make_deb(tmp / "broken.deb", _dirs("etc"), package="broken",
                             fields={"Depends": "bb"}, control_files={"postinst": postinst}),
                    tmp / "stage")


def _derive(tmp: Path, packages: list[DebPackage],
            run: tuple[str, ...] = ()) -> tuple[list[ms.Action], list[ms.NotApplied], Path]:
    pre = combine(packages, source_date_epoch=EPOCH,
                  effects=ms.ScriptEffects(inputs="0" * 64, ran=[], actions=[]),
                  effects_workdir=tmp / "pre")
    trace = run_scripts(pre.entries(), packages, tmp / "trace", source_date_epoch=EPOCH)
    n = [0]

    def build(effects: ms.ScriptEffects) -> dict[str, Entry]:
        n[0] += 1
        root = combine(packages, source_date_epoch=EPOCH, effects=effects,
                       effects_workdir=tmp / f"check-{n[0]}")
        return {e.path: e for e in root.entries()}

    order = [p.db_name for p in configure_order(packages)]
    actions, not_applied = derive_actions({e.path: (e, "") for e in pre.entries()}, trace,
                                          order=order, alternatives_override={}, run=run,
                                          build=build)
    return actions, not_applied, trace.root


needs_rootfs = pytest.mark.skipif(not bwrap.available(rootfs=True),
                                  reason="the rootfs sandbox needs root and bubblewrap")


@pytest.mark.tools
@needs_rootfs
def test_what_a_postinst_does_is_recorded_as_actions_the_build_reproduces(tmp_path: Path) -> None:
    packages = [_busybox(tmp_path), _app(tmp_path)]
    actions, not_applied, traced = _derive(tmp_path, packages)
    by_path = {getattr(a, "path", ""): a for a in actions}
    assert by_path["/srv/app"] == ms.Directory(path="/srv/app", mode="0750", owner="1:2",
                                               package="app")
    assert by_path["/etc/app/enabled.conf"] == ms.Symlink(
        path="/etc/app/enabled.conf", target="/usr/share/app/default.conf", package="app")
    assert by_path["/etc/app/app.conf"] == ms.Copy(
        path="/etc/app/app.conf", source="/usr/share/app/default.conf", mode="0644", owner="0:0",
        package="app")
    assert by_path["/etc/app/generated"] == ms.File(
        path="/etc/app/generated", text="generated for app by configure\n", mode="0644",
        owner="0:0", package="app")
    assert by_path["/usr/share/app/secret"] == ms.Attributes(
        path="/usr/share/app/secret", mode="0600", owner="0:0", package="app")
    assert by_path["/var/log/app"] == ms.Attributes(path="/var/log/app", mode="0755",
                                                    owner="0:4", package="app")
    assert by_path["/etc/app/obsolete"] == ms.Remove(path="/etc/app/obsolete", package="app")
    # the check applied the actions as a build does and found nothing they do not reproduce
    assert not [n for n in not_applied if "do not reproduce" in n.reason]

    # the build, from the actions alone: the same tree, and the package's entries updated
    root = combine(packages, source_date_epoch=EPOCH,
                   effects=ms.ScriptEffects(inputs="0" * 64, ran=[], actions=actions),
                   effects_workdir=tmp_path / "build")
    built = {e.path: e for e in root.entries()}
    assert _read(built["etc/app/app.conf"]) == DEFAULT_CONF
    assert (built["srv/app"].mode, built["srv/app"].uid, built["srv/app"].gid) == (0o750, 1, 2)
    assert "etc/app/obsolete" not in built
    assert built["usr/share/app/secret"].mode == 0o600
    assert [e.mode for e in root.packages["app"] if e.path == "usr/share/app/secret"] == [0o600]
    assert _read(built["etc/app/generated"]) == (traced / "etc/app/generated").read_bytes()


@pytest.mark.tools
@needs_rootfs
def test_services_never_start_and_binary_outputs_and_runtime_state_are_listed(tmp_path: Path) -> None:
    packages = [_busybox(tmp_path), _app(tmp_path)]
    actions, not_applied, traced = _derive(tmp_path, packages)
    assert not (traced / "var/lib/service-started").exists()  # the shim answered, not the tool
    items = {(n.kind, n.what): n for n in not_applied}
    start = items[("command", "invoke-rc.d app start")]
    assert start.expected and "services never start" in start.reason
    db = items[("output", "/var/lib/app.db")]
    assert not db.expected and "binary file of 9 bytes" in db.reason
    assert items[("output", "/run/app")].expected
    cookie = items[("output", "/var/lib/app.cookie")]  # random: never recorded
    assert cookie.expected and "differs from one run of the script to the next" in cookie.reason
    assert "/var/lib/app.cookie" not in {getattr(a, "path", "") for a in actions}
    assert "/var/lib/app.db" not in {getattr(a, "path", "") for a in actions}
    lines = review_lines(ms.ScriptEffects(inputs="0" * 64, ran=["app postinst configure"],
                                          actions=actions, not_applied=not_applied), "linux/amd64")
    assert lines[0].endswith("1 to review:") and "app: /var/lib/app.db" in lines[1]


@pytest.mark.tools
@needs_rootfs
def test_a_binary_output_the_spec_asks_for_is_made_again_in_a_checked_build_step(
        tmp_path: Path) -> None:
    packages = [_busybox(tmp_path), _app(tmp_path)]
    actions, not_applied, _ = _derive(tmp_path, packages, run=("app",))
    [step] = [a for a in actions if isinstance(a, ms.RunScript)]
    assert [o.path for o in step.outputs] == ["/var/lib/app.db"]
    assert not [n for n in not_applied if n.what == "/var/lib/app.db"]
    root = combine(packages, source_date_epoch=EPOCH,
                   effects=ms.ScriptEffects(inputs="0" * 64, ran=[], actions=actions),
                   effects_workdir=tmp_path / "build")
    built = {e.path: e for e in root.entries()}
    assert _read(built["var/lib/app.db"]) == b"\x01\x02\x00binary"
    # a step whose output changed is refused, naming the file
    bad = step.model_copy(update={"outputs": [step.outputs[0].model_copy(update={"sha256": "0" * 64})]})
    others = [a for a in actions if not isinstance(a, ms.RunScript)]
    from imagelock.core.errors import InputError

    with pytest.raises(InputError, match="/var/lib/app.db with other bytes"):
        combine(packages, source_date_epoch=EPOCH,
                effects=ms.ScriptEffects(inputs="0" * 64, ran=[], actions=[*others, bad]),
                effects_workdir=tmp_path / "bad")


@pytest.mark.tools
@needs_rootfs
def test_a_failing_script_is_listed_with_its_output_and_its_changes_so_far_kept(
        tmp_path: Path) -> None:
    packages = [_busybox(tmp_path), _broken(tmp_path)]
    actions, not_applied, _ = _derive(tmp_path, packages)
    [failure] = [n for n in not_applied if n.kind == "failure"]
    assert failure.package == "broken" and "exited with 3" in failure.reason
    assert "cannot go on" in failure.reason and not failure.expected
    assert "/etc/broken-was-here" in {getattr(a, "path", "") for a in actions}


def test_configuration_order_is_the_essential_set_then_dependencies_first(tmp_path: Path) -> None:
    def pkg(name: str, **fields: str) -> DebPackage:
        return read_deb(make_deb(tmp_path / f"{name}.deb", _dirs(), package=name, fields=fields),
                        tmp_path / "stage")

    packages = [pkg("zlib"), pkg("web", Depends="libweb, zlib"), pkg("libweb", **{"Pre-Depends": "zlib"}),
                pkg("shell", Essential="yes", Depends="libc"), pkg("libc"),
                pkg("tool", Depends="virtual-thing"), pkg("provider", Provides="virtual-thing")]
    order = [p.name for p in configure_order(packages)]
    assert order[:2] == ["libc", "shell"]
    assert order.index("zlib") < order.index("libweb") < order.index("web")
    assert order.index("provider") < order.index("tool")


def test_shim_records_survive_any_argument_bytes() -> None:
    data = b"@\0pkg\0postinst\0update-alternatives\x003\0--install\0a b\0line\nbreak\0"
    data += b"@\0pkg2\0postinst\0ldconfig\x000\0"
    assert parse_log(data) == [
        Call("pkg", "postinst", "update-alternatives", ("--install", "a b", "line\nbreak")),
        Call("pkg2", "postinst", "ldconfig", ())]


def test_alternatives_follow_priorities_slaves_and_the_specs_choice() -> None:
    calls = [
        Call("mysql-common", "postinst", "update-alternatives",
             ("--install", "/etc/mysql/my.cnf", "my.cnf", "/etc/mysql/my.cnf.fallback", "100")),
        Call("mariadb-common", "postinst", "update-alternatives",
             ("--install", "/etc/mysql/my.cnf", "my.cnf", "/etc/mysql/mariadb.cnf", "200")),
        Call("mawk", "postinst", "update-alternatives",
             ("--install", "/usr/bin/awk", "awk", "/usr/bin/mawk", "5", "--slave",
              "/usr/share/man/man1/awk.1.gz", "awk.1.gz", "/usr/share/man/man1/mawk.1.gz")),
        Call("perl", "postinst", "update-alternatives", ("--remove", "rename", "/usr/bin/prename")),
    ]
    groups = {g.name: g for g in alternatives(calls, {})}
    assert sorted(groups) == ["awk", "my.cnf"]
    assert (groups["my.cnf"].selected, groups["my.cnf"].mode) == ("/etc/mysql/mariadb.cnf", "auto")
    assert groups["awk"].slaves == [ms.AlternativeSlave(name="awk.1.gz",
                                                         link="/usr/share/man/man1/awk.1.gz")]
    chosen = {g.name: g for g in alternatives(calls, {"my.cnf": "/etc/mysql/my.cnf.fallback"})}
    assert (chosen["my.cnf"].selected, chosen["my.cnf"].mode) == ("/etc/mysql/my.cnf.fallback",
                                                                   "manual")


@pytest.mark.skipif(shutil.which("update-alternatives") is None, reason="needs dpkg's tool")
def test_alternative_state_file_is_what_update_alternatives_writes(tmp_path: Path) -> None:
    """The real update-alternatives, in a private admin dir, against the state the build writes."""
    root = tmp_path / "root"
    for f in ("usr/bin/mawk", "usr/bin/gawk", "usr/share/man/man1/mawk.1.gz",
              "usr/share/man/man1/gawk.1.gz"):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    admin, alt = tmp_path / "admin", tmp_path / "alt"
    admin.mkdir()
    alt.mkdir()
    calls = [("/usr/bin/mawk", "5", "/usr/share/man/man1/mawk.1.gz"),
             ("/usr/bin/gawk", "10", "/usr/share/man/man1/gawk.1.gz")]
    recorded = []
    for path, prio, man in calls:
        args = ("--install", "/usr/bin/awk", "awk", path, prio, "--slave",
                "/usr/share/man/man1/awk.1.gz", "awk.1.gz", man)
        recorded.append(Call("x", "postinst", "update-alternatives", args))
        subprocess.run(["update-alternatives", "--quiet", "--root", str(root), "--admindir",
                        str(admin), "--altdir", str(alt), "--log", "/dev/null", *args], check=True)
    [group] = alternatives(recorded, {})
    assert alternative_state(group) == (admin / "awk").read_bytes()
    assert group.selected == "/usr/bin/gawk"


def test_acknowledgements_name_a_package_or_a_prefix_of_what_it_did() -> None:
    item = ms.NotApplied(package="libpam-modules:amd64", kind="command",
                         what="ssh-keygen -q -t rsa", reason="keys", expected=True)
    assert acknowledged(item, ["libpam-modules"])
    assert acknowledged(item, ["libpam-modules:amd64: ssh-keygen"])
    assert acknowledged(item, ["libpam-modules: ssh-keygen -q"])
    assert not acknowledged(item, ["libpam-modules: update-rc.d"])
    assert not acknowledged(item, ["openssh-server"])


def _lock_of(pins: list[DebianPackagePin]) -> Lock:
    """A lock holding just these Debian pins (what derive_effects reads of a lock)."""
    return Lock(lock_version=1, tool=ToolInfo(name="imagelock", version="test"),
                spec="imagelock.yaml", spec_digest="sha256:" + "0" * 64, spec_sections={},
                context=".", source_date_epoch=EPOCH, image=ImageInfo(name="t", tag="t"),
                platforms=["linux/amd64"],
                compression=CompressionInfo(algorithm="gzip", level=1, implementation="test"),
                layers=["debian"], config=ImageConfig(), expected={},
                debian={"linux/amd64": DebianPlatformLock(indexes=[], packages=pins)})


def _service(tmp: Path, name: str) -> Path:
    """A package whose postinst adds a system user the way adduser picks its uid: the first free
    one from 100."""
    postinst = f"""#!/bin/sh
set -e
uid=$(awk -F: 'BEGIN {{ u = 100 }} $3 >= u && $3 < 1000 {{ u = $3 + 1 }} END {{ print u }}' /etc/passwd)
echo "{name}:!:$uid:65534::/nonexistent:/usr/sbin/nologin" >> /etc/passwd
""".encode()
    return make_deb(tmp / f"{name}.deb", _dirs("etc"), package=name,
                    fields={"Depends": "bb, base-passwd"}, control_files={"postinst": postinst})


@pytest.mark.tools
@needs_rootfs
def test_uids_scripts_give_stay_pinned_when_a_new_package_comes_first(tmp_path: Path) -> None:
    from deb_factory import pin_for
    from imagelock.fetch.store import Store
    from imagelock.inputs.debian.scripts import derive_effects

    store = Store(tmp_path / "store")
    bb = make_deb(tmp_path / "bb.deb", _busybox_members() + [
        M("./usr/bin/awk", "symlink", linkname="busybox"), M("./usr/bin/grep", "symlink", linkname="busybox")],
        package="bb", fields={"Essential": "yes"})
    base = make_deb(tmp_path / "base-passwd.deb", _dirs("usr", "usr/share", "usr/share/base-passwd") + [
        M("./usr/share/base-passwd/passwd.master", data=b"root:*:0:0:root:/root:/bin/sh\n"
          b"nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        M("./usr/share/base-passwd/group.master", data=b"root:*:0:\nnogroup:*:65534:\n")],
        package="base-passwd")

    def pins(*names: str) -> list[DebianPackagePin]:
        debs = {"bb": bb, "base-passwd": base}
        out = [pin_for(store, debs[n], n, "1.0-1", "amd64") if n in debs else
               pin_for(store, _service(tmp_path, n), n, "1.0-1", "amd64") for n in names]
        return sorted(out, key=lambda p: p.name)

    def users(lock: Lock) -> dict[str, int]:
        effects = lock.debian["linux/amd64"].scripts
        assert effects is not None
        return {a.name: a.uid for a in effects.actions if isinstance(a, ms.ScriptUser)}

    first = derive_effects(_lock_of(pins("bb", "base-passwd", "svc")), ms.DebianScripts(), store)
    assert users(first) == {"svc": 100}
    # a new package configured before svc would take uid 100; the previous lock's svc keeps it
    again = derive_effects(_lock_of(pins("bb", "base-passwd", "early", "svc")), ms.DebianScripts(),
                           store, previous=first)
    assert users(again) == {"svc": 100, "early": 101}
    fresh = derive_effects(_lock_of(pins("bb", "base-passwd", "early", "svc")), ms.DebianScripts(),
                           store)
    assert users(fresh) == {"early": 100, "svc": 101}  # what pinning prevents


def test_inspect_shows_the_effects_a_lock_applies() -> None:
    from helpers import REPO, run

    r = run(["inspect", str(REPO / "examples/openssh-client/imagelock.lock"), "--json"])
    assert r.returncode == 0, r.stderr
    [image] = json.loads(r.stdout)["images"]
    effects = image["effects"]
    [group] = [e for e in effects["openssh-client"] if e.startswith("group _ssh")]
    gid = group.split("gid ")[1].rstrip(")")
    assert f"attributes /usr/bin/ssh-agent (2755 0:{gid})" in effects["openssh-client"]
    assert "alternative awk: /usr/bin/awk -> /usr/bin/mawk (auto, 1 choices)" in effects["mawk"]
    human = run(["inspect", str(REPO / "examples/openssh-client/imagelock.lock")]).stdout
    assert "maintainer-script effects applied" in human and "openssh-client: group _ssh" in human


@pytest.mark.tools
@needs_rootfs
def test_a_script_that_swaps_a_directory_for_a_link_to_the_host_root_reads_nothing_of_the_host(
        tmp_path: Path) -> None:
    first = b"#!/bin/sh\nmkdir -p /srv/d\necho mine > /srv/d/passwd\n"
    second = b"#!/bin/sh\nrm -r /srv/d\nln -s /etc /srv/d\n"
    packages = [_busybox(tmp_path)] + [
        read_deb(make_deb(tmp_path / f"{n}.deb", _dirs("srv"), package=n, fields={"Depends": dep},
                          control_files={"postinst": script}), tmp_path / "stage")
        for n, dep, script in (("a-first", "bb", first), ("b-second", "a-first", second))]
    actions, not_applied, _ = _derive(tmp_path, packages)
    paths = {getattr(a, "path", ""): a for a in actions}
    assert paths["/srv/d"] == ms.Symlink(path="/srv/d", target="/etc", package="b-second")
    # /srv/d/passwd now names the host's /etc/passwd through the link: never read, never recorded
    assert "/srv/d/passwd" not in paths
    assert not any("root:" in getattr(a, "text", "") for a in actions)
    assert not [n for n in not_applied if "do not reproduce" in n.reason]


def _image_file(layout: Path, path: str) -> bytes | None:
    """A file's bytes in a built image (the topmost layer that has it), None if none has it."""
    import tarfile

    from helpers import oci_layers

    found = None
    for layer in oci_layers(layout):
        with tarfile.open(layer, "r:*") as tf:
            for m in tf:
                if m.name.removeprefix("./") == path and m.isreg():
                    f = tf.extractfile(m)
                    assert f is not None
                    found = f.read()
    return found


@pytest.mark.tools
@pytest.mark.slow  # four locks (each runs the scripts) and three builds
@needs_rootfs
def test_lock_gives_accounts_by_default_and_lists_what_it_does_not_apply_until_acknowledged(
        tmp_path: Path) -> None:
    """`imagelock lock` end to end, on a signed archive served on loopback: base-passwd comes
    with any Debian package (root has a name, the service's own user exists), a script output
    the lock cannot record is named per package on stderr until the spec acknowledges it, and a
    spec that excludes base-passwd gets no accounts at all. A spec can instead ask for the
    script to run as a build step."""
    from helpers import run
    from tiny_archive import serve, serve_dir, tiny_archive

    app_postinst = b"""#!/bin/sh
set -e
uid=$(awk -F: 'BEGIN { u = 100 } $3 >= u && $3 < 1000 { u = $3 + 1 } END { print u }' /etc/passwd)
echo "app:!:$uid:65534::/nonexistent:/usr/sbin/nologin" >> /etc/passwd
printf '\\001\\002\\000binary' > /var/lib/app.db
"""
    debs = tmp_path / "debs"
    debs.mkdir()
    bb = make_deb(debs / "bb.deb", _busybox_members() + [
        M("./usr/bin/awk", "symlink", linkname="busybox")], package="bb",
        fields={"Essential": "yes"})
    base = make_deb(debs / "base-passwd.deb", _dirs("usr", "usr/share", "usr/share/base-passwd") + [
        M("./usr/share/base-passwd/passwd.master",
          data=b"root:*:0:0:root:/root:/bin/sh\nnobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        M("./usr/share/base-passwd/group.master", data=b"root:*:0:\nnogroup:*:65534:\n")],
        package="base-passwd")
    app = make_deb(debs / "app.deb", _dirs("var", "var/lib"), package="app",
                   fields={"Depends": "bb"}, control_files={"postinst": app_postinst})
    with tiny_archive([]) as archive, serve(serve_dir(archive.root, "/debian")) as (mirror, _):
        archive.add_deb("bb", bb, fields={"Essential": "yes"})
        archive.add_deb("base-passwd", base)
        archive.add_deb("app", app, fields={"Depends": "bb"})
        archive.publish()
        env = {"IMAGELOCK_STORE": str(tmp_path / "store"),
               "IMAGELOCK_MIRROR_TINY": mirror + "/debian", "IMAGELOCK_HTTP_BACKOFF": "0.01"}

        def lock(name: str, debian: str) -> tuple[Path, str, dict[str, object]]:
            d = tmp_path / name
            d.mkdir()
            (d / "imagelock.yaml").write_text(
                "version: 1\nimage: {name: imagelock/app, tag: t}\nsource_date_epoch: 1767225600\n"
                f"sources:\n  tiny: {{kind: debian, suites: [tiny], keyring: {archive.keyring}}}\n"
                f"contents:\n  debian: {debian}\n")
            r = run(["lock", str(d)], env=env)
            assert r.returncode == 0, r.stderr
            return d, r.stdout, json.loads((d / "imagelock.lock").read_text())

        # by default: base-passwd's accounts, the service's user, and the binary output listed
        d, said, data = lock("default", "{packages: [app]}")
        pl = data["debian"]["linux/amd64"]  # type: ignore[index]
        assert "base-passwd" in {p["name"] for p in pl["packages"]}
        assert "1 to review" in said and "app: /var/lib/app.db" in said
        [item] = [n for n in pl["scripts"]["not_applied"] if n["what"] == "/var/lib/app.db"]
        assert (item["package"], item["acknowledged"]) == ("app", False)
        r = run(["build", str(d), "-o", str(d / "out"), "--offline"], env=env)
        assert r.returncode == 0, r.stderr
        passwd = _image_file(d / "out", "etc/passwd")
        assert passwd is not None
        rows = [line.split(":") for line in passwd.decode().splitlines()]
        assert (rows[0][0], rows[0][2]) == ("root", "0")  # uid 0 has a name
        assert ("app", "100") in {(r[0], r[2]) for r in rows}  # pinned in the lock, no script ran
        assert _image_file(d / "out", "var/lib/app.db") is None  # listed, not made up

        # reviewed: acknowledged in the spec, recorded as such, no longer listed
        _, said, data = lock("acknowledged",
                               "{packages: [app], scripts: {acknowledge: ['app: /var/lib/app.db']}}")
        pl = data["debian"]["linux/amd64"]  # type: ignore[index]
        [item] = [n for n in pl["scripts"]["not_applied"] if n["what"] == "/var/lib/app.db"]
        assert item["acknowledged"] is True
        assert "to review" not in said and "app: /var/lib/app.db" not in said

        # or asked to run as a build step: made again at build, checked against the lock
        d, said, _ = lock("run", "{packages: [app], scripts: {run: [app]}}")
        assert "app: /var/lib/app.db" not in said
        r = run(["build", str(d), "-o", str(d / "out"), "--offline"], env=env)
        assert r.returncode == 0, r.stderr
        assert _image_file(d / "out", "var/lib/app.db") == b"\x01\x02\x00binary"

        # opted out: no base-passwd, no /etc/passwd
        d, _, data = lock("no-accounts", "{packages: [app], exclude: [base-passwd]}")
        pl = data["debian"]["linux/amd64"]  # type: ignore[index]
        assert "base-passwd" not in {p["name"] for p in pl["packages"]}
        r = run(["build", str(d), "-o", str(d / "out"), "--offline"], env=env)
        assert r.returncode == 0, r.stderr
        assert _image_file(d / "out", "etc/passwd") is None
