"""`imagelock watch`: the work a rebuilder has not done yet. Every image of the sources that
carries vendor provenance and no VSA signed by the rebuilder's key is one work item; a VSA of
either verdict counts as done (a FAILED one is a verdict too, and rebuilding it again would give
the same). Reads the registry and the referrers; writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from imagelock.formats.results import WatchResult, WorkItem
from imagelock.oci.referrer_sources import RegistryReferrers
from imagelock.rebuild.reference import Found
from imagelock.trust.keys import PublicKey
from imagelock.fleet.evidence import read_evidence
from imagelock.fleet.sources import expand


def watch(
    sources: Sequence[str],
    *,
    rebuilder_keys: Sequence[PublicKey],
    vendor_keys: Sequence[PublicKey] = (),
    since: datetime | None = None,
    limit: int | None = None,
    platform: str | None = None,
    insecure: bool = False,
) -> WatchResult:
    """The work items of `sources` for the rebuilder holding `rebuilder_keys`: with
    `vendor_keys`, only provenance they signed counts; `since` keeps images whose newest
    provenance says the build finished at or after it; `limit` keeps the first N items."""
    notes: list[str] = []
    images = expand(sources, platform=platform, insecure=insecure, notes=notes)
    mine = {k.keyid for k in rebuilder_keys}
    vendors = {k.keyid for k in vendor_keys} if vendor_keys else None
    items: list[WorkItem] = []
    vouched = without = older = limited = 0
    for image in images:
        ref = str(image.ref)
        found = Found(ref, image.subject, RegistryReferrers(image.ref, insecure=insecure), True)
        try:
            ev = read_evidence(found, [*rebuilder_keys, *vendor_keys])
        finally:
            found.close()
        provenance = ev.provenance_by(vendors)
        if not provenance:
            without += 1
            continue
        if ev.verdicts_by(mine):
            vouched += 1
            continue
        times = [p.finished_on for p in provenance if p.finished_on is not None]
        built = max(times) if times else None
        if since is not None and (built is None or built < since):
            older += 1
            continue
        if limit is not None and len(items) >= limit:
            limited += 1
            continue
        signed = "signed by a vendor key" if vendors is not None else "read unsigned"
        items.append(WorkItem(
            reference=ref, subject=image.subject, platform=image.platform, tags=image.tags,
            reason=f"vendor provenance ({signed}) and no VSA from this rebuilder",
            lock_sha256=sorted({p.lock_sha256 for p in provenance}),
            built=built.isoformat().replace("+00:00", "Z") if built is not None else None))
    return WatchResult(items=items, images=len(images), vouched=vouched,
                       without_provenance=without, older=older, limited=limited, notes=notes)
