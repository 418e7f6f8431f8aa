"""`imagelock status`: the fleet's view of each image, readable by anyone with the rebuilders'
public keys. Per image, each trusted rebuilder's newest verdict counts: PASSED vouches, FAILED
disputes (that rebuilder's rebuild of the vendor's recipe did not give this image). A consumer
reads it before `verify`; an operator reads it as the fleet's dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from imagelock.formats.results import ImageStatus, RebuilderVerdict, StatusResult
from imagelock.oci.referrer_sources import RegistryReferrers
from imagelock.rebuild.reference import Found
from imagelock.trust.keys import PublicKey
from imagelock.fleet.evidence import VerdictFound, read_evidence
from imagelock.fleet.sources import expand

_EPOCH = datetime.min.replace(tzinfo=UTC)


def status(
    sources: Sequence[str],
    *,
    rebuilders: Sequence[tuple[str, PublicKey]],
    vendor_keys: Sequence[PublicKey] = (),
    platform: str | None = None,
    insecure: bool = False,
    notes: Sequence[str] = (),
) -> StatusResult:
    """Which of `rebuilders` (name, key) vouched for or disputed each image of `sources`."""
    said = list(notes)
    images = expand(sources, platform=platform, insecure=insecure, notes=said)
    keys = [k for _, k in rebuilders]
    names: dict[str, str] = {}
    for name, key in rebuilders:
        names.setdefault(key.keyid, name)
    vendors = {k.keyid for k in vendor_keys} if vendor_keys else None
    out: list[ImageStatus] = []
    for image in images:
        ref = str(image.ref)
        found = Found(ref, image.subject, RegistryReferrers(image.ref, insecure=insecure), True)
        try:
            ev = read_evidence(found, [*keys, *vendor_keys])
        finally:
            found.close()
        newest: dict[str, tuple[VerdictFound, str]] = {}
        untrusted = 0
        for v in ev.verdicts:
            who = [names[k] for k in v.signers if k in names]
            if not who:
                untrusted += 1
            for name in who:
                best = newest.get(name)
                if best is None or (v.time_verified or _EPOCH) >= (best[0].time_verified or _EPOCH):
                    newest[name] = (v, v.source.removeprefix("referrer "))
        verdicts = [RebuilderVerdict(
            rebuilder=name, result=v.result, lock_sha256=v.lock_sha256,
            time_verified=v.time_verified.isoformat().replace("+00:00", "Z")
            if v.time_verified else None, source=src)
            for name, (v, src) in sorted(newest.items())]
        passed = [v.rebuilder for v in verdicts if v.result == "PASSED"]
        failed = [v.rebuilder for v in verdicts if v.result == "FAILED"]
        state: Literal["vouched", "disputed", "unvouched"] = (
            "disputed" if failed else "vouched" if passed else "unvouched")
        out.append(ImageStatus(reference=ref, subject=image.subject, platform=image.platform,
                               tags=image.tags, provenance=bool(ev.provenance_by(vendors)),
                               state=state, vouched_by=passed, disputed_by=failed,
                               verdicts=verdicts, untrusted=untrusted))
    return StatusResult(images=out, rebuilders=sorted(set(names.values())),
                        vouched=sum(i.state == "vouched" for i in out),
                        disputed=sum(i.state == "disputed" for i in out),
                        unvouched=sum(i.state == "unvouched" for i in out), notes=said)
