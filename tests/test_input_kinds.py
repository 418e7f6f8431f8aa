"""Input kinds: one interface, one list. A kind defined in one module (tests/toy_kind.py) and
added to `KINDS` is fetched, placed into the image, attested, diffed and listed for an SBOM with
no other change; every registered kind implements the whole interface."""

from __future__ import annotations

import hashlib
import inspect
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, layer_index
from imagelock.api import resolve as make_lock
from imagelock.build.image import build_images
from imagelock.compare.locks import diff_locks, render_lock_diff
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.inputs.fetching import fetch_pins
from imagelock.inputs.kind import Component, Dependency, InputKind, Mirrors, PinDiff, Source
from imagelock.inputs.registry import KINDS, components
from imagelock.trust.attest import lock_pins
from imagelock.trust.provenance import Pin
from toy_kind import ToyLock, ToyPin, Toys

KEYSTONE = REPO / "examples" / "keystone" / "imagelock.lock"
TOY_BYTES = b"a toy input\n"
TOY_SHA = hashlib.sha256(TOY_BYTES).hexdigest()


@pytest.fixture
def toys_registered() -> Iterator[Toys]:
    """The one line a new kind adds to inputs/registry.py, for the length of a test."""
    kind = Toys()
    KINDS.append(kind)
    try:
        yield kind
    finally:
        KINDS.remove(kind)


