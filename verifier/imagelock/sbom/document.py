"""`imagelock sbom`: the SBOM of an image, in the format asked for, from its lock and pins."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from imagelock.fetch.store import Store
from imagelock.formats.inventory import SbomResult
from imagelock.inputs.fetching import fetch_lock
from imagelock.sbom.bom import make_bom
from imagelock.sbom.cyclonedx import cyclonedx_json
from imagelock.sbom.spdx import spdx_json
from imagelock.sbom.targets import Target

SbomFormat = Literal["spdx", "cyclonedx"]

#: in-toto predicate types of the two documents (the formats' own URIs).
PREDICATE_TYPES: dict[str, str] = {"spdx": "https://spdx.dev/Document",
                                   "cyclonedx": "https://cyclonedx.org/bom"}
#: media types of the documents, the artifactType of an SBOM referrer.
MEDIA_TYPES: dict[str, str] = {"spdx": "application/spdx+json",
                               "cyclonedx": "application/vnd.cyclonedx+json"}


@dataclass(frozen=True)
class Sbom:
    """An SBOM document's bytes and what they describe."""

    data: bytes
    format: SbomFormat
    platform: str
    components: int
    subject: str  # the image's manifest digest (the lock's expected one; the first platform's for "all")

    def result(self, output: str) -> SbomResult:
        return SbomResult(output=output, format=self.format, components=self.components,
                          sha256=hashlib.sha256(self.data).hexdigest(), platform=self.platform)


def make_sbom(target: Target, fmt: SbomFormat, store: Store, *, platform: str | None = None,
              cli_mirrors: Mapping[str, list[str]] | None = None, offline: bool = False) -> Sbom:
    """The SBOM of the image `target`'s lock describes: the pinned .debs and wheels are fetched
    into the store first (hash checked; with `offline`, they must be there already)."""
    fetch_lock(target.lock, target.lock_path, store, cli_mirrors=cli_mirrors or {},
               offline=offline)
    if platform == "all":
        # The image as a whole: every platform's image in one document, each component once.
        boms = [make_bom(target.lock, store, p) for p in target.lock.platforms]
        data = spdx_json(boms) if fmt == "spdx" else cyclonedx_json(boms)
        unique = {e.item.ref for b in boms for e in b.entries}
        return Sbom(data, fmt, "all", len(unique), boms[0].manifest_digest)
    bom = make_bom(target.lock, store, platform)
    data = spdx_json(bom) if fmt == "spdx" else cyclonedx_json(bom)
    return Sbom(data, fmt, bom.platform, len(bom.entries), bom.manifest_digest)
