"""What of the building machine can still change an image's bytes, against what the lock records.

Everything an interpreter or tool makes lives in the image and runs in the sandbox (the image's
own ldconfig and Python), so a build's bytes follow from the lock and the pinned inputs. Two
things of the host remain, and the lock records both:

- **the gzip encoder** (`compression`: algorithm, level, `python-isal X`): another encoder or
  version writes other compressed blobs for the same layers. The content identity (config
  digest, diff_ids) is still reproduced: expect `reproduced-content`, never a mismatch;
- **imagelock itself** (`tool.version`): a newer imagelock that fixed a bug in how it writes an
  image may write other bytes. spec/README.md pins the bytes, so this is only a suspect when a
  rebuild does not reproduce.

`build` and `rebuild` check these before they build and name each difference in their result,
so a rebuilder reads "this machine's gzip encoder is python-isal 1.9.1, the lock's is python-isal
1.8.0" instead of an unexplained difference in the distribution identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagelock import __version__
from imagelock.formats.lock import Lock
from imagelock.tar.compress import current as current_compression


@dataclass(frozen=True)
class ToolDifference:
    """One thing of this machine that differs from what the lock was made with."""

    what: str  # "gzip encoder" | "imagelock"
    here: str
    lock: str

    @property
    def expect(self) -> str:
        """The verdict a faithful rebuild can at best reach with this difference."""
        return "reproduced-content" if self.what == "gzip encoder" else "reproduced"

    def note(self) -> str:
        if self.what == "gzip encoder":
            return (f"this machine's gzip encoder is {self.here}, the lock's is {self.lock}: "
                    "expect reproduced-content (the same content, other compressed blobs, so "
                    "another manifest digest), not reproduced")
        return (f"this machine runs imagelock {self.here}, the lock was made by imagelock "
                f"{self.lock}: a difference may come from a change between those versions")

    def as_json(self) -> dict[str, str]:
        return {"what": self.what, "here": self.here, "lock": self.lock, "expect": self.expect}


def differences(lock: Lock) -> list[ToolDifference]:
    """What of this machine differs from the lock's record: the encoder first, then imagelock."""
    out = []
    comp = current_compression()
    here = (comp.algorithm, comp.level, comp.implementation)
    rec = lock.compression
    then = (rec.algorithm, rec.level, rec.implementation)
    if here != then:
        if here[:2] == then[:2]:  # the usual case: the same call, another version
            out.append(ToolDifference("gzip encoder", comp.implementation, rec.implementation))
        else:
            out.append(ToolDifference("gzip encoder", "{2} ({0} level {1})".format(*here),
                                      "{2} ({0} level {1})".format(*then)))
    if lock.tool.version != __version__:
        out.append(ToolDifference("imagelock", __version__, lock.tool.version))
    return out


def notes_for(diffs: list[ToolDifference], verdict: str | None) -> list[str]:
    """The notes a result shows: an encoder difference always (it explains a manifest digest that
    differs); another imagelock version only when the result is not `reproduced` (when it is, the
    version did not matter). `verdict` None: before the build, the encoder only."""
    return [d.note() for d in diffs
            if d.what == "gzip encoder" or (verdict is not None and verdict != "reproduced")]