@pytest.fixture
def toy_project(tmp_path: Path) -> tuple[ToyLock, Path, Store, dict[str, list[str]]]:
    """A locked project of one context file, with one toy pin added to its lock, and a mirror
    (a file:// directory) that serves the toy's bytes."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "greeting").write_text("hello\n")
    (proj / "imagelock.yaml").write_text(json.dumps({
        "version": 1, "image": {"name": "toy/test"},
        "source_date_epoch": 1700000000,
        "contents": {"files": [{"src": "greeting", "dest": "/etc/greeting"}]},
    }))
    store = Store(tmp_path / "store")
    lock = make_lock(proj / "imagelock.yaml", store=store)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "hello.txt").write_bytes(TOY_BYTES)
    toy = ToyPin(name="hello", version="1.0", location="toys:hello.txt", sha256=TOY_SHA,
                 size=len(TOY_BYTES), dest="/opt/toy/hello.txt", layer="toys")
    # The lock stage of a real kind would add its layer; the toy adds it by hand.
    toy_lock = ToyLock.model_validate({**lock.model_dump(mode="json"), "layers": [*lock.layers, "toys"],
                                       "toys": [toy.model_dump()]})
    return toy_lock, proj, store, {"toys": [mirror.as_uri()]}


def test_a_toy_kind_in_one_module_is_fetched_placed_attested_diffed_and_listed(
        toys_registered: Toys, toy_project: tuple[ToyLock, Path, Store, dict[str, list[str]]],
        tmp_path: Path) -> None:
    lock, proj, store, mirrors = toy_project

    # fetched: from the source's mirror into the store, hash-checked; then found there offline
    report = fetch_pins(lock, {}, store, cli_mirrors=mirrors, offline=False)
    assert (report.downloaded, report.bytes_downloaded) == (1, len(TOY_BYTES))
    assert store.has(TOY_SHA)
    assert fetch_pins(lock, {}, store, cli_mirrors={}, offline=True).present == 1

    # placed: in its own layer, at its destination, with its bytes
    (image,) = build_images(lock, context=proj, store=store, workdir=_workdir(tmp_path))
    assert [b.path is not None for b in image.layers] == [True, True]
    files_layer, toys_layer = (layer_index(b.path) for b in image.layers if b.path is not None)
    assert toys_layer["opt/toy/hello.txt"] == (tarfile.REGTYPE, 0o644, 0, 0, "", TOY_SHA)
    assert "opt/toy/hello.txt" not in files_layer and "etc/greeting" in files_layer

    # attested: a resolved dependency of the provenance, beside the context file
    pins = lock_pins(lock)
    assert Pin("toy:hello@1.0", TOY_SHA, None) in pins
    assert any(p.name == "context:greeting" for p in pins)

    # diffed: its line under "Inputs", beside the other kinds'
    newer = lock.model_copy(update={"toys": [lock.toys[0].model_copy(
        update={"version": "1.1", "sha256": "0" * 64})]})
    d = diff_locks(lock, newer)
    assert d.inputs == [f"~ toy hello (sha256: {TOY_SHA} -> {'0' * 64}, version: 1.0 -> 1.1)"]
    assert "Inputs:\n  ~ toy hello (sha256:" in render_lock_diff(d)
    assert diff_locks(newer, lock.model_copy(update={"toys": []})).inputs == ["- toy hello"]
    assert diff_locks(lock, lock).empty

    # listed: an SBOM component of the image
    assert Component("toys", "hello", "1.0", "pkg:generic/hello@1.0", TOY_SHA, len(TOY_BYTES)) in \
        list(components(lock, "linux/amd64"))


def test_without_its_registry_line_a_kind_is_not_used(
        toy_project: tuple[ToyLock, Path, Store, dict[str, list[str]]], tmp_path: Path) -> None:
    """The registry line is the one hook: unregistered, the toy's pins are neither fetched,
    placed nor attested (the lock field alone does nothing)."""
    lock, proj, store, mirrors = toy_project
    assert fetch_pins(lock, {}, store, cli_mirrors=mirrors, offline=False).downloaded == 0
    assert not store.has(TOY_SHA)
    (image,) = build_images(lock, context=proj, store=store, workdir=_workdir(tmp_path))
    assert all("opt/toy/hello.txt" not in layer_index(b.path) for b in image.layers if b.path)
    assert not any(p.name.startswith("toy:") for p in lock_pins(lock))


def _workdir(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def _params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


INTERFACE = [n for n, v in vars(InputKind).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_every_registered_kind_implements_the_whole_interface(kind: InputKind) -> None:
    assert set(INTERFACE) == {"pins", "sources", "platform_layers", "place", "make_layers",
                              "dependencies", "diff", "components"}
    assert isinstance(kind, InputKind)
    for name in INTERFACE:
        assert _params(getattr(type(kind), name)) == _params(getattr(InputKind, name)), name
    assert kind.name in Lock.model_fields, "a kind is named after its pins' field in the lock"

    # The pure answers have the promised types, on a lock with Debian, Python and context pins.
    lock = read_lock(KEYSTONE)
    platform = lock.platforms[0]
    assert isinstance(kind.pins(lock, platform), list)
    assert all(isinstance(s, Source) for s in kind.sources(lock, Mirrors()))
    assert kind.platform_layers(lock) <= set(lock.layers)
    assert all(isinstance(d, Dependency) for d in kind.dependencies(lock))
    same = kind.diff(lock, lock)
    assert isinstance(same, PinDiff) and same.lines == []
    assert all(r.empty for r in (same.reviews or {}).values())
    assert all(isinstance(c, Component) and c.kind == kind.name
               for c in kind.components(lock, platform))


def test_the_kinds_have_distinct_names() -> None:
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names)


def test_the_example_lock_lists_every_package_wheel_and_context_file_as_a_component() -> None:
    lock = read_lock(KEYSTONE)
    platform = lock.platforms[0]
    got = list(components(lock, platform))
    debs = lock.debian[platform].packages
    wheels = lock.python[platform]
    files = [f for f in lock.files if f.type == "file"]
    assert len(got) == len(debs) + len(wheels) + len(files)
    by_kind = {k: [c for c in got if c.kind == k] for k in ("debian", "python", "files")}
    libc = next(c for c in by_kind["debian"] if c.name == "libc6")
    pin = next(p for p in debs if p.name == "libc6")
    assert libc == Component("debian", "libc6", pin.version,
                             f"pkg:deb/debian/libc6@{pin.version}?arch={pin.architecture}",
                             pin.sha256, pin.size)
    assert {(c.name, c.version, c.sha256, c.size) for c in by_kind["python"]} == {
        (w.name, w.version, w.sha256, w.size) for w in wheels}
    assert all(c.purl == f"pkg:pypi/{c.name}@{c.version}" for c in by_kind["python"])
    assert {(c.name, c.sha256) for c in by_kind["files"]} == {(f.dest, f.sha256) for f in files}


def test_the_diff_lists_each_kinds_changes_in_registry_order() -> None:
    old = read_lock(KEYSTONE)
    platform = old.platforms[0]
    deb = old.debian[platform]
    new = old.model_copy(update={
        "debian": {platform: deb.model_copy(update={
            "indexes": deb.indexes[1:],
            "packages": [p.model_copy(update={"version": p.version + "+1"}) if p.name == "tar" else p
                         for p in deb.packages]})},
        "python": {platform: old.python[platform][1:]},
        "files": [f.model_copy(update={"mode": "0700"}) if f.type == "dir" else f for f in old.files],
        "paths": old.paths[1:],
    })
    d = diff_locks(old, new)
    assert [line.split(" ")[1] for line in d.inputs] == ["index", "wheel", "file", "path"]
    as_json = d.as_json()
    assert list(as_json)[:2] == ["debian", "inputs"]
    assert [c["name"] for c in as_json["debian"][platform]["upgraded"]] == ["tar"]  # type: ignore[index]
    text = render_lock_diff(d)
    assert text.index(f"Debian packages ({platform}):") < text.index("Inputs:")
