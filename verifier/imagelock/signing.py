"""Signing what `build` and `rebuild` produced: provenance for a build, a VSA for a rebuild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .attest import append_line, attestations_path, lock_digest, lock_pins, utc_now
from .trust import build_provenance, envelope_json, sign_envelope, statement_bytes

if TYPE_CHECKING:
    from .building import BuildResult
    from .trust import PrivateKey


def sign_build(res: BuildResult, lock_path: Path, key: PrivateKey) -> Path:
    """SLSA provenance for every platform built, signed, appended beside the output."""
    out = attestations_path(res.output)
    digest = lock_digest(lock_path)
    now = utc_now()
    for platform, d in res.platforms.items():
        st = build_provenance(
            subject_name=res.lock.image.name,
            manifest_digest=d["manifest_digest"],
            lock_digest=digest,
            lock_uri=lock_path.name,
            pins=lock_pins(res.lock),
            finished_on=now,
            platform=platform,
            builder_version={"imagelock": __version__},
        )
        env = sign_envelope(statement_bytes(st), [key])
        append_line(out, envelope_json(env))
    return out


