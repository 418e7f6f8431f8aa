"""The input-kind interface: what every kind of pinned input answers about its pins.

A lock pins several kinds of input: Debian packages, wheels, context files, downloads, paths,
build steps. Every stage after the lock asks each kind the same questions, through this one
interface, and never knows which kinds exist (they are listed once, in `inputs.registry`):

- `pins`: the kind's pins in the lock, for one platform;
- `sources`: where each pinned input's bytes come from (the store key and candidate URLs), for
  filling the store (`imagelock fetch`), an input bundle or a check that mirrors still serve them;
- `platform_layers`, `place` and `make_layers`: how the kind is put into the image's tree;
- `dependencies`: its entries in SLSA provenance's resolvedDependencies;
- `diff`: its lines (and any review of its own) in `imagelock diff`;
- `components`: its components in a software bill of materials.

Modelled on pypa/installer's source and destination protocols: a small typed protocol, and the
orchestrators (`build.image`, `inputs.fetching`, `compare.locks`, `trust.attest`) each a loop
over the kinds. The data types here are plain and cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from imagelock.fetch.store import Store
    from imagelock.formats.lock import Lock
    from imagelock.tar.entry import Entry

Placement = tuple["Entry", str, str]
"""An entry for the image's tree, the layer it goes into, and its origin (for error messages)."""


@dataclass(frozen=True)
class Source:
    """Where one pinned input's bytes come from.

    `urls` is called only when the bytes are not already in the store, so that mirrors and
    package indexes are looked up only for what is missing (and never when offline)."""

    sha256: str
    size: int
    what: str  # names the input in messages: "wheel six-1.17.0-py2.py3-none-any.whl"
    urls: Callable[[], list[str]]


@dataclass(frozen=True)
class Mirrors:
    """What decides a pin's URLs besides the lock: the spec's sources (empty when the lock travels
    without its spec) and `--mirror NAME=URL` from the command line."""

    sources: Mapping[str, object] = field(default_factory=dict)
    cli: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildInputs:
    """What a kind may use while it places its pins for one platform."""

    context: Path  # the build context directory: context files are read (and checked) there
    store: Store  # pinned bytes by sha256; readers check the hash as they go
    workdir: Path  # scratch space of this kind for this platform, created on demand
    notes: list[str]  # what the user should know after the build (e.g. bytecode not compiled)
    # What the platforms of one build share, per kind: work that does not depend on the platform
    # (an `Architecture: all` .deb extracted once). Lives as long as the build's workdir.
    shared: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Dependency:
    """One SLSA resolved dependency: a name stable across runs, a sha256 and, if known, a URI."""

    name: str
    sha256: str
    uri: str | None = None


@dataclass(frozen=True)
class Component:
    """One component of the image for a software bill of materials."""

    kind: str  # the input kind's name: "debian", "python", "files", "downloads", ...
    name: str
    version: str | None
    purl: str | None  # package URL (https://github.com/package-url/purl-spec), when there is one
    sha256: str
    size: int
    layer: str | None = None  # the layer it is placed in
    origin: str | None = None  # where it came from: SOURCE/SUITE, a wheel's source, a location
    architecture: str | None = None  # a .deb's Debian architecture


class Review(Protocol):
    """A kind's own section of `imagelock diff` for one platform (e.g. Debian upgrades)."""

    @property
    def empty(self) -> bool: ...

    def as_json(self) -> dict[str, object]: ...

    def render(self) -> str: ...


@dataclass(frozen=True)
class PinDiff:
    """A kind's part of `imagelock diff`: one line per added, removed or changed pin (shown under
    "Inputs"), and, for a kind that has one, a review per platform shown under `title`.

    `reviews` is None for a kind without a review section; a kind that has one always returns a
    dict (possibly of empty reviews), so `--json` always carries its key."""

    lines: list[str] = field(default_factory=list)
    title: str = ""
    reviews: dict[str, Review] | None = None


@runtime_checkable
class InputKind(Protocol):
    """One kind of pinned input. Every method is pure in the lock, except `place` and
    `make_layers`, which read the store and the context and write only under `build.workdir`."""

    name: str
    """The kind's name: its lock field's name, and its key in `imagelock diff --json`."""

    def pins(self, lock: Lock, platform: str) -> Sequence[object]:
        """The kind's pins in `lock` that a build of `platform` uses."""
        ...

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        """Every pinned input whose bytes go through the store, each once (any platform)."""
        ...

    def platform_layers(self, lock: Lock) -> set[str]:
        """Layers whose content this kind makes different per platform (the others are built once
        and shared by every platform)."""
        ...

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        """The kind's entries in the image's tree, each with its layer and origin. Content is
        referenced, not read: the layer writer streams it and checks each pin's sha256."""
        ...

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        """Layers this kind makes (or completes) from the assembled tree (`layers`, by name) with
        the image's own programs: build steps, the wheels' bytecode. Empty for a kind that only
        places entries."""
        ...

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        """The kind's pins as SLSA resolved dependencies (every platform)."""
        ...

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        """What changed in this kind's pins between two locks."""
        ...

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        """The kind's components of the image built for `platform`."""
        ...


# --- helpers for a kind's diff lines ----------------------------------------------------------


def keyed(pins: Sequence[object], key: str) -> dict[str, dict[str, object]]:
    """Pins as JSON dicts (None fields left out), keyed by one field, for `changed_lines`."""
    out = {}
    for it in pins:
        d = it.model_dump(mode="json", exclude_none=True)  # type: ignore[attr-defined]
        out[str(d[key])] = d
    return out


def changed_lines(label: str, old: dict[str, dict[str, object]],
                  new: dict[str, dict[str, object]]) -> list[str]:
    """`- label key` for a removed pin, `+ label key` for an added one, `~ label key (field: a ->
    b, ...)` for a changed one; each group sorted by key."""
    lines = []
    for k in sorted(old.keys() - new.keys()):
        lines.append(f"- {label} {k}")
    for k in sorted(new.keys() - old.keys()):
        lines.append(f"+ {label} {k}")
    for k in sorted(old.keys() & new.keys()):
        if old[k] != new[k]:
            fields = sorted(f for f in old[k].keys() | new[k].keys() if old[k].get(f) != new[k].get(f))
            detail = ", ".join(f"{f}: {old[k].get(f)} -> {new[k].get(f)}" for f in fields)
            lines.append(f"~ {label} {k} ({detail})")
    return lines
