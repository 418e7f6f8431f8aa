"""Image sets (issue 16): one spec, several images, each child on its parent's layers byte for
byte. Fast tests on a tiny files-only set (tests/fixtures/tiny-set); the OpenStack set has its
own end-to-end test."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from helpers import REPO, run
from imagelock import api
from imagelock.core.errors import InputError, StaleLockError

FIXTURE = REPO / "tests" / "fixtures" / "tiny-set"


def _copy(tmp: Path) -> Path:
    dest = tmp / "set"
    shutil.copytree(FIXTURE, dest, symlinks=True)
    return dest


def _manifest(layout: Path) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    return json.loads((layout / "blobs" / "sha256" / digest).read_bytes())  # type: ignore[no-any-return]


def _layers(layout: Path) -> list[str]:
    return [str(layer["digest"]) for layer in _manifest(layout)["layers"]]  # type: ignore[attr-defined]


def _config(layout: Path) -> dict[str, object]:
    digest = _manifest(layout)["config"]["digest"].split(":", 1)[1]  # type: ignore[index]
    return json.loads((layout / "blobs" / "sha256" / digest).read_bytes())  # type: ignore[no-any-return]


def _members(layout: Path, digest: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layout / "blobs" / "sha256" / digest.split(":", 1)[1]) as t:
        return {m.name: m for m in t.getmembers()}


@pytest.fixture
def locked(tmp_path: Path) -> Path:
    ex = _copy(tmp_path)
    api.lock(ex, store=tmp_path / "store")
    return ex


def test_a_set_is_locked_into_one_lock_per_image_and_an_index(locked: Path) -> None:
    index = json.loads((locked / "imagelock.lock").read_text())
    assert index["kind"] == "set"
    assert list(index["images"]) == ["base", "mid", "leaf-a", "leaf-b"]
    leaf = json.loads((locked / "imagelock.leaf-a.lock").read_text())
    assert leaf["set_image"] == "leaf-a"
    assert leaf["parent"]["image"] == "mid"
    assert leaf["parent"]["lock"]["parent"]["image"] == "base"
    assert leaf["layers"] == ["base-files", "mid-files", "leaf-a-files"]
    # the leaf inherits its parents' config and adds its own
    assert leaf["config"]["env"]["A"] == "1" and leaf["config"]["env"]["B"] == "2"
    assert leaf["config"]["user"] == "0:0" and leaf["config"]["cmd"] == ["/usr/bin/run"]


def test_children_reuse_their_parents_layers_and_add_only_what_is_new(locked: Path,
                                                                      tmp_path: Path) -> None:
    res = api.build(locked / "imagelock.lock", output=tmp_path / "out", store=tmp_path / "store",
                    offline=True)
    assert res.verdict == "reproduced" and res.images is not None
    assert set(res.images) == {"base", "mid", "leaf-a", "leaf-b"}
    out = tmp_path / "out"
    base, mid = _layers(out / "base"), _layers(out / "mid")
    assert mid[:1] == base and len(mid) == 2
    for leaf in ("leaf-a", "leaf-b"):
        assert _layers(out / leaf)[:2] == mid
        assert len(_config(out / leaf)["rootfs"]["diff_ids"]) == 3  # type: ignore[index]
    # mid's own layer: its new file, under the parent's 0700 directory kept as it is; the file
    # it places identically to base's is left out
    members = _members(out / "mid", mid[1])
    assert set(members) == {"srv", "srv/private", "srv/private/mid.txt"}
    assert members["srv/private"].mode == 0o700
    # each result names the lock's expected digests
    index = json.loads((locked / "imagelock.lock").read_text())
    for name, r in res.images.items():
        assert r.platforms["linux/amd64"].manifest_digest == \
            index["images"][name]["expected"]["linux/amd64"]["manifest_digest"]


def test_select_builds_the_matching_images_and_their_parents(locked: Path, tmp_path: Path) -> None:
    r = run(["build", str(locked), "-o", str(tmp_path / "out"), "--select", "^leaf-b$", "--json",
             "--offline"], env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(r.stdout)["images"]) == ["base", "leaf-b", "mid"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["base", "leaf-b", "mid"]
    bad = run(["build", str(locked), "-o", str(tmp_path / "o2"), "--select", "nova", "--offline"],
              env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert bad.returncode == 2 and "matches no image" in bad.stderr
    assert "leaf-a" in bad.stderr and "Traceback" not in bad.stderr


def test_a_parallel_build_gives_the_bytes_of_a_serial_one(locked: Path, tmp_path: Path) -> None:
    outs = {}
    for jobs in ("1", "4"):
        r = run(["build", str(locked), "-o", str(tmp_path / f"out{jobs}"), "--offline"],
                env={"IMAGELOCK_STORE": str(tmp_path / "store"), "IMAGELOCK_JOBS": jobs})
        assert r.returncode == 0, r.stderr
        root = tmp_path / f"out{jobs}"
        outs[jobs] = {str(p.relative_to(root)): p.read_bytes()
                      for p in sorted(root.rglob("*")) if p.is_file()}
    assert outs["1"] == outs["4"]
    assert len(outs["1"]) > 12


def test_one_image_of_a_set_builds_from_its_own_lock(locked: Path, tmp_path: Path) -> None:
    res = api.build(locked / "imagelock.leaf-a.lock", output=tmp_path / "leaf",
                    store=tmp_path / "store", offline=True)
    assert res.verdict == "reproduced"
    index = json.loads((locked / "imagelock.lock").read_text())
    assert res.platforms["linux/amd64"].manifest_digest == \
        index["images"]["leaf-a"]["expected"]["linux/amd64"]["manifest_digest"]


def test_a_changed_parent_makes_its_children_stale(locked: Path, tmp_path: Path) -> None:
    spec = locked / "imagelock.yaml"
    spec.write_text(spec.read_text().replace('env: {A: "1"}', 'env: {A: "changed"}'))
    with pytest.raises(StaleLockError) as err:
        api.build(locked / "imagelock.leaf-b.lock", output=tmp_path / "o",
                  store=tmp_path / "store", offline=True)
    assert "parent" in err.value.message
    check = api.lock_up_to_date(locked)
    assert not check.up_to_date
    assert any(d.startswith("leaf-b:") for d in check.differences)
    assert any(d.startswith("base:") for d in check.differences)
    api.lock(locked, store=tmp_path / "store")
    assert api.lock_up_to_date(locked).up_to_date


def test_a_context_file_of_a_parent_edited_is_noticed_for_the_child(locked: Path,
                                                                   tmp_path: Path) -> None:
    (locked / "ctx" / "base.txt").write_text("edited\n")
    assert not api.lock_up_to_date(locked).up_to_date
    with pytest.raises(StaleLockError):
        api.build(locked / "imagelock.lock", output=tmp_path / "o", store=tmp_path / "store",
                  offline=True)


@pytest.mark.parametrize(("edit", "words"), [
    (("  base:\n    image:", "  base:\n    parent: leaf-a\n    image:"), "cycle"),
    (("parent: base", "parent: nothing"), "not an image of the set"),
    (("parent: base", "parent: registry.invalid/x@sha256:0123"), "not a base image pinned by digest"),
    (("image: {name: tiny/leaf-b}", "image: {name: tiny/leaf-a}"), "same image.name"),
    (("app/a.txt, dest: /app/a.txt}", "app/a.txt, dest: /lib/a.txt}"), "symlink in the parent"),
])
def test_a_bad_set_is_refused_naming_what_to_fix(tmp_path: Path, edit: tuple[str, str],
                                                 words: str) -> None:
    ex = _copy(tmp_path)
    spec = ex / "imagelock.yaml"
    text = spec.read_text()
    assert edit[0] in text
    spec.write_text(text.replace(edit[0], edit[1], 1))
    r = run(["lock", str(ex)], env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 2, r.stderr
    assert words in r.stderr.replace("\n", " ") and "Traceback" not in r.stderr
    assert not (ex / "imagelock.lock").exists()


def test_commands_that_take_one_image_refuse_a_set_spec_with_a_hint(locked: Path) -> None:
    with pytest.raises(InputError) as err:
        api.build(locked / "imagelock.lock", select="(", output=locked / "o")
    assert "--select" in (err.value.field or "")


CHILD = """version: 1
context: ctx
source_date_epoch: 1700000000
images:
  app:
    parent: {ref}
    image: {{name: tiny/app}}
    contents:
      files: [{{src: app.txt, dest: /srv/private/app.txt}}]
