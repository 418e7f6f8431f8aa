"""Python wheels: the lock's wheel pins per platform, found by file name on the source's package
indexes, installed into one layer by `wheels` (pypa installer); their bytecode compiled by the
image's own Python once the tree is assembled (`bytecode`, in `make_layers`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from imagelock.core.errors import InputError
from imagelock.formats.lock import Lock
from imagelock.formats.python import WheelPin
from imagelock.formats.python_build import SourceBuildPin
from imagelock.inputs.kind import (
    BuildInputs,
    Component,
    Dependency,
    Mirrors,
    PinDiff,
    Placement,
    Source,
    changed_lines,
    keyed,
)
from imagelock.tar.entry import Entry

if TYPE_CHECKING:
    from imagelock.fetch.python_index import Indexes

# What `place` installed, for `make_layers` to compile: kept in the kind's own workdir.
_INSTALLED = "installed.json"


class PythonWheels:
    name = "python"

    def pins(self, lock: Lock, platform: str) -> Sequence[WheelPin]:
        return lock.python.get(platform, [])

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        wheels = {w.sha256: w for pins in lock.python.values() for w in pins}
        indexes: dict[str, Indexes] = {}

        def urls(w: WheelPin) -> list[str]:
            # lazy: the index client (and requests) loads only when a wheel must be downloaded
            from imagelock.fetch.python_index import indexes_for, wheel_sources

            if w.source not in indexes:  # pip's configuration is read once per source
                indexes[w.source] = indexes_for(w.source, mirrors.sources, mirrors.cli)
            return wheel_sources(w, indexes[w.source])

        for w in wheels.values():
            if w.origin == "source-build":
                continue  # built from its pinned sdist (below), never downloaded
            yield Source(w.sha256, w.size, f"wheel {w.filename}", lambda w=w: urls(w))  # type: ignore[misc]
        yield from build_sources(lock, mirrors, urls)

    def platform_layers(self, lock: Lock) -> set[str]:
        return set() if lock.python_install is None else {lock.python_install.layer}

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        inst = lock.python_install
        pins = lock.python.get(platform)
        if inst is None or pins is None:
            return
        # lazy: the installer and the build stage load for a build, not for diff, sign or an SBOM
        from imagelock.inputs.python.source_build import ensure_built
        from imagelock.inputs.python.wheels import wheel_entries

        build.notes.extend(ensure_built(lock, platform, build.store, build.workdir))

        entries, notices, installed = wheel_entries(
            pins, build.store, build.workdir, site_packages=inst.site_packages,
            scripts_dir=inst.scripts_dir, interpreter=inst.interpreter,
            python_version=inst.python_version, prefix=inst.prefix)
        build.notes.extend(n for n in notices if n not in build.notes)
        if inst.compile:
            (build.workdir / _INSTALLED).write_text(installed.to_json())
        for e in entries:
            yield e, inst.layer, "contents.python"

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        """The wheels' layer with bytecode compiled by the image's own Python (never the
        host's, whose version would change the bytes), over the tree assembled so far."""
        inst = lock.python_install
        state = build.workdir / _INSTALLED
        if inst is None or not inst.compile or not state.is_file():
            return {}
        # lazy: the sandbox and the installer load for a build, not for diff, sign or an SBOM
        from imagelock.inputs.python.bytecode import compile_in_image
        from imagelock.inputs.python.wheels import Installed, with_bytecode

        installed = Installed.from_json(state.read_text())
        compiled = compile_in_image(
            [layers[name] for name in lock.layers], installed.modules,
            interpreter=inst.interpreter, python_version=inst.python_version,
            source_date_epoch=lock.source_date_epoch, workdir=build.workdir)
        if compiled.failed:
            build.notes.append(compiled.note())
        entries = with_bytecode(layers[inst.layer], installed, compiled.pycs)
        # An image of a set may replace its parent's files (its own pycs of the same wheels):
        # only its own layers' entries can collide.
        below = set(lock.parent.lock.layers) if lock.parent is not None and \
            lock.parent.lock is not None else {n for n in lock.layers if n.startswith("base-layer-")}
        return {inst.layer: _with_cache_dirs(entries, layers, inst.layer, below)}

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        for pins in lock.python.values():
            for w in pins:
                yield Dependency(f"pkg:pypi/{w.name}@{w.version}?filename={w.filename}", w.sha256,
                                 w.location)
        # what the build stages used: a wheel built from source depends on all of it
        seen: set[str] = set()
        for builds in (lock.python_builds or {}).values():
            for b in builds:
                yield Dependency(f"pkg:pypi/{b.name}@{b.version}?filename={b.sdist.filename}",
                                 b.sdist.sha256, b.sdist.location)
                for w in b.build_wheels:
                    if w.sha256 not in seen:
                        seen.add(w.sha256)
                        yield Dependency(f"pkg:pypi/{w.name}@{w.version}?filename={w.filename}",
                                         w.sha256, w.location)
                for d in b.build_debian:
                    if d.sha256 not in seen:
                        seen.add(d.sha256)
                        yield Dependency(f"pkg:deb/debian/{d.name}@{d.version}?arch={d.architecture}",
                                         d.sha256, d.location)

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        lines: list[str] = []
        for platform in sorted(old.python.keys() | new.python.keys()):
            lines += changed_lines(f"wheel ({platform})", keyed(old.python.get(platform, []), "name"),
                                   keyed(new.python.get(platform, []), "name"))
        ob, nb = old.python_builds or {}, new.python_builds or {}
        for platform in sorted(ob.keys() | nb.keys()):
            lines += changed_lines(f"source build ({platform})",
                                   {b.name: _build_summary(b) for b in ob.get(platform, [])},
                                   {b.name: _build_summary(b) for b in nb.get(platform, [])})
        return PinDiff(lines)

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        layer = lock.python_install.layer if lock.python_install is not None else "python"
        for w in self.pins(lock, platform):
            yield Component(self.name, w.name, w.version, f"pkg:pypi/{w.name}@{w.version}",
                            w.sha256, w.size, layer=layer, origin=w.source)



def _build_summary(b: SourceBuildPin) -> dict[str, object]:
    """What a reviewer compares of a source build (its Debian build packages as one digest)."""
    debs = hashlib.sha256(" ".join(sorted(d.sha256 for d in b.build_debian)).encode()).hexdigest()
    return {"version": b.version, "sdist": b.sdist.filename, "sdist_sha256": b.sdist.sha256,
            "backend": b.backend, "wheel_sha256": b.wheel_sha256,
            "build_wheels": " ".join(sorted(w.filename for w in b.build_wheels)),
            "build_debian": f"{len(b.build_debian)} packages ({debs[:12]})"}


def build_sources(lock: Lock, mirrors: Mirrors,
                  wheel_urls: Callable[[WheelPin], list[str]]) -> Iterator[Source]:
    """What the build stages of source builds need: sdists and build wheels (found on the
    source's indexes like wheels) and build-only Debian packages (the Debian kind's mirrors)."""
    builds = [b for bs in (lock.python_builds or {}).values() for b in bs]
    if not builds:
        return
    # lazy: the Debian mirrors load only for a lock with source builds
    from imagelock.inputs.debian.kind import deb_source

    seen: set[str] = set()
    for b in builds:
        # found on the indexes exactly as a wheel is: by project page, file name and sha256
        sdist = WheelPin.model_construct(name=b.name, version=b.version, filename=b.sdist.filename,
                                         location=b.sdist.location, sha256=b.sdist.sha256,
                                         size=b.sdist.size, requested=False)
        if b.sdist.sha256 not in seen:
            seen.add(b.sdist.sha256)
            yield Source(b.sdist.sha256, b.sdist.size, f"sdist {b.sdist.filename}",
                         lambda s=sdist: wheel_urls(s))  # type: ignore[misc]
        for w in b.build_wheels:
            if w.sha256 not in seen:
                seen.add(w.sha256)
                yield Source(w.sha256, w.size, f"build wheel {w.filename}",
                             lambda w=w: wheel_urls(w))  # type: ignore[misc]
        for deb in b.build_debian:
            if deb.sha256 not in seen:
                seen.add(deb.sha256)
                yield deb_source(deb, mirrors, f"build package {deb.name} {deb.version}")


def _with_cache_dirs(entries: list[Entry], layers: dict[str, list[Entry]], layer: str,
                     below: set[str] | frozenset[str] = frozenset()) -> list[Entry]:
    """`entries` plus the `__pycache__` directories their .pyc files need (with the attributes of
    a declaration elsewhere in the image, else 0755 root), refusing a .pyc path another input
    already placed (the tree checked every other path when it was placed)."""
    own = {e.path for e in entries}
    others = {e.path: e for name, es in layers.items() if name != layer for e in es}
    theirs = {e.path for name, es in layers.items() if name != layer and name not in below
              for e in es}
    before = {e.path for e in layers[layer]}
    out = list(entries)
    for e in entries:
        if e.path in before:
            continue
        cache = e.path.rpartition("/")[0]
        if e.path in theirs:
            raise InputError(f"contents.python: the bytecode /{e.path} collides with an entry of "
                             "another input", field="contents.python",
                             hint="leave __pycache__ below site-packages to the wheels (or set "
                             "compile: false)")
        if cache in own:
            continue
        declared = others.get(cache)
        if declared is not None and declared.type != "dir":
            raise InputError(f"contents.python: /{cache} is a {declared.type} of another input, "
                             "where the wheels' bytecode goes", field="contents.python")
        out.append(declared if declared is not None else Entry(cache, "dir", 0o755))
        own.add(cache)
    return out
