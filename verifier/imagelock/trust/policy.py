"""Evaluate a consumer's policy against the attestations that travel with an image.

Two stages, so every refusal has a reason:

1. Each attestation is checked on its own (signature by a trusted signer of the right role,
   in-toto payload, subject = this image's manifest digest, known predicate, fresh enough).
   One that fails any check is not counted, and its note says why.
2. The rules (composable objects, combined with `AllOf`) look only at counted attestations.

Fails closed: the policy passes only if every rule passes on counted attestations, so nothing
unknown, unsigned, tampered, stale or about another image can ever help an image pass. A
malformed policy, or a file that is not an attestation file, is an InputError (exit 2) naming
the file and field; a malformed attestation inside one counts for nothing, with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from imagelock.core.errors import ImagelockError, InputError, UnsupportedInput, VerificationFailed
from imagelock.core.strict_json import NotJSON, loads, read_limited
from imagelock.formats.attestation import (
    DSSE_INTOTO_PAYLOAD_TYPE,
    PROVENANCE_PREDICATE_TYPE,
    SBOM_PREDICATE_TYPES,
    SPDX_PREDICATE_TYPE,
    VSA_PREDICATE_TYPE,
    DSSEEnvelope,
    Statement,
)
from imagelock.formats.load import load_yaml_model
from imagelock.formats.policy import (
    AttestationNote,
    Policy,
    PolicyResult,
    RuleOutcome,
    TrustedSigner,
)
from imagelock.trust.bundle_kind import is_sigstore_bundle
from imagelock.trust.dsse import parse_envelope, payload_of, verified_keyids
from imagelock.trust.keys import PublicKey, load_public_key, load_public_key_file
from imagelock.trust.provenance import lock_digest_of, parse_provenance

if TYPE_CHECKING:
    from sigstore.models import Bundle, TrustedRoot

    # lazy: sigstore costs hundreds of ms to import; only bundles and keyless signers need it
    from imagelock.trust.sigstore_bundle import SigstoreIdentity
from imagelock.trust.statement import names_subject, parse_statement, sha256_hex
from imagelock.trust.vsa import lock_digest_of_vsa, match_of, parse_vsa

Role = Literal["vendor", "rebuilder"]
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future an attestation's time may be before it is refused as impossible."""


# --- the loaded policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSigner:
    """A trusted signer from the policy, with its key read and checked."""

    name: str
    role: Role
    key: PublicKey | None = None
    identity: SigstoreIdentity | None = None
    attests_as: str | None = None  # builder.id (vendors) or verifier.id (rebuilders), if pinned


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy whose keys and trusted root were read: ready to evaluate, no more I/O needed."""

    policy: Policy
    signers: tuple[LoadedSigner, ...]
    trusted_root: TrustedRoot | None = None
    source: str = "<policy>"

    def public_keys(self) -> list[PublicKey]:
        return [s.key for s in self.signers if s.key is not None]

    def identities(self) -> list[SigstoreIdentity]:
        seen: list[SigstoreIdentity] = []
        for s in self.signers:
            if s.identity is not None and s.identity not in seen:
                seen.append(s.identity)
        return seen


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read `policy.yaml` and everything it names (keys, trusted root), relative to its folder."""
    p = Path(path)
    model = load_yaml_model(p, Policy, "policy")
    return resolve_policy(model, base_dir=p.parent, source=str(p))


def resolve_policy(model: Policy, *, base_dir: Path, source: str = "<policy>") -> LoadedPolicy:
    """Read the keys and the trusted root a validated policy names."""
    signers: list[LoadedSigner] = []
    for i, v in enumerate(model.vendors):
        signers.append(_signer(v, "vendor", v.builder_id, base_dir, f"vendors[{i}]", source))
    for i, r in enumerate(model.rebuilders.trusted):
        signers.append(
            _signer(r, "rebuilder", r.verifier_id, base_dir, f"rebuilders.trusted[{i}]", source)
        )
    _one_name_per_signer(signers, source)
    root = None
    if model.trusted_root:
        try:
            # lazy: sigstore costs hundreds of ms to import; only bundles and keyless signers need it
            from imagelock.trust.sigstore_bundle import load_trusted_root

            root = load_trusted_root(base_dir / model.trusted_root)
        except InputError as exc:
            exc.field = "trusted_root"
            raise
    return LoadedPolicy(model, tuple(signers), root, source)


