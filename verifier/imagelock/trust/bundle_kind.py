"""Telling a sigstore bundle from other JSON without loading sigstore (a few hundred ms of
imports that `verify` pays only when a bundle or a keyless signer is really involved)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagelock.formats.attestation import SIGSTORE_BUNDLE_MEDIA_TYPE_PREFIX


def is_sigstore_bundle(doc: Mapping[str, Any]) -> bool:
    """Whether a parsed JSON document claims to be a sigstore bundle (by its mediaType)."""
    media_type = doc.get("mediaType")
    return isinstance(media_type, str) and media_type.startswith(SIGSTORE_BUNDLE_MEDIA_TYPE_PREFIX)
