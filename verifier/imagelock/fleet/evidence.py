"""What an image's referrers say about it: the vendor's provenance and rebuilders' verdicts
(VSAs), each with the keys whose signature on it verifies.

Only DSSE envelopes count (what `imagelock build --sign` and `rebuild --sign` attach); sigstore
bundles are left to `verify`. Nothing read here is trusted until a caller matches its signers
against the keys it trusts: an envelope that does not parse, or names another image, is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from imagelock.core.errors import ImagelockError
from imagelock.formats.attestation import PROVENANCE_PREDICATE_TYPE, VSA_PREDICATE_TYPE
from imagelock.rebuild.reference import Found, attestations
from imagelock.trust.dsse import parse_envelope, payload_of, verified_keyids
from imagelock.trust.keys import PublicKey
from imagelock.trust.provenance import lock_digest_of, parse_provenance
from imagelock.trust.statement import names_subject, parse_statement
from imagelock.trust.vsa import lock_digest_of_vsa, parse_vsa


@dataclass(frozen=True)
class ProvenanceFound:
    """Vendor provenance about the image: the lock it names and when the build finished."""

    source: str
    lock_sha256: str
    signers: tuple[str, ...]  # keyids, among those asked about, whose signature verified
    finished_on: datetime | None


@dataclass(frozen=True)
class VerdictFound:
    """A rebuilder's VSA about the image."""

    source: str
    result: Literal["PASSED", "FAILED"]
    lock_sha256: str | None
    time_verified: datetime | None
    signers: tuple[str, ...]


@dataclass
class Evidence:
    """Everything attached to one image that imagelock reads."""

    provenance: list[ProvenanceFound] = field(default_factory=list)
    verdicts: list[VerdictFound] = field(default_factory=list)

    def provenance_by(self, keyids: set[str] | None) -> list[ProvenanceFound]:
        """Provenance signed by one of `keyids`; with None, all of it (read unsigned)."""
        if keyids is None:
            return list(self.provenance)
        return [p for p in self.provenance if keyids & set(p.signers)]

    def verdicts_by(self, keyids: set[str]) -> list[VerdictFound]:
        return [v for v in self.verdicts if keyids & set(v.signers)]


def read_evidence(found: Found, keys: Sequence[PublicKey]) -> Evidence:
    """The provenance and VSAs attached to `found` whose subject is its manifest; `signers` of
    each lists which of `keys` signed it."""
    out = Evidence()
    for source, data in attestations(found):
        try:
            env = parse_envelope(data, path=source)
            st = parse_statement(payload_of(env), path=source)
            if not names_subject(st, found.subject):
                continue
            signers = verified_keyids(env, keys) if keys else ()
            if st.predicate_type == PROVENANCE_PREDICATE_TYPE:
                prov = parse_provenance(st)
                meta = prov.run_details.metadata
                out.provenance.append(ProvenanceFound(
                    source, lock_digest_of(prov), signers,
                    meta.finished_on if meta is not None else None))
            elif st.predicate_type == VSA_PREDICATE_TYPE:
                vsa = parse_vsa(st)
                out.verdicts.append(VerdictFound(source, vsa.verification_result,
                                                 lock_digest_of_vsa(vsa), vsa.time_verified,
                                                 signers))
        except ImagelockError:
            continue  # not an attestation imagelock reads: it neither helps nor harms
    return out