def _signer(
    entry: TrustedSigner, role: Role, attests_as: str | None, base: Path, field_: str, source: str
) -> LoadedSigner:
    if entry.sigstore is not None:
        # lazy: sigstore costs hundreds of ms to import; only bundles and keyless signers need it
        from imagelock.trust.sigstore_bundle import SigstoreIdentity

        ident = SigstoreIdentity(entry.sigstore.identity, entry.sigstore.issuer)
        return LoadedSigner(entry.name, role, identity=ident, attests_as=attests_as)
    try:
        if entry.key is not None:
            key = load_public_key_file(base / entry.key)
        else:
            key = load_public_key((entry.pem or "").encode("utf-8"), path=source)
    except InputError as exc:
        exc.field = f"{field_}.{'key' if entry.key is not None else 'pem'}"
        raise
    if entry.keyid is not None and entry.keyid != key.keyid:
        raise InputError(
            f"the key's keyid is {key.keyid}, not the pinned {entry.keyid}",
            path=source,
            field=f"{field_}.keyid",
            hint="the key file was replaced, or the pin is wrong: check with the key's owner",
        )
    return LoadedSigner(entry.name, role, key=key, attests_as=attests_as)


def _one_name_per_signer(signers: Sequence[LoadedSigner], source: str) -> None:
    """One key or identity may not stand for two names in a role (it would count twice), nor for
    a vendor and a rebuilder (a vendor would vouch for its own build as an independent party)."""
    owner: dict[tuple[Role, str], str] = {}
    roles: dict[str, tuple[Role, str]] = {}
    for s in signers:
        ident = s.key.keyid if s.key else str(s.identity)
        first = roles.setdefault(ident, (s.role, s.name))
        if first[0] != s.role:
            raise InputError(
                f"{first[0]} {first[1]!r} and {s.role} {s.name!r} share the same "
                f"{'key' if s.key else 'sigstore identity'}: a vendor cannot be one of its own "
                "independent rebuilders", path=source, field="rebuilders.trusted",
                hint="each rebuilder needs a key or identity of its own")
        other = owner.setdefault((s.role, ident), s.name)
        if other != s.name:
            raise InputError(
                f"{s.role}s {other!r} and {s.name!r} share the same "
                f"{'key' if s.key else 'sigstore identity'}; they would be counted twice",
                path=source,
                field="rebuilders.trusted" if s.role == "rebuilder" else "vendors",
                hint="give each party its own key, or one name",
            )


# --- reading attestation files ----------------------------------------------------------------


MAX_ATTESTATION_FILE = 16 << 20
"""Largest attestation file read (16 MiB): real ones hold a few envelopes of tens of kilobytes."""
MAX_ENVELOPE = 4 << 20
"""Largest single envelope or bundle (4 MiB): a provenance naming thousands of pins is well
under one."""
MAX_PER_FILE = 1000
"""Most envelopes read from one file (a line each in `.intoto.jsonl`)."""


@dataclass(frozen=True)
class AttestationSource:
    """Attestation bytes that did not come from a file (e.g. an OCI referrer), with a label."""

    label: str
    data: bytes


@dataclass(frozen=True)
class RawAttestation:
    """One envelope or bundle, parsed but not yet trusted; or why it could not be."""

    source: str
    sha256: str
    envelope: DSSEEnvelope | None = None
    bundle: Bundle | None = None
    error: str | None = None  # a malformed document: it counts for nothing, for this reason