"""


@pytest.mark.tools  # docker-registry, bubblewrap
@pytest.mark.slow
def test_a_child_on_a_base_pinned_by_digest_rebuilds_and_a_changed_base_is_refused(
        locked: Path, tmp_path: Path) -> None:
    from registry_fixture import start_registry

    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    r = run(["build", str(locked), "-o", str(tmp_path / "out"), "--select", "^base$",
             "--offline"], env=env)
    assert r.returncode == 0, r.stderr
    with start_registry(tmp_path / "registry") as reg:
        pushed = run(["push", str(tmp_path / "out" / "base"), f"{reg.host}/tiny/base:1", "--json"])
        assert pushed.returncode == 0, pushed.stderr
        ref = f"{reg.host}/tiny/base@{json.loads(pushed.stdout)['digest']}"
        child = tmp_path / "child"
        (child / "ctx").mkdir(parents=True)
        (child / "ctx" / "app.txt").write_text("app\n")
        (child / "imagelock.yaml").write_text(CHILD.format(ref=ref))
        first = {"IMAGELOCK_STORE": str(tmp_path / "child-store")}
        r = run(["lock", str(child)], env=first)
        assert r.returncode == 0, r.stderr
        lock = json.loads((child / "imagelock.app.lock").read_text())
        assert lock["parent"]["base"]["ref"] == ref
        assert lock["layers"] == ["base-layer-0", "app-files"]
        # a fresh store: the build pulls the base by digest, checking every blob
        fresh = {"IMAGELOCK_STORE": str(tmp_path / "fresh-store")}
        r = run(["build", str(child / "imagelock.app.lock"), "-o", str(tmp_path / "app"),
                 "--json"], env=fresh)
        assert r.returncode == 0, r.stderr
        built = json.loads(r.stdout)
        assert built["verdict"] == "reproduced"
        base_layers = _layers(tmp_path / "out" / "base")
        assert _layers(tmp_path / "app")[:1] == base_layers
        members = _members(tmp_path / "app", _layers(tmp_path / "app")[1])
        assert members["srv/private"].mode == 0o700  # the base's directory, kept as it is
        r = run(["rebuild", str(child / "imagelock.app.lock"), "--image",
                 f"oci:{tmp_path / 'app'}", "--json"],
                env={"IMAGELOCK_STORE": str(tmp_path / "rebuild-store")})
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout)["verdict"] == "reproduced"
        # the base's blob tampered with in the registry: refused, naming the base
        reg.blob_file(base_layers[0]).write_bytes(b"not the layer")
        r = run(["build", str(child / "imagelock.app.lock"), "-o", str(tmp_path / "t")],
                env={"IMAGELOCK_STORE": str(tmp_path / "tamper-store")})
        assert r.returncode == 3, r.stderr
        assert ref in r.stderr and "Traceback" not in r.stderr
    # the spec names another digest: the lock is stale, and the error names the parent
    spec = child / "imagelock.yaml"
    other = ref[:-1] + ("0" if ref[-1] != "0" else "1")
    spec.write_text(spec.read_text().replace(ref, other))
    r = run(["build", str(child / "imagelock.app.lock"), "-o", str(tmp_path / "s")], env=fresh)
    assert r.returncode == 2 and "parent" in r.stderr


def test_inspect_of_one_image_lists_its_parents_inputs_each_once_in_its_layer(locked: Path) -> None:
    r = run(["inspect", str(locked / "imagelock.leaf-a.lock")])
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[-1] for line in r.stdout.splitlines()[2:]}
    assert rows == {"/etc/passwd": "base-files", "/srv/base.txt": "base-files",
                    "/srv/private/mid.txt": "mid-files", "/app/a.txt": "leaf-a-files",
                    "/usr/bin/run": "leaf-a-files"}


def test_fetch_takes_the_sets_index_and_one_image_commands_say_which_lock_to_give(
        locked: Path, tmp_path: Path) -> None:
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    assert run(["fetch", str(locked)], env=env).returncode == 0
    r = run(["inspect", str(locked / "imagelock.lock")], env=env)
    assert r.returncode == 2 and "imagelock.NAME.lock" in r.stderr and "Traceback" not in r.stderr
