"""Python wheels: the lock's wheel pins per platform, found by file name on the source's package
indexes, installed into one layer by `wheels` (pypa installer); their bytecode compiled by the
image's own Python once the tree is assembled (`bytecode`, in `make_layers`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from imagelock.core.errors import InputError
from imagelock.formats.lock import Lock
from imagelock.formats.python import WheelPin
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
            yield Source(w.sha256, w.size, f"wheel {w.filename}", lambda w=w: urls(w))  # type: ignore[misc]

    def platform_layers(self, lock: Lock) -> set[str]:
        return set() if lock.python_install is None else {lock.python_install.layer}

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        inst = lock.python_install
        pins = lock.python.get(platform)
        if inst is None or pins is None:
            return
        # lazy: the installer loads for a build, not for diff, sign or an SBOM
        from imagelock.inputs.python.wheels import wheel_entries

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

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        lines: list[str] = []
        for platform in sorted(old.python.keys() | new.python.keys()):
            lines += changed_lines(f"wheel ({platform})", keyed(old.python.get(platform, []), "name"),
                                   keyed(new.python.get(platform, []), "name"))
        return PinDiff(lines)

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        layer = lock.python_install.layer if lock.python_install is not None else "python"
        for w in self.pins(lock, platform):
            yield Component(self.name, w.name, w.version, f"pkg:pypi/{w.name}@{w.version}",
                            w.sha256, w.size, layer=layer, origin=w.source)



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
