"""What changed between two locks, made for review: `imagelock diff A B`.

Debian package pins are matched by (name, architecture). A version change is an upgrade or a
downgrade by Debian version order; the same version with different bytes is called out on its
own, because an archive should never do that (a rebuilt or a substituted package); the same bytes
found at another location are listed as relocated, which is harmless but visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from debian.debian_support import Version

from imagelock.formats.debian import DebianIndexPin, DebianPackagePin
from imagelock.formats.lock import Lock

Key = tuple[str, str]


@dataclass(frozen=True)
class PinChange:
    """One package present in both locks with something different."""

    old: DebianPackagePin
    new: DebianPackagePin

    def as_json(self) -> dict[str, object]:
        return {"name": self.new.name, "architecture": self.new.architecture,
                "old": self.old.model_dump(mode="json"), "new": self.new.model_dump(mode="json")}


@dataclass(frozen=True)
class DebianDiff:
    """Changes between two sets of Debian package pins, each list sorted by name."""

    added: list[DebianPackagePin] = field(default_factory=list)
    removed: list[DebianPackagePin] = field(default_factory=list)
    upgraded: list[PinChange] = field(default_factory=list)
    downgraded: list[PinChange] = field(default_factory=list)
    hash_changed: list[PinChange] = field(default_factory=list)
    relocated: list[PinChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.upgraded or self.downgraded
                    or self.hash_changed or self.relocated)

    def as_json(self) -> dict[str, object]:
        return {
            "added": [p.model_dump(mode="json") for p in self.added],
            "removed": [p.model_dump(mode="json") for p in self.removed],
            "upgraded": [c.as_json() for c in self.upgraded],
            "downgraded": [c.as_json() for c in self.downgraded],
            "hash_changed": [c.as_json() for c in self.hash_changed],
            "relocated": [c.as_json() for c in self.relocated],
        }


def diff_debian(old_pins: Sequence[DebianPackagePin], new_pins: Sequence[DebianPackagePin]) -> DebianDiff:
    """Classify every difference between two locks' Debian package pins."""
    old = {(p.name, p.architecture): p for p in old_pins}
    new = {(p.name, p.architecture): p for p in new_pins}
    d = DebianDiff()
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a is None and b is not None:
            d.added.append(b)
        elif b is None and a is not None:
            d.removed.append(a)
        elif a is not None and b is not None and a != b:
            va, vb = Version(a.version), Version(b.version)
            if vb > va:
                d.upgraded.append(PinChange(a, b))
            elif vb < va:
                d.downgraded.append(PinChange(a, b))
            elif a.sha256 != b.sha256 or a.size != b.size:
                d.hash_changed.append(PinChange(a, b))
            else:
                d.relocated.append(PinChange(a, b))
    return d


def _where(p: DebianPackagePin) -> str:
    return f"{p.source}/{p.suite}"


