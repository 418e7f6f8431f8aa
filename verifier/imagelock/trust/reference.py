"""Rebuild from nothing but an image reference: `imagelock rebuild REGISTRY/REPO@sha256:...`.

What is trusted, and why:

1. The vendor's provenance attached to the image names the lock's sha256. With `--vendor-key`
   (or a policy's vendor keys) only provenance signed by such a key counts; without one the
   provenance is read unsigned and the report says so (the rebuild still shows that this lock
   builds this image; who vouches for the lock is then the consumer's policy's question).
2. The recipe is taken only if its lock has exactly that sha256. Its spec and context files are
   the ones that lock pins, by sha256; anything missing or extra is refused.
3. Every Debian index the lock names is checked against the archive's signature with a keyring
   the rebuilder trusts (`--keyring NAME=PATH`, else the spec's keyring when it is a system
   keyring), and every .deb against its signed index. The lock is never trusted to name packages.
4. Every input's bytes, wherever they come from (local store, mirrors, the input bundle, a
   snapshot archive, in that order), must hash to its pin.

Then the lock is built in the sandbox and compared with the image, as any rebuild.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from imagelock.compare.render import render
from imagelock.core import progress
from imagelock.core.errors import ImagelockError, InputError, ToolUnavailable, VerificationFailed
from imagelock.fetch.places import Fetched
from imagelock.fetch.store import Store
from imagelock.formats.attestation import PROVENANCE_PREDICATE_TYPE
from imagelock.formats.files import load_spec, read_lock
from imagelock.formats.results import IndexChecked as IndexInfo
from imagelock.formats.results import ProvenanceSeen as ProvenanceInfo
from imagelock.formats.results import RebuildReport, ReferenceInfo
from imagelock.lock.debian.pin_check import IndexChecked, check_debian_pins
from imagelock.rebuild.inputs import PlaceConfig, PlacedIndexFiles, fetch_inputs, keyring_for
from imagelock.rebuild.rebuild import (
    NO_SANDBOX,
    RebuildResult,
    rebuild,
    sandbox_unavailable_hint,
)
from imagelock.rebuild.reference import Found, attestations, bundle_place, checkout, open_reference, recipe_for
from imagelock.sandbox.bwrap import require
from imagelock.trust.dsse import parse_envelope, payload_of, verified_keyids
from imagelock.trust.keys import PublicKey
from imagelock.trust.provenance import lock_digest_of, parse_provenance
from imagelock.trust.statement import names_subject, parse_statement
from imagelock.trust.vsa import AttestationRef


@dataclass(frozen=True)
class ProvenanceSeen:
    """A provenance statement about the image: which lock it names and who signed it."""

    source: str
    sha256: str  # of the envelope, as a VSA's inputAttestations name it
    lock_sha256: str
    signers: tuple[str, ...]  # keyids of trusted keys whose signature verified


@dataclass
class ReferenceRebuild:
    """A rebuild from a reference: what was trusted, where inputs came from, and the result."""

    image: str
    subject: str
    trust: str
    provenance: list[ProvenanceSeen]
    recipe: str
    lock_sha256: str
    fetched: Fetched
    indexes: list[IndexChecked]
    result: RebuildResult
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.result.verdict

    def input_attestations(self) -> list[AttestationRef]:
        return [AttestationRef(p.sha256, p.source) for p in self.provenance]

    def report(self) -> RebuildReport:
        """The rebuild's report, with how the reference was found and trusted."""
        info = ReferenceInfo(
            image=self.image, subject=self.subject, trust=self.trust, recipe=self.recipe,
            lock_sha256=self.lock_sha256,
            provenance=[ProvenanceInfo(source=p.source, sha256=p.sha256,
                                       lock_sha256=p.lock_sha256, signed_by=list(p.signers))
                        for p in self.provenance],
            inputs=self.fetched.count(), warnings=list(self.fetched.warnings),
            debian_indexes=[IndexInfo.model_validate(i.as_json()) for i in self.indexes],
            notes=list(self.notes))
        return self.result.report.model_copy(update={
            "lock_file": f"{self.lock_sha256} (from the recipe {self.recipe})",
            "reference": info})

    def human(self, verbose: bool) -> str:
        lines = [f"rebuild of {self.image} from its recipe {self.recipe}",
                 f"  trust: {self.trust}",
                 f"  lock sha256 {self.lock_sha256}"]
        counts = ", ".join(f"{n} from {k}" for k, n in sorted(self.fetched.count().items()))
        lines.append(f"  inputs: {counts or 'none'}")
        for i in self.indexes:
            keys = ", ".join(f"{s.primary} (signed {_day(s.created)}"
                             + (f"; the key expired {_day(s.expired)}, after it signed"
                                if s.expired else "") + ")" for s in i.signatures)
            lines.append(f"  debian index {i.source}/{i.suite} {i.component}/{i.architecture} of "
                         f"{i.date}: signature good by {keys} from {i.keyring}; {i.pins} pins "
                         "listed in it")
        lines += [f"  warning: {w}" for w in self.fetched.warnings]
        r = self.result.report
        isolation = ("WITHOUT a sandbox (--no-sandbox)" if r.sandbox == NO_SANDBOX
                     else f"isolated: {r.sandbox}")
        lines.append(f"rebuilt {r.platform} {isolation}, compared with {self.image}")
        lines.append(render(r, verbose=verbose))
        lines += [f"note: {n}" for n in [*self.notes, *r.rebuild_notes]]
        return "\n".join(lines)


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if epoch else "?"


