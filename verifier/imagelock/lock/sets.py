"""Image sets in the lock stage: each image of a set as an ordinary image spec, and its digest.

An image of a set is locked as the spec `image_spec` derives for it (spec/README.md §3.1):
- its own inputs, every layer name prefixed with the image's name (`keystone-files`), so no
  two images of a set name a layer alike and a child's layers sit above its parent's;
- the Debian packages of its parents with its own, when it has Debian contents or accounts of
  its own: one resolution, one dpkg database covering every package of the image;
- its parents' accounts before its own, and their config under its own.
Its digest covers its parents' too, so a changed parent makes every child's lock stale.
"""

from __future__ import annotations

from imagelock.core.digest import canonical_json, sha256_digest
from imagelock.formats.sets import SetSpec, chain, image_spec, order

__all__ = ["chain", "image_digests", "image_lock_name", "image_spec", "order", "set_digest"]

SET_LOCK_PREFIX = "imagelock."
SET_LOCK_SUFFIX = ".lock"


def image_lock_name(name: str) -> str:
    """The file name of one image's lock, beside the set's index: `imagelock.NAME.lock`."""
    return f"{SET_LOCK_PREFIX}{name}{SET_LOCK_SUFFIX}"


def image_digests(spec: SetSpec, name: str) -> tuple[str, dict[str, str]]:
    """The digest of one image of the set, and of each of its sections: its derived spec's,
    with its parent's digest as the section `parent` (a changed parent: a stale child)."""
    data = image_spec(spec, name).model_dump(mode="json", exclude_defaults=True)
    sections = {k: sha256_digest(canonical_json(v)) for k, v in data.items()}
    parent = spec.images[name].parent
    if parent is not None and parent not in spec.images:  # a base pinned by digest
        sections["parent"] = sha256_digest(canonical_json(parent))
        data = {"image": data, "base": parent}
    elif parent is not None:
        sections["parent"] = image_digests(spec, parent)[0]
        data = {"image": data, "parent": sections["parent"]}
    return sha256_digest(canonical_json(data)), dict(sorted(sections.items()))


def set_digest(spec: SetSpec) -> str:
    """The digest of the normalised set spec (defaults left out, as for an image spec)."""
    return sha256_digest(canonical_json(spec.model_dump(mode="json", exclude_defaults=True)))
