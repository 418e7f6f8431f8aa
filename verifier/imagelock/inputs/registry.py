"""The input kinds, listed once. Adding a kind is one module implementing `InputKind` and one
line here; every stage that handles inputs loops over this list, in this order.

The order is the order of placement (the first input to claim a path is named when another
collides with it) and of the lines in `imagelock diff`.
"""

from __future__ import annotations

from collections.abc import Iterator

from imagelock.formats.lock import Lock
from imagelock.inputs.debian.kind import DebianPackages
from imagelock.inputs.downloads import Downloads
from imagelock.inputs.files import ContextFiles
from imagelock.inputs.kind import Component, Dependency, InputKind
from imagelock.inputs.paths import Paths
from imagelock.inputs.python.kind import PythonWheels
from imagelock.inputs.steps.kind import BuildSteps

KINDS: list[InputKind] = [
    DebianPackages(),
    PythonWheels(),
    ContextFiles(),
    Downloads(),
    Paths(),
    BuildSteps(),
]


def dependencies(lock: Lock) -> list[Dependency]:
    """Every pinned input of the lock as a SLSA resolved dependency, each (name, sha256) once,
    sorted, so the same lock always gives the same list."""
    deps = {(d.name, d.sha256): d for kind in KINDS for d in kind.dependencies(lock)}
    return sorted(deps.values(), key=lambda d: (d.name, d.sha256))


def components(lock: Lock, platform: str) -> Iterator[Component]:
    """The components of the image built for `platform`, kind by kind (for an SBOM). An image of
    a set has its parents' too, each once, named with the layer it is in: the lowest image's."""
    chain = [lock]
    while (up := chain[0].parent) is not None and up.lock is not None:
        chain.insert(0, up.lock)
    seen: set[tuple[str, str, str | None, str]] = set()
    for kind in KINDS:
        for one in chain:
            for c in kind.components(one, platform):
                key = (c.kind, c.name, c.version, c.sha256)
                if key not in seen:
                    seen.add(key)
                    yield c
