"""Shared pieces for the trust tests: keys on disk, signed statements, policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imagelock.formats.attestation import Statement
from imagelock.trust.dsse import envelope_json, sign_envelope
from imagelock.trust.keys import PrivateKey, generate
from imagelock.trust.provenance import Pin, build_provenance
from imagelock.trust.statement import statement_bytes
from imagelock.trust.vsa import AttestationRef, Match, build_vsa

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
IMAGE = "registry.example/acme/app"
MANIFEST = "sha256:" + "ab" * 32
OTHER_MANIFEST = "sha256:" + "cd" * 32
LOCK = "11" * 32
OTHER_LOCK = "22" * 32
PINS = [
    Pin("debian:libc6=2.36-9", "33" * 32, "debian:pool/main/g/glibc/libc6_2.36-9_amd64.deb"),
    Pin("python:requests==2.31.0", "44" * 32),
]


def provenance(
    *, lock: str = LOCK, manifest: str = MANIFEST, finished: datetime | None = None
) -> Statement:
    return build_provenance(
        subject_name=IMAGE,
        manifest_digest=manifest,
        lock_digest=lock,
        lock_uri="imagelock.lock",
        pins=PINS,
        finished_on=finished or NOW - timedelta(days=1),
        started_on=(finished or NOW - timedelta(days=1)) - timedelta(minutes=3),
    )


def vsa(
    *,
    match: Match | None = "distribution",
    lock: str = LOCK,
    manifest: str = MANIFEST,
    when: datetime | None = None,
    verifier_id: str = "https://imagelock.dev/verifiers/rebuild/v1",
) -> Statement:
    return build_vsa(
        subject_name=IMAGE,
        manifest_digest=manifest,
        lock_digest=lock,
        lock_uri="imagelock.lock",
        time_verified=when or NOW - timedelta(hours=2),
        match=match,
        input_attestations=[AttestationRef("55" * 32, "app.provenance.intoto.json")],
        verifier_id=verifier_id,
    )


@dataclass
class World:
    """A vendor, three rebuilders and a stranger, with their public keys written to `root`."""

    root: Path
    keys: dict[str, PrivateKey] = field(default_factory=dict)
    _n: int = 0

    def __post_init__(self) -> None:
        for name in ("vendor", "rb-alpha", "rb-beta", "rb-gamma", "stranger"):
            self.add_key(name, generate("ed25519" if name == "rb-beta" else "ecdsa-p256"))

    def add_key(self, name: str, key: PrivateKey) -> Path:
        self.keys[name] = key
        path = self.root / f"{name}.pub"
        path.write_bytes(key.public.pem())
        return path

    def sign(self, statement: Statement, *signers: str, name: str | None = None) -> Path:
        """Sign with the named keys and write the envelope to a fresh file."""
        self._n += 1
        env = sign_envelope(statement_bytes(statement), [self.keys[s] for s in signers])
        path = self.root / (name or f"att-{self._n}.intoto.json")
        path.write_bytes(envelope_json(env))
        return path

    def policy(self, body: str | None = None, *, threshold: int = 2, extra: str = "") -> Path:
        """A policy trusting `vendor` and the three rebuilders (threshold k), or `body` verbatim."""
        text = body or (
            "version: 1\n"
            "vendors:\n"
            "  - name: acme\n"
            "    key: vendor.pub\n"
            "rebuilders:\n"
            f"  threshold: {threshold}\n"
            "  trusted:\n"
            "    - {name: alpha, key: rb-alpha.pub}\n"
            "    - {name: beta, key: rb-beta.pub}\n"
            "    - {name: gamma, key: rb-gamma.pub}\n" + extra
        )
        path = self.root / "policy.yaml"
        path.write_text(text)
        return path
