"""A toy input kind, whole in this one module: what adding a kind takes besides its line in
`imagelock.inputs.registry.KINDS` (tests/test_input_kinds.py adds and removes that line).

A toy is a file fetched from a named source's mirrors (`toys:NAME`), pinned by sha256 and placed
at `dest`. A real kind adds its pin list to the lock model in formats/lock.py and its resolution
to lock/; the toy brings its own lock model (`ToyLock`) so that no format changes for a test.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from urllib.parse import quote

from imagelock.fetch.downloads import urls_for
from imagelock.formats.common import ImagePath, Sha256Hex, Strict
from imagelock.formats.lock import Lock
from imagelock.inputs.content import StoreContent
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
from imagelock.tar.entry import Entry, normalize_path


class ToyPin(Strict):
    name: str
    version: str
    location: str  # SOURCE:relative/path, resolved against the source's mirrors
    sha256: Sha256Hex
    size: int
    dest: ImagePath
    layer: str


class ToyLock(Lock):
    toys: list[ToyPin] = []


def _toys(lock: Lock) -> list[ToyPin]:
    return list(getattr(lock, "toys", []))


class Toys:
    name = "toys"

    def pins(self, lock: Lock, platform: str) -> Sequence[ToyPin]:
        return _toys(lock)

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        for t in _toys(lock):
            yield Source(t.sha256, t.size, f"toy {t.name}",
                         lambda t=t: urls_for(t.location, {}, mirrors.cli))  # type: ignore[misc]

    def platform_layers(self, lock: Lock) -> set[str]:
        return set()

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        for i, t in enumerate(_toys(lock)):
            content = StoreContent(build.store, t.sha256, t.size, f"toy {t.name}")
            path = normalize_path(t.dest, what=f"toys[{i}].dest")
            yield Entry(path, "file", 0o644, 0, 0, content=content), t.layer, f"toys[{i}] ({t.name})"

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        return {}

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        for t in _toys(lock):
            yield Dependency(f"toy:{t.name}@{t.version}", t.sha256)

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        return PinDiff(changed_lines("toy", keyed(_toys(old), "name"), keyed(_toys(new), "name")))

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        for t in _toys(lock):
            yield Component(self.name, t.name, t.version, f"pkg:generic/{quote(t.name)}@{t.version}",
                            t.sha256, t.size)
