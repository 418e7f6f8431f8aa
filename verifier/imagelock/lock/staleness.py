"""The staleness check every later stage runs first: a lock whose spec changed (by meaning, not formatting) or whose context gained or lost files is refused with what changed, never silently re-resolved."""

from __future__ import annotations

from pathlib import Path

from imagelock.core.confine import inside
from imagelock.core.digest import canonical_json, sha256_digest
from imagelock.core.errors import InputError, StaleLockError
from imagelock.formats.files import load_spec
from imagelock.formats.lock import (
    Lock,
)
from imagelock.formats.spec import Spec
from imagelock.lock.context import context_dir, pin_context
from imagelock.lock.python import requirements_file_sha256


def spec_digests(spec: Spec) -> tuple[str, dict[str, str]]:
    """Digest of the normalised spec (values that differ from their defaults) and of each section.

    Leaving defaults out means a spec that spells out a default, and a lock made before a new
    optional field existed, are not stale.
    """
    data = spec.model_dump(mode="json", exclude_defaults=True)
    sections = {k: sha256_digest(canonical_json(v)) for k, v in data.items()}
    return sha256_digest(canonical_json(data)), dict(sorted(sections.items()))


def lock_spec_path(lock: Lock, lock_path: Path) -> Path:
    """Where the lock's spec is: inside the lock's directory, or refused."""
    return inside(lock_path.parent, lock.spec, what="spec", path=lock_path, field="spec")


def lock_context_path(lock: Lock, lock_path: Path) -> Path:
    """Where the lock's context is: inside the lock's directory, or refused."""
    return inside(lock_path.parent, lock.context, what="context", path=lock_path, field="context")


def check_fresh(lock: Lock, lock_path: Path, *, require_spec: bool = False) -> Path | None:
    """Refuse a stale lock; return the spec path when the spec was found and checked.

    The spec and its context must be inside the lock's directory, symlinks resolved: the lock
    may come from someone else, and its directory must not reach into the host.
    """
    spec_path = lock_spec_path(lock, lock_path)
    if not spec_path.is_file():
        if require_spec:
            raise InputError(f"the lock's spec {spec_path} is missing", path=lock_path, field="spec")
        return None
    spec = load_spec(spec_path)
    digest, sections = spec_digests(spec)
    if digest != lock.spec_digest:
        changed = [k for k in sorted(set(sections) | set(lock.spec_sections))
                   if sections.get(k) != lock.spec_sections.get(k)]
        raise StaleLockError(
            f"the lock is stale: the spec changed since it was made (changed: "
            f"{', '.join(changed) or 'format'})",
            path=lock_path,
            hint=f"run `imagelock lock {spec_path}` to update the lock, then review its diff",
        )
    if lock.python_install is not None and spec.contents.python is not None:
        now_req = requirements_file_sha256(spec.contents.python,
                                           context_dir(spec, spec_path, root=lock_path.parent))
        if now_req != lock.python_install.requirements_file_sha256:
            raise StaleLockError(
                f"the lock is stale: the requirements file "
                f"{spec.contents.python.requirements_file} changed since it was made",
                path=lock_path, hint=f"run `imagelock lock {spec_path}` to update the lock",
            )
    now = {(p.type, p.src, p.dest)
           for p in pin_context(spec, spec_path, hash_files=False, root=lock_path.parent)}
    then = {(p.type, p.src, p.dest) for p in lock.files}
    if now != then:
        added = sorted(s for _, s, _ in now - then)
        removed = sorted(s for _, s, _ in then - now)
        parts = []
        if added:
            parts.append("new in the context: " + ", ".join(added[:5]))
        if removed:
            parts.append("gone from the context: " + ", ".join(removed[:5]))
        raise StaleLockError(
            "the lock is stale: " + "; ".join(parts), path=lock_path,
            hint=f"run `imagelock lock {spec_path}` to update the lock",
        )
    return spec_path
