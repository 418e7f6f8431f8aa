"""Python wheels: the lock's wheel pins per platform, found by file name on the source's package
indexes, installed into one layer by `wheels` (pypa installer, deterministic bytecode)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

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

        entries, notices = wheel_entries(
            pins, build.store, build.workdir, site_packages=inst.site_packages,
            scripts_dir=inst.scripts_dir, interpreter=inst.interpreter,
            python_version=inst.python_version, compile=inst.compile, prefix=inst.prefix)
        build.notes.extend(n for n in notices if n not in build.notes)
        for e in entries:
            yield e, inst.layer, "contents.python"

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        return {}

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
        for w in self.pins(lock, platform):
            yield Component(self.name, w.name, w.version, f"pkg:pypi/{w.name}@{w.version}",
                            w.sha256, w.size)