def vendor_provenance(found: Found, keys: Sequence[PublicKey]) -> list[ProvenanceSeen]:
    """The provenance statements about the image; with `keys`, only those a key signed."""
    seen: list[ProvenanceSeen] = []
    for source, data in attestations(found):
        try:
            env = parse_envelope(data, path=source)
            signers = verified_keyids(env, keys) if keys else ()
            if keys and not signers:
                continue
            st = parse_statement(payload_of(env), path=source)
            if st.predicate_type != PROVENANCE_PREDICATE_TYPE or not names_subject(st, found.subject):
                continue
            lock = lock_digest_of(parse_provenance(st))
        except ImagelockError:
            continue  # not an imagelock provenance: it neither helps nor harms
        seen.append(ProvenanceSeen(source, hashlib.sha256(data).hexdigest(), lock, signers))
    return seen


def rebuild_reference(
    ref: str,
    *,
    store: Store,
    vendor_keys: Sequence[PublicKey] = (),
    keys_from: str = "",
    keyrings: Mapping[str, str] | None = None,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    sandbox: bool = True,
    platform: str | None = None,
    workdir: Path,
    insecure: bool = False,
    keep: Path | None = None,
    diffoscope: Path | None = None,
) -> ReferenceRebuild:
    """Find the provenance, the recipe and the inputs beside the image `ref`, check them (see
    the module docstring), rebuild and compare."""
    if sandbox:
        try:
            require()  # refuse before any work: a rebuild without isolation must be asked for
        except ToolUnavailable as e:
            raise sandbox_unavailable_hint(e) from None
    if offline and not ref.startswith("oci:"):
        raise InputError(f"--offline needs a pulled image (oci:DIR), not {ref}",
                         hint="pull it first: imagelock pull REF -o DIR --with-inputs")
    found = open_reference(ref, platform=platform, insecure=insecure, workdir=workdir / "image")
    try:
        provenance = vendor_provenance(found, vendor_keys)
        if not provenance:
            raise VerificationFailed(
                f"no provenance about {found.subject} "
                + (f"signed by {keys_from} " if vendor_keys else "")
                + f"is attached to {found.image}",
                hint="the vendor attaches it with `imagelock attach REF FILE.intoto.jsonl`; "
                "without provenance nothing binds a recipe to the image")
        locks = {p.lock_sha256 for p in provenance}
        if vendor_keys:
            trust = (f"provenance signed by {keys_from} (keyid "
                     f"{', '.join(sorted({k for p in provenance for k in p.signers}))}) names "
                     f"the lock; the recipe's lock has that sha256")
        else:
            trust = ("provenance NOT signature-checked (no --vendor-key or --policy): the recipe's "
                     "lock is the one the attached provenance names, but who signed it is not "
                     "known here")
        art, lock_data = recipe_for(found, locks)
        lock_sha = hashlib.sha256(lock_data).hexdigest()
        lock_path = checkout(found, art, lock_data, store, workdir / "recipe")
        lock = read_lock(lock_path)
        spec = load_spec(lock_path.parent / lock.spec, lock.set_image)
        config = PlaceConfig(dict(spec.sources), cli_mirrors or {}, cli_snapshots or {},
                             bundle_place(found))
        log = Fetched()
        # One phase for the progress display (and a fleet's accounting of where time goes).
        with progress.phase("fetch"):
            # The signed indexes first: a lock that pins what the archive never signed is
            # refused before any of its packages is downloaded.
            files = PlacedIndexFiles(lock, store, config, offline=offline, log=log)
            indexes: list[IndexChecked] = []
            for plat, plock in lock.debian.items():
                indexes += check_debian_pins(
                    plat, plock, store=store, files=files,
                    keyring=lambda s: keyring_for(s, config, keyrings or {}))
            fetch_inputs(lock, store, config, offline=offline, log=log)
        (workdir / "rebuild").mkdir(parents=True, exist_ok=True)
        result = rebuild(lock_path, image=found.image, store=store, cli_mirrors={}, offline=True,
                         sandbox=sandbox, platform=platform, workdir=workdir / "rebuild",
                         insecure=insecure, keep=keep, diffoscope=diffoscope)
    finally:
        found.close()
    return ReferenceRebuild(found.image, found.subject, trust, [p for p in provenance
                            if p.lock_sha256 == lock_sha], art.digest, lock_sha, log, indexes,
                            result, found.notes)