def read_attestations(sources: Sequence[Path | str | AttestationSource]) -> list[RawAttestation]:
    """Parse every attestation in the given files: JSON documents or `.intoto.jsonl` lines.

    A file that cannot be read, is not JSON (or JSON lines), is too large, or holds something
    that is not even shaped like an envelope or a bundle is an InputError: the user handed
    `verify` the wrong file. A document that is shaped like one but malformed (no signatures, a
    null keyid, bad base64, a duplicate key) is kept with its reason: it counts for nothing,
    and every other attestation is still judged.
    """
    out: list[RawAttestation] = []
    for src in sources:
        if isinstance(src, AttestationSource):
            label, data = src.label, src.data
            if len(data) > MAX_ATTESTATION_FILE:
                raise InputError(f"the attestation is larger than {MAX_ATTESTATION_FILE} bytes",
                                 path=label, hint="no genuine attestation is this large")
        else:
            label = str(src)
            data = read_limited(src, limit=MAX_ATTESTATION_FILE, what="the attestation file",
                                hint="no genuine attestation file is this large; see "
                                "docs/trust.md for the limits")
        out.extend(_parse_file(label, data))
    return out


def _parse_file(label: str, data: bytes) -> list[RawAttestation]:
    if len(data) <= MAX_ENVELOPE:
        try:
            doc = loads(data, what="the attestation file", path=label)
        except NotJSON:
            pass  # perhaps JSON lines
        except InputError as exc:  # JSON, refused for what it holds (a duplicate key)
            return [_malformed(label, None, data, exc)]
        else:
            return [_parse_doc(label, None, data, doc)]
    found: list[RawAttestation] = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        if len(found) >= MAX_PER_FILE:
            raise InputError(f"the file holds more than {MAX_PER_FILE} attestations", path=label,
                             line=n, hint="no image needs this many; see docs/trust.md")
        if len(line) > MAX_ENVELOPE:
            found.append(RawAttestation(
                f"{label}:{n}", hashlib.sha256(line.strip()).hexdigest(),
                error=f"larger than {MAX_ENVELOPE} bytes, the most imagelock reads for one "
                "envelope"))
            continue
        try:
            doc = loads(line, what="the line", path=label, line=n,
                        hint="give a DSSE envelope, a sigstore bundle, or JSON lines of them")
        except NotJSON:
            raise
        except InputError as exc:
            found.append(_malformed(label, n, line, exc))
            continue
        found.append(_parse_doc(label, n, line, doc))
    if not found:
        raise InputError("the attestation file is empty", path=label)
    return found


def _malformed(label: str, line: int | None, raw: bytes, exc: InputError) -> RawAttestation:
    source = f"{label}:{line}" if line else label
    digest = hashlib.sha256(raw.strip() if line else raw).hexdigest()
    where = f"{exc.field}: " if exc.field else ""
    if isinstance(exc, UnsupportedInput):  # valid, but not verifiable here: say so
        return RawAttestation(source, digest, error=exc.message)
    return RawAttestation(source, digest, error=f"malformed: {where}{exc.message}")


def _parse_doc(label: str, line: int | None, raw: bytes, doc: Any) -> RawAttestation:
    source = f"{label}:{line}" if line else label
    digest = hashlib.sha256(raw.strip() if line else raw).hexdigest()
    if isinstance(doc, dict) and is_sigstore_bundle(doc):
        # lazy: sigstore costs hundreds of ms to import; only bundles and keyless signers need it
        from imagelock.trust.sigstore_bundle import load_bundle

        try:
            return RawAttestation(source, digest, bundle=load_bundle(raw, path=label, line=line))
        except InputError as exc:
            return _malformed(label, line, raw, exc)
    if isinstance(doc, dict) and "payloadType" in doc:
        try:
            envelope = parse_envelope(doc, path=label, line=line)
        except InputError as exc:
            return _malformed(label, line, raw, exc)
        return RawAttestation(source, digest, envelope=envelope)
    raise InputError(
        "neither a DSSE envelope nor a sigstore bundle",
        path=label,
        line=line,
        field="payloadType",
        hint="give the attestations written by `imagelock build`/`rebuild` or a sigstore client",
    )


# --- checking one attestation -----------------------------------------------------------------


@dataclass(frozen=True)
class Counted:
    """An attestation that passed every per-attestation check."""

    source: str
    predicate_type: str
    signers: tuple[LoadedSigner, ...]
    lock_digest: str
    verdict: Literal["PASSED", "FAILED"] = "PASSED"


