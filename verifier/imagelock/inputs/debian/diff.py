"""Reviewing the change in a lock's Debian package pins, for `imagelock diff A B`.

Debian package pins are matched by (name, architecture). A version change is an upgrade or a
downgrade by Debian version order; the same version with different bytes is called out on its
own, because an archive should never do that (a rebuilt or a substituted package); the same bytes
found at another location are listed as relocated, which is harmless but visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from debian.debian_support import Version

from imagelock.formats.debian import DebianPackagePin

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

    def render(self) -> str:
        return render_debian_diff(self)


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