def render_debian_diff(d: DebianDiff) -> str:
    """A review-friendly text: a summary line, then one aligned line per change, worst first."""
    if d.empty:
        return "Debian packages: no changes"
    counts = [(len(d.hash_changed), "hash changed"), (len(d.downgraded), "downgraded"),
              (len(d.upgraded), "upgraded"), (len(d.added), "added"), (len(d.removed), "removed"),
              (len(d.relocated), "relocated")]
    lines = ["Debian packages: " + ", ".join(f"{n} {what}" for n, what in counts if n)]
    rows: list[tuple[str, str, str, str]] = []
    for c in d.hash_changed:
        change = f"{c.new.version}: sha256 {c.old.sha256[:16]}... -> {c.new.sha256[:16]}..."
        rows.append(("HASH CHANGED", c.new.name, change, "same version, different bytes: find out why"))
    for kind, changes in (("downgraded", d.downgraded), ("upgraded", d.upgraded)):
        for c in changes:
            where = _where(c.new) if _where(c.old) == _where(c.new) else f"{_where(c.old)} -> {_where(c.new)}"
            rows.append((kind, c.new.name, f"{c.old.version} -> {c.new.version}", where))
    for p in d.added:
        rows.append(("added", p.name, p.version, _where(p)))
    for p in d.removed:
        rows.append(("removed", p.name, p.version, _where(p)))
    for c in d.relocated:
        rows.append(("relocated", c.new.name, c.new.version, f"{c.old.location} -> {c.new.location}"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for kind, name, change, note in rows:
        lines.append(f"  {kind:<{w0}}  {name:<{w1}}  {change:<{w2}}  ({note})")
    return "\n".join(lines)


@dataclass(frozen=True)
class LockDiff:
    """Everything that differs between two locks: packages per platform, other pins, config and
    the expected digests."""

    debian: dict[str, DebianDiff]
    inputs: list[str]  # one line per changed context file, download or path
    config: list[str]  # one line per changed runtime setting or image-wide field
    expected: list[str]  # one line per platform whose expected digests changed

    @property
    def empty(self) -> bool:
        return all(d.empty for d in self.debian.values()) and not (
            self.inputs or self.config or self.expected)

    def as_json(self) -> dict[str, object]:
        return {"debian": {k: v.as_json() for k, v in self.debian.items()},
                "inputs": self.inputs, "config": self.config, "expected": self.expected,
                "empty": self.empty}


def _keyed(items: Sequence[object], key: str) -> dict[str, dict[str, object]]:
    out = {}
    for it in items:
        d = it.model_dump(mode="json", exclude_none=True)  # type: ignore[attr-defined]
        out[str(d[key])] = d
    return out


def _dict_changes(kind: str, old: dict[str, dict[str, object]], new: dict[str, dict[str, object]]) -> list[str]:
    lines = []
    for k in sorted(old.keys() - new.keys()):
        lines.append(f"- {kind} {k}")
    for k in sorted(new.keys() - old.keys()):
        lines.append(f"+ {kind} {k}")
    for k in sorted(old.keys() & new.keys()):
        if old[k] != new[k]:
            fields = sorted(f for f in old[k].keys() | new[k].keys() if old[k].get(f) != new[k].get(f))
            detail = ", ".join(f"{f}: {old[k].get(f)} -> {new[k].get(f)}" for f in fields)
            lines.append(f"~ {kind} {k} ({detail})")
    return lines


def diff_locks(old: Lock, new: Lock) -> LockDiff:
    debian = {}
    for platform in sorted(old.debian.keys() | new.debian.keys()):
        o = old.debian.get(platform)
        n = new.debian.get(platform)
        debian[platform] = diff_debian(o.packages if o else [], n.packages if n else [])
    indexes: list[str] = []
    for platform in sorted(old.debian.keys() | new.debian.keys()):
        o = old.debian.get(platform)
        n = new.debian.get(platform)

        def keyed(pins: list[DebianIndexPin], platform: str = platform) -> dict[str, dict[str, object]]:
            return {f"{p.source}/{p.suite}/{p.packages_path} ({platform})": p.model_dump(mode="json")
                    for p in pins}

        indexes += _dict_changes("index", keyed(o.indexes if o else []), keyed(n.indexes if n else []))
    for platform in sorted(old.python.keys() | new.python.keys()):
        indexes += _dict_changes(f"wheel ({platform})",
                                 _keyed(old.python.get(platform, []), "name"),
                                 _keyed(new.python.get(platform, []), "name"))
    inputs = indexes + (
        _dict_changes("file", _keyed(old.files, "dest"), _keyed(new.files, "dest"))
        + _dict_changes("download", _keyed(old.downloads, "dest"), _keyed(new.downloads, "dest"))
        + _dict_changes("path", _keyed(old.paths, "path"), _keyed(new.paths, "path"))
    )
    config = []
    oc, nc = old.config.model_dump(mode="json"), new.config.model_dump(mode="json")
    for f in sorted(oc.keys() | nc.keys()):
        if oc.get(f) != nc.get(f):
            config.append(f"~ config.{f}: {oc.get(f)} -> {nc.get(f)}")
    if old.spec_digest != new.spec_digest:
        changed = sorted(k for k in old.spec_sections.keys() | new.spec_sections.keys()
                         if old.spec_sections.get(k) != new.spec_sections.get(k))
        config.append(f"~ spec changed: {', '.join(changed)}")
    for f in ("source_date_epoch", "image", "platforms", "layers", "compression", "accounts",
              "steps", "python_install", "debian_layout"):
        a, b = getattr(old, f), getattr(new, f)
        if a != b:
            config.append(f"~ {f}: {_short(a)} -> {_short(b)}")
    expected = []
    for platform in sorted(old.expected.keys() | new.expected.keys()):
        a, b = old.expected.get(platform), new.expected.get(platform)
        if a is None or b is None or a != b:
            expected.append(
                f"~ {platform}: config {a.config_digest if a else '-'} -> {b.config_digest if b else '-'}; "
                f"manifest {a.manifest_digest if a else '-'} -> {b.manifest_digest if b else '-'}")
    return LockDiff(debian, inputs, config, expected)


def _short(v: object) -> str:
    if hasattr(v, "model_dump"):
        return str(v.model_dump(mode="json"))
    return str(v)


def render_lock_diff(d: LockDiff) -> str:
    if d.empty:
        return "no differences"
    parts = []
    for platform, dd in d.debian.items():
        if not dd.empty:
            parts.append(f"Debian packages ({platform}):\n" + render_debian_diff(dd))
    if d.inputs:
        parts.append("Inputs:\n" + "\n".join("  " + x for x in d.inputs))
    if d.config:
        parts.append("Image:\n" + "\n".join("  " + x for x in d.config))
    if d.expected:
        parts.append("Expected digests:\n" + "\n".join("  " + x for x in d.expected))
    return "\n\n".join(parts)
