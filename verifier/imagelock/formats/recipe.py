"""The two artifacts an image carries beside it in a registry (spec/README.md §20): the recipe
(spec, lock and pinned context files) and the input bundle (every pinned blob, plus the signed
Debian indexes the lock names).

Both are OCI 1.1 artifact manifests whose `subject` is the image's manifest. These names are the
format: another implementation that writes the same media types and titles interoperates.
"""

from __future__ import annotations

RECIPE_ARTIFACT_TYPE = "application/vnd.imagelock.recipe.v1"
"""artifactType of the recipe: the spec, the lock and every context file the lock pins."""
INPUTS_ARTIFACT_TYPE = "application/vnd.imagelock.inputs.v1"
"""artifactType of the input bundle: every pinned blob, each under the pin's own sha256."""

MT_SPEC = "application/vnd.imagelock.spec.v1+yaml"
MT_LOCK = "application/vnd.imagelock.lock.v1+json"
MT_CONTEXT_FILE = "application/vnd.imagelock.context-file.v1"

MT_DEB = "application/vnd.debian.binary-package"
MT_WHEEL = "application/vnd.imagelock.wheel.v1"
MT_DOWNLOAD = "application/vnd.imagelock.download.v1"
MT_INRELEASE = "application/vnd.imagelock.debian.inrelease.v1"
MT_PACKAGES = "application/vnd.imagelock.debian.packages.v1"

INPUT_MEDIA_TYPES = frozenset({MT_DEB, MT_WHEEL, MT_DOWNLOAD, MT_INRELEASE, MT_PACKAGES})

TITLE = "org.opencontainers.image.title"
"""Per blob: in a recipe, the file's path relative to the lock's directory; in a bundle, the
pin's lock location (`SOURCE:pool/...`, `SOURCE:project/file.whl`, a download's location) or, for
an index file, `SOURCE:dists/SUITE/...`."""
LOCK_SHA256 = "dev.imagelock.lock.sha256"
"""Per artifact: the sha256 (hex) of the lock it belongs to. A hint to pick among several
artifacts; what counts is the lock blob's own digest, checked against the vendor's provenance."""

REFERRERS_DIR_SUFFIX = ".referrers"
"""`imagelock pull --with-inputs -o DIR` keeps the image's referrers in `DIR.referrers/`: an OCI
layout whose index.json lists the artifact manifests as the referrers API would."""
