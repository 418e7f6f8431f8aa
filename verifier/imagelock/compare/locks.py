"""What changed between two locks, made for review: `imagelock diff A B`.

Each input kind says what changed in its pins (`InputKind.diff`): one line per added, removed or
changed pin, and, for Debian packages, a review per platform (upgrades, downgrades, the same
version with different bytes). Besides the pins: the image's settings and the expected digests.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagelock.core.errors import InputError
from imagelock.formats.lock import Lock
from imagelock.inputs.kind import PinDiff
from imagelock.inputs.registry import KINDS


@dataclass(frozen=True)
class LockDiff:
    """Everything that differs between two locks: each input kind's review (Debian packages per
    platform), the changed pins, the image's settings and the expected digests."""

    reviews: dict[str, PinDiff]  # by kind name, the kinds that have a review of their own
    inputs: list[str]  # one line per changed pin (index, wheel, context file, download, path, ...)
    config: list[str]  # one line per changed runtime setting or image-wide field
    expected: list[str]  # one line per platform whose expected digests changed

    @property
    def empty(self) -> bool:
        return all(r.empty for d in self.reviews.values() for r in (d.reviews or {}).values()) and not (
            self.inputs or self.config or self.expected)

    def as_json(self) -> dict[str, object]:
        reviews: dict[str, object] = {
            name: {k: r.as_json() for k, r in (d.reviews or {}).items()}
            for name, d in self.reviews.items()}
        return {**reviews, "inputs": self.inputs, "config": self.config,
                "expected": self.expected, "empty": self.empty}


def one_platform(lock: Lock, platform: str, *, which: str) -> Lock:
    """The lock as it is for one of its platforms: that platform's pins and expected image,
    downloads limited to other platforms left out, so a diff reviews one platform's image."""
    if platform not in lock.platforms:
        raise InputError(f"the {which} lock has no platform {platform}", field="--platform",
                         hint="its platforms: " + ", ".join(lock.platforms))
    return lock.model_copy(update={
        "platforms": [platform],
        "debian": {k: v for k, v in lock.debian.items() if k == platform},
        "python": {k: v for k, v in lock.python.items() if k == platform},
        "expected": {k: v for k, v in lock.expected.items() if k == platform},
        "downloads": [d for d in lock.downloads if d.platforms is None or platform in d.platforms],
    })


def diff_locks(old: Lock, new: Lock, *, platform: str | None = None) -> LockDiff:
    """What changed between two locks; with `platform`, only what that platform's image gets."""
    if platform is not None:
        old, new = one_platform(old, platform, which="old"), one_platform(new, platform, which="new")
    reviews: dict[str, PinDiff] = {}
    inputs: list[str] = []
    for kind in KINDS:
        d = kind.diff(old, new)
        inputs += d.lines
        if d.reviews is not None:
            reviews[kind.name] = d
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
    return LockDiff(reviews, inputs, config, expected)


def _short(v: object) -> str:
    if hasattr(v, "model_dump"):
        return str(v.model_dump(mode="json"))
    return str(v)


def render_lock_diff(d: LockDiff) -> str:
    if d.empty:
        return "no differences"
    parts = []
    for review in d.reviews.values():
        for key, r in (review.reviews or {}).items():
            if not r.empty:
                parts.append(f"{review.title} ({key}):\n" + r.render())
    if d.inputs:
        parts.append("Inputs:\n" + "\n".join("  " + x for x in d.inputs))
    if d.config:
        parts.append("Image:\n" + "\n".join("  " + x for x in d.config))
    if d.expected:
        parts.append("Expected digests:\n" + "\n".join("  " + x for x in d.expected))
    return "\n\n".join(parts)
