"""The staleness check every later stage runs first: a lock whose spec changed (by meaning, not
formatting) or whose context gained or lost files is refused with what changed, never silently
re-resolved. `lock --check` asks the same questions, and also about each context file's bytes."""

from __future__ import annotations

import os
from pathlib import Path

from imagelock.core.confine import inside
from imagelock.core.digest import canonical_json, sha256_digest
from imagelock.core.errors import InputError, StaleLockError
from imagelock.formats.files import is_set_spec, load_set_spec, load_spec, read_lock, read_set_lock
from imagelock.formats.lock import (
    Lock,
)
from imagelock.formats.spec import Spec
from imagelock.lock.context import context_dir, pin_context
from imagelock.lock.python import requirements_file_sha256
from imagelock.lock.python_files import pip_files_sha256
from imagelock.lock.sets import image_digests, image_lock_name, image_spec, set_digest


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
    reasons = _stale(lock, lock_path, spec_path, *_spec_of(lock, spec_path), hash_files=False)
    if reasons:
        raise reasons[0]
    return spec_path


def _spec_of(lock: Lock, spec_path: Path) -> tuple[Spec, tuple[str, dict[str, str]]]:
    """The spec the lock was made from and its digests: for an image of a set, the image's spec
    derived from the set, and digests that cover its parents'."""
    if lock.set_image is None:
        spec = load_spec(spec_path)
        return spec, spec_digests(spec)
    if not is_set_spec(spec_path):
        raise StaleLockError(f"the lock is stale: it is the image {lock.set_image} of a set, and "
                             f"{spec_path.name} no longer defines a set", path=spec_path,
                             hint=f"run `imagelock lock {spec_path}` to update the lock")
    whole = load_set_spec(spec_path)
    if lock.set_image not in whole.images:
        raise StaleLockError(f"the lock is stale: the set no longer has the image "
                             f"{lock.set_image}", path=spec_path,
                             hint=f"run `imagelock lock {spec_path}` to update the set's locks")
    return image_spec(whole, lock.set_image), image_digests(whole, lock.set_image)


def _stale(lock: Lock, lock_path: Path, spec_path: Path, spec: Spec,
           digests: tuple[str, dict[str, str]], *, hash_files: bool) -> list[InputError]:
    """Every way the spec and context no longer match the lock, the spec's digest first.

    `hash_files` also compares each context file's bytes and attributes with its pin (a build
    does that as it reads them, so `check_fresh` leaves it out)."""
    out: list[InputError] = []
    digest, sections = digests
    if digest != lock.spec_digest:
        changed = [k for k in sorted(set(sections) | set(lock.spec_sections))
                   if sections.get(k) != lock.spec_sections.get(k)]
        out.append(StaleLockError(
            f"the lock is stale: the spec changed since it was made (changed: "
            f"{', '.join(changed) or 'format'})",
            path=lock_path,
            hint=f"run `imagelock lock {spec_path}` to update the lock, then review its diff",
        ))
    if lock.python_install is not None and spec.contents.python is not None:
        now_req = requirements_file_sha256(spec.contents.python,
                                           context_dir(spec, spec_path, root=lock_path.parent))
        if now_req != lock.python_install.requirements_file_sha256:
            out.append(StaleLockError(
                f"the lock is stale: the requirements file "
                f"{spec.contents.python.requirements_file} changed since it was made",
                path=lock_path, hint=f"run `imagelock lock {spec_path}` to update the lock",
            ))
        out += _pip_files_stale(lock, lock_path, spec_path, spec)
    try:
        pins = pin_context(spec, spec_path, hash_files=hash_files, root=lock_path.parent)
    except InputError as e:  # a file the spec names is missing or unsafe: said after the digest
        return [*out, e]
    now = {(p.type, p.src, p.dest) for p in pins}
    then = {(p.type, p.src, p.dest) for p in lock.files}
    if now != then:
        added = sorted(s for _, s, _ in now - then)
        removed = sorted(s for _, s, _ in then - now)
        parts = []
        if added:
            parts.append("new in the context: " + ", ".join(added[:5]))
        if removed:
            parts.append("gone from the context: " + ", ".join(removed[:5]))
        out.append(StaleLockError(
            "the lock is stale: " + "; ".join(parts), path=lock_path,
            hint=f"run `imagelock lock {spec_path}` to update the lock",
        ))
    if hash_files:
        locked = {(p.type, p.src, p.dest): p for p in lock.files}
        changed = [p.src for p in pins if (p.type, p.src, p.dest) in locked
                   and p != locked[(p.type, p.src, p.dest)]]
        if changed:
            out.append(StaleLockError(
                "the lock is stale: context files changed since it was made: "
                + ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else ""),
                path=lock_path, hint=f"run `imagelock lock {spec_path}` to pin the new content",
            ))
    return out


def _pip_files_stale(lock: Lock, lock_path: Path, spec_path: Path, spec: Spec) -> list[InputError]:
    """The constraints file, and files a requirements file includes, edited since the lock."""
    assert lock.python_install is not None and spec.contents.python is not None
    try:
        now = pip_files_sha256(spec.contents.python,
                               context_dir(spec, spec_path, root=lock_path.parent)) or {}
    except InputError as e:
        return [e]
    then = lock.python_install.files_sha256 or {}
    changed = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
    if not changed:
        return []
    return [StaleLockError(
        "the lock is stale: files pip reads changed since it was made: " + ", ".join(changed[:5]),
        path=lock_path, hint=f"run `imagelock lock {spec_path}` to update the lock")]


def lock_differences(lock_path: Path, spec_path: Path) -> list[str]:
    """What in the spec and its context no longer matches the lock, for `imagelock lock --check`:
    the spec's digest and sections, the requirements file, and every context file (its bytes,
    mode, owner and layer). Empty when the lock is up to date.

    Nothing is resolved: no index is fetched and no pin is compared with what the archives or
    package indexes serve today, so a lock does not turn "out of date" each time the Debian
    archive republishes its indexes. What moved in the archives is another question (`imagelock
    lock --upgrade`, and the rot monitor)."""
    if not lock_path.is_file():
        return [f"there is no lock at {lock_path}"]
    lock = read_lock(lock_path)
    named = lock_path.parent / lock.spec
    if not named.is_file():
        raise InputError(f"the lock's spec {named} is missing", path=lock_path, field="spec",
                         hint="run `imagelock lock` beside the spec to make a lock for it")
    if os.path.realpath(named) != os.path.realpath(spec_path):
        return [f"the lock was made from the spec {named}, not {spec_path}"]
    try:
        spec, digests = _spec_of(lock, named)
    except StaleLockError as e:
        return [e.message]
    return [e.message for e in _stale(lock, lock_path, named, spec, digests, hash_files=True)]


def set_differences(index_path: Path, spec_path: Path) -> list[str]:
    """`lock_differences` for a set: its index, and each image's lock, each line naming the
    image (nothing resolved, as for one image)."""
    if not index_path.is_file():
        return [f"there is no lock at {index_path}"]
    whole = load_set_spec(spec_path)
    index = read_set_lock(index_path)
    out = []
    if index.spec_digest != set_digest(whole):
        out.append("the set's spec changed since its locks were made")
    for name in sorted(set(index.images) - set(whole.images)):
        out.append(f"{name}: no longer an image of the set")
    for name in whole.images:
        lock_path = index_path.parent / image_lock_name(name)
        out += [f"{name}: {d}" for d in lock_differences(lock_path, spec_path)]
    return out