class _NotCounted(Exception):
    def __init__(
        self, reason: str, predicate_type: str | None = None, signers: Sequence[LoadedSigner] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.predicate_type = predicate_type
        self.signers = tuple(signers)


def _signers_of(raw: RawAttestation, policy: LoadedPolicy) -> tuple[str, bytes, list[LoadedSigner]]:
    """Payload type, payload and the trusted signers whose signature verified."""
    if raw.envelope is not None:
        env = raw.envelope
        if not env.signatures:
            raise _NotCounted("the envelope carries no signatures")
        ids = verified_keyids(env, policy.public_keys())
        if not ids:
            trusted_ids = {k.keyid for k in policy.public_keys()}
            if any(s.keyid in trusted_ids for s in env.signatures):
                raise _NotCounted(
                    "its signature names a trusted key but does not verify: the payload or the "
                    "signature was modified"
                )
            raise _NotCounted("not signed by any key the policy trusts")
        signers = [s for s in policy.signers if s.key is not None and s.key.keyid in ids]
        return env.payload_type, payload_of(env), signers
    assert raw.bundle is not None
    # lazy: sigstore costs hundreds of ms to import; only bundles and keyless signers need it
    from imagelock.trust.sigstore_bundle import is_dsse_bundle, verify_dsse

    if not is_dsse_bundle(raw.bundle):
        raise _NotCounted("a sigstore message-signature bundle signs a file, not an attestation")
    if policy.trusted_root is None:
        raise _NotCounted("a sigstore bundle, but the policy names no trusted_root and no identity")
    try:
        verified = verify_dsse(
            raw.bundle, trusted_root=policy.trusted_root, identities=policy.identities()
        )
    except VerificationFailed as exc:
        raise _NotCounted(exc.message) from exc
    signers = [s for s in policy.signers if s.identity in verified.signers]
    return verified.payload_type, verified.payload, signers


def _check(raw: RawAttestation, policy: LoadedPolicy, manifest_hex: str, now: datetime) -> Counted:
    payload_type, payload, signers = _signers_of(raw, policy)
    names = sorted({s.name for s in signers})
    if payload_type != DSSE_INTOTO_PAYLOAD_TYPE:
        raise _NotCounted(
            f"payload type {payload_type!r} is not an in-toto statement", None, signers
        )
    try:
        statement = parse_statement(payload)
    except InputError as exc:
        raise _NotCounted(
            f"signed payload is not an in-toto Statement v1: {exc.message}", None, signers
        ) from exc
    ptype = statement.predicate_type
    if not names_subject(statement, manifest_hex):
        about = ", ".join(f"sha256:{s.sha256()}" for s in statement.subject)
        raise _NotCounted(f"it is about {about}, not sha256:{manifest_hex}", ptype, signers)
    if ptype == PROVENANCE_PREDICATE_TYPE:
        return _check_provenance(raw, statement, signers, policy, now)
    if ptype == VSA_PREDICATE_TYPE:
        return _check_vsa(raw, statement, signers, policy, now)
    if ptype in SBOM_PREDICATE_TYPES:
        return _check_sbom(raw, statement, signers)
    raise _NotCounted(
        f"unknown predicate type {ptype!r} (signed by {', '.join(names)})", ptype, signers
    )


def _check_provenance(
    raw: RawAttestation, st: Statement, signers: list[LoadedSigner], policy: LoadedPolicy, now: datetime
) -> Counted:
    ptype = st.predicate_type
    try:
        prov = parse_provenance(st)
        lock = lock_digest_of(prov)
    except InputError as exc:
        raise _NotCounted(f"unusable provenance: {exc.message}", ptype, signers) from exc
    builder = prov.run_details.builder.id
    vendors = [s for s in signers if s.role == "vendor"]
    if not vendors:
        raise _NotCounted("provenance counts only when a trusted vendor signed it", ptype, signers)
    vendors = [s for s in vendors if s.attests_as in (None, builder)]
    if not vendors:
        raise _NotCounted(
            f"builder.id {builder!r} is not the one the policy pins for this vendor", ptype, signers
        )
    meta = prov.run_details.metadata
    when = (meta.finished_on or meta.started_on) if meta else None
    _fresh(when, policy, now, ptype, vendors, missing="the provenance has no finishedOn or "
           "startedOn, and the policy's max_age needs one")
    return Counted(raw.source, ptype, tuple(vendors), lock)


def _check_sbom(raw: RawAttestation, st: Statement, signers: list[LoadedSigner]) -> Counted:
    """An SBOM counts when a trusted vendor signed it and its predicate is the document its
    type names (SPDX 2.x: `spdxVersion`; CycloneDX: `bomFormat`)."""
    ptype = st.predicate_type
    doc = st.predicate
    shaped = (isinstance(doc.get("spdxVersion"), str) and doc["spdxVersion"].startswith("SPDX-")
              if ptype == SPDX_PREDICATE_TYPE else doc.get("bomFormat") == "CycloneDX")
    if not shaped:
        raise _NotCounted(f"its predicate is not the document {ptype} names", ptype, signers)
    vendors = [s for s in signers if s.role == "vendor"]
    if not vendors:
        raise _NotCounted("an SBOM counts only when a trusted vendor signed it", ptype, signers)
    return Counted(raw.source, ptype, tuple(vendors), "")


def _check_vsa(
    raw: RawAttestation, st: Statement, signers: list[LoadedSigner], policy: LoadedPolicy, now: datetime
) -> Counted:
    ptype = st.predicate_type
    try:
        vsa = parse_vsa(st)
    except InputError as exc:
        raise _NotCounted(f"unusable verification summary: {exc.message}", ptype, signers) from exc
    rebuilders = [s for s in signers if s.role == "rebuilder"]
    if not rebuilders:
        raise _NotCounted("a VSA counts only when a trusted rebuilder signed it", ptype, signers)
    rebuilders = [s for s in rebuilders if s.attests_as in (None, vsa.verifier.id)]
    if not rebuilders:
        raise _NotCounted(
            f"verifier.id {vsa.verifier.id!r} is not the one the policy pins for this rebuilder",
            ptype,
            signers,
        )
    lock = lock_digest_of_vsa(vsa)
    if lock is None:
        raise _NotCounted("the VSA names no lock (policy.digest.sha256)", ptype, rebuilders)
    _fresh(vsa.time_verified, policy, now, ptype, rebuilders, missing="the VSA has no "
           "timeVerified (optional since VSA 1.1), and the policy's max_age needs it")
    if vsa.verification_result == "FAILED":
        return Counted(raw.source, ptype, tuple(rebuilders), lock, "FAILED")
    match = match_of(vsa)
    if match is None:
        raise _NotCounted(
            "the VSA says PASSED but not which match it saw (no IMAGELOCK_REPRODUCED_* level)",
            ptype,
            rebuilders,
        )
    if match == "content" and not policy.policy.rebuilders.accept_reproduced_content:
        raise _NotCounted(
            "a content-only match (compressed bytes differ); the policy does not set "
            "rebuilders.accept_reproduced_content",
            ptype,
            rebuilders,
        )
    return Counted(raw.source, ptype, tuple(rebuilders), lock)


def _fresh(
    when: datetime | None,
    policy: LoadedPolicy,
    now: datetime,
    ptype: str,
    signers: Sequence[LoadedSigner],
    *,
    missing: str,
) -> None:
    if when is not None and when > now + CLOCK_SKEW:
        raise _NotCounted(f"its time {when.isoformat()} is in the future", ptype, signers)
    limit = policy.policy.max_age_seconds()
    if limit is None:
        return
    if when is None:
        raise _NotCounted(missing, ptype, signers)
    age = now - when
    if age > timedelta(seconds=limit):
        raise _NotCounted(
            f"expired: {_human(age)} old, the policy allows {_human(timedelta(seconds=limit))}",
            ptype,
            signers,
        )


def _human(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s >= 86400:
        return f"{s / 86400:.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} hours"
    return f"{s} seconds"


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """The counted attestations the rules judge."""

    counted: tuple[Counted, ...]

    def of_type(self, predicate_type: str) -> list[Counted]:
        return [c for c in self.counted if c.predicate_type == predicate_type]


class Rule(Protocol):
    """One requirement of the policy."""

    def check(self, evidence: Evidence) -> list[RuleOutcome]: ...


@dataclass(frozen=True)
class RequirePredicate:
    """At least one counted attestation of this predicate type."""

    predicate_type: str

    def check(self, evidence: Evidence) -> list[RuleOutcome]:
        found = evidence.of_type(self.predicate_type)
        passed = [c for c in found if c.verdict == "PASSED"]
        if passed:
            who = sorted({s.name for c in passed for s in c.signers})
            return [_ok(f"require:{self.predicate_type}", f"present, signed by {', '.join(who)}")]
        if found:
            # A FAILED VSA is evidence against the image, never the evidence a rule requires.
            who = sorted({s.name for c in found for s in c.signers})
            return [_no(f"require:{self.predicate_type}",
                        f"only FAILED verification summaries (signed by {', '.join(who)})")]
        return [
            _no(
                f"require:{self.predicate_type}",
                f"no trusted, valid attestation of type {self.predicate_type} for this image",
            )
        ]


@dataclass(frozen=True)
class RebuilderThreshold:
    """At least k distinct trusted rebuilders reproduced the image (each counted once)."""

    threshold: int

    def check(self, evidence: Evidence) -> list[RuleOutcome]:
        who = sorted(
            {
                s.name
                for c in evidence.of_type(VSA_PREDICATE_TYPE)
                if c.verdict == "PASSED"
                for s in c.signers
            }
        )
        text = f"{len(who)} of {self.threshold} required distinct rebuilders reproduced the image"
        if who:
            text += f" ({', '.join(who)})"
        return [(_ok if len(who) >= self.threshold else _no)("rebuilder-threshold", text)]


@dataclass(frozen=True)
class NoFailedRebuild:
    """No trusted rebuilder says the rebuild did not match: one credible 'no' vetoes."""

    def check(self, evidence: Evidence) -> list[RuleOutcome]:
        failed = sorted(
            {
                s.name
                for c in evidence.of_type(VSA_PREDICATE_TYPE)
                if c.verdict == "FAILED"
                for s in c.signers
            }
        )
        if failed:
            return [
                _no("no-failed-rebuild", f"trusted rebuilder(s) {', '.join(failed)} report FAILED")
            ]
        return [_ok("no-failed-rebuild", "no trusted rebuilder reports a failed rebuild")]


@dataclass(frozen=True)
class LockAgreement:
    """The vendor's provenance and every rebuilder's VSA name the same lock."""

    def check(self, evidence: Evidence) -> list[RuleOutcome]:
        by_lock: dict[str, list[str]] = {}
        for c in evidence.counted:
            if c.verdict != "PASSED" or c.predicate_type in SBOM_PREDICATE_TYPES:
                continue  # an SBOM names no lock
            kind = "provenance" if c.predicate_type == PROVENANCE_PREDICATE_TYPE else "VSA"
            for s in c.signers:
                by_lock.setdefault(c.lock_digest, []).append(f"{kind} by {s.name}")
        if len(by_lock) <= 1:
            lock = next(iter(by_lock), None)
            return [
                _ok("lock-agreement", f"all name lock sha256:{lock}" if lock else "no lock named")
            ]
        parts = [f"sha256:{d[:16]}… ({', '.join(sorted(w))})" for d, w in sorted(by_lock.items())]
        return [_no("lock-agreement", "attestations name different locks: " + "; ".join(parts))]


@dataclass(frozen=True)
class AllOf:
    """Every child rule must pass; all are evaluated so every failure is reported."""

    children: tuple[Rule, ...]

    def check(self, evidence: Evidence) -> list[RuleOutcome]:
        if not self.children:
            return [_no("all-of", "a policy with no rules accepts nothing")]
        return [o for r in self.children for o in r.check(evidence)]


def rules_for(policy: Policy) -> AllOf:
    """The rules a policy file means."""
    rules: list[Rule] = [RequirePredicate(t) for t in policy.required_predicate_types]
    rules += [RebuilderThreshold(policy.rebuilders.threshold), NoFailedRebuild(), LockAgreement()]
    return AllOf(tuple(rules))


def _ok(rule: str, reason: str) -> RuleOutcome:
    return RuleOutcome(rule=rule, passed=True, reason=reason)


def _no(rule: str, reason: str) -> RuleOutcome:
    return RuleOutcome(rule=rule, passed=False, reason=reason)


# --- evaluation -------------------------------------------------------------------------------


def evaluate(
    policy: LoadedPolicy,
    *,
    subject_name: str,
    manifest_digest: str,
    attestations: Sequence[Path | str | AttestationSource | RawAttestation],
    now: datetime,
) -> PolicyResult:
    """Judge one image (name + manifest digest) by the attestations given, at time `now`.

    Raises InputError for an unreadable or malformed attestation file; every other problem is
    a reason in the result. Use `require_pass` to turn a refusal into VerificationFailed.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    manifest_hex = sha256_hex(manifest_digest, field="manifest digest")
    raws = [a for a in attestations if isinstance(a, RawAttestation)]
    raws += read_attestations([a for a in attestations if not isinstance(a, RawAttestation)])
    counted: list[Counted] = []
    notes: list[AttestationNote] = []
    for raw in raws:
        if raw.error is not None:
            notes.append(_note(raw, None, (), False, raw.error))
            continue
        try:
            c = _check(raw, policy, manifest_hex, now)
        except _NotCounted as nc:
            notes.append(_note(raw, nc.predicate_type, nc.signers, False, nc.reason))
            continue
        except ImagelockError as exc:  # e.g. base64 that only fails on use: still a refusal
            notes.append(_note(raw, None, (), False, exc.message))
            continue
        counted.append(c)
        reason = "counted" if c.verdict == "PASSED" else "counted: the rebuilder reports FAILED"
        notes.append(_note(raw, c.predicate_type, c.signers, True, reason))
    outcomes = rules_for(policy.policy).check(Evidence(tuple(counted)))
    return PolicyResult(
        passed=all(o.passed for o in outcomes),
        subject_name=subject_name,
        subject_digest=f"sha256:{manifest_hex}",
        rules=outcomes,
        attestations=notes,
    )


def every_platform(subject_name: str, index_digest: str,
                   results: dict[str, PolicyResult]) -> PolicyResult:
    """The verdict on an image index under `every_platform`: each platform's result, and a rule
    that passes only when every one of them passed (naming those that did not)."""
    failed = [p for p, r in results.items() if not r.passed]
    head = (_ok("every-platform", f"each of {len(results)} platforms met the policy: "
                + ", ".join(results))
            if results and not failed else
            _no("every-platform", "the index lists no platform" if not results else
                "not met for " + ", ".join(failed) + ": " + "; ".join(
                    f"{p}: {o.rule}: {o.reason}" for p in failed for o in results[p].rules
                    if not o.passed)))
    rules = [head] + [RuleOutcome(rule=f"{p}: {o.rule}", passed=o.passed, reason=o.reason)
                      for p, r in results.items() for o in r.rules]
    notes = [n.model_copy(update={"reason": f"{p}: {n.reason}"})
             for p, r in results.items() for n in r.attestations]
    return PolicyResult(passed=head.passed, subject_name=subject_name,
                        subject_digest=index_digest, rules=rules, attestations=notes)


def require_pass(result: PolicyResult, *, policy_source: str | None = None) -> None:
    """Raise VerificationFailed (exit 1) naming the failed rules, if the policy refused."""
    if result.passed:
        return
    failed = [f"{o.rule}: {o.reason}" for o in result.rules if not o.passed]
    raise VerificationFailed(
        f"policy refused {result.subject_name}@{result.subject_digest}: " + "; ".join(failed),
        path=policy_source,
        hint="see the per-attestation notes (`--json`) for why attestations were not counted",
    )


def _note(
    raw: RawAttestation, ptype: str | None, signers: Sequence[LoadedSigner], counted: bool, reason: str
) -> AttestationNote:
    return AttestationNote(
        source=raw.source,
        sha256=raw.sha256,
        predicate_type=ptype,
        signers=sorted({s.name for s in signers}),
        counted=counted,
        reason=reason,
    )


__all__ = [
    "AllOf",
    "AttestationSource",
    "Counted",
    "Evidence",
    "LoadedPolicy",
    "LockAgreement",
    "NoFailedRebuild",
    "RawAttestation",
    "RebuilderThreshold",
    "RequirePredicate",
    "Rule",
    "LoadedSigner",
    "evaluate",
    "load_policy",
    "read_attestations",
    "require_pass",
    "resolve_policy",
    "rules_for",
]
