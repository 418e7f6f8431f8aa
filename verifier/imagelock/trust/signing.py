"""Signing what `build` and `rebuild` produced: provenance for a build, a VSA for a rebuild;
and the signer a user's options ask for (a key file, or keyless with sigstore)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagelock import __version__
from imagelock.core import progress
from imagelock.core.atomic import atomic_file
from imagelock.core.errors import FetchError, InputError
from imagelock.formats.files import read_lock
from imagelock.oci.archive_read import read_docker_archive
from imagelock.oci.locations import local_path, registry_form
from imagelock.fetch.store import Store
from imagelock.trust.statement import make_statement
from imagelock.trust.attest import append_line, attestations_path, lock_digest, lock_pins, utc_now
from imagelock.trust.dsse import envelope_json, sign_envelope
from imagelock.trust.keys import PrivateKey, load_private_key_file, passphrase_from_env_or_prompt
from imagelock.trust.provenance import build_provenance
from imagelock.trust.statement import statement_bytes
from imagelock.trust.uris import oci_uri
from imagelock.trust.vsa import AttestationRef, build_vsa

if TYPE_CHECKING:
    from imagelock.formats.attestation import Statement
    from imagelock.formats.results import BuildResult
    from imagelock.rebuild.rebuild import RebuildResult


class Signer:
    """Signs statements and files them beside an image: a local key appends a DSSE envelope to
    PATH.intoto.jsonl; sigstore writes a bundle to PATH.N.sigstore.json."""

    def emit(self, st: Statement, out: Path) -> tuple[Path, bytes]:
        raise NotImplementedError


class KeySigner(Signer):
    """A local private key: appends a DSSE envelope to PATH.intoto.jsonl."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key

    def emit(self, st: Statement, out: Path) -> tuple[Path, bytes]:
        line = envelope_json(sign_envelope(statement_bytes(st), [self.key]))
        append_line(out, line)
        return out, line


class SigstoreSigner(Signer):
    """Keyless: an OIDC identity token, Fulcio for a short-lived certificate, Rekor for the log."""

    def __init__(self, token: str | None, trusted_root: Path | None, signing_config: Path | None):
        # lazy: sigstore costs hundreds of ms to import; only keyless signing needs it
        from imagelock.trust import sigstore_bundle as sb

        self.token = token or sb.identity_token_from_env() or _ambient_token()
        if (trusted_root is None) != (signing_config is None):
            raise InputError("give both --trusted-root and --signing-config, or neither (the "
                             "public sigstore instance, fetched through TUF)")
        if trusted_root is not None and signing_config is not None:
            self.config = sb.load_trust_config(trusted_root, signing_config)
        else:
            self.config = _production_config()

    def emit(self, st: Statement, out: Path) -> tuple[Path, bytes]:
        # lazy: sigstore costs hundreds of ms to import; only keyless signing needs it
        from imagelock.trust.sigstore_bundle import sign_statement_keyless

        bundle = sign_statement_keyless(statement_bytes(st), identity_token=self.token,
                                        trust_config=self.config).encode()
        base = out.name.removesuffix(".intoto.jsonl")
        n = 0
        while (path := out.with_name(f"{base}.{n}.sigstore.json")).exists():
            n += 1
        with atomic_file(path) as tmp:
            tmp.write_bytes(bundle)
        return path, bundle


def _ambient_token() -> str | None:
    """The CI's ambient OIDC credential (GitHub Actions, GitLab, Buildkite, ...), if any."""
    try:
        from sigstore.oidc import detect_credential

        return detect_credential()
    except Exception:  # noqa: BLE001 - no ambient credential is the common case
        return None


def _production_config() -> Any:

    try:
        from sigstore.models import ClientTrustConfig

        return ClientTrustConfig.production()
    except Exception as e:  # noqa: BLE001 - TUF refresh failures come in many types
        raise FetchError(f"cannot fetch the public sigstore instance's trust root: {e}",
                         hint="pass --trusted-root and --signing-config files, or check the "
                         "network") from None


def signer_for(
    key: Path | None = None,
    *,
    sigstore: bool = False,
    identity_token: str | None = None,
    trusted_root: Path | None = None,
    signing_config: Path | None = None,
) -> Signer | None:
    """The signer the options ask for (`--sign KEY`, or `--sigstore` and its options), or None;
    both a key and sigstore is a usage error."""
    if key is not None and sigstore:
        raise InputError("choose --sign KEY or --sigstore, not both")
    if sigstore:
        return SigstoreSigner(identity_token, trusted_root, signing_config)
    if identity_token is not None or trusted_root is not None or signing_config is not None:
        raise InputError("--identity-token, --trusted-root and --signing-config go with --sigstore")
    return KeySigner(load_signing_key(key)) if key is not None else None


def load_signing_key(path: Path) -> PrivateKey:
    """Load a private key, asking for its passphrase only when it is encrypted."""
    try:
        return load_private_key_file(path, None)
    except InputError:
        pass
    passphrase = passphrase_from_env_or_prompt()
    if passphrase is None:
        raise InputError("the signing key is encrypted and no passphrase was given", path=path,
                         hint="set IMAGELOCK_KEY_PASSPHRASE or run on a terminal")
    return load_private_key_file(path, passphrase)


def _archive_identity(res: BuildResult) -> tuple[str | None, str | None]:
    """A docker-archive's digest and platform as read back from the archive itself (None, None
    for a layout). It has no manifest of its own: readers (and `verify`) identify it by the
    canonical OCI manifest of its uncompressed layers, so that is what is signed; its platform
    is its config's, so what is signed is what the archive holds, whichever platform was asked."""
    if res.format != "docker-archive":
        return None, None
    img = read_docker_archive(Path(res.output))
    return img.manifest_digest, img.platform


@progress.phase("sign")
def sign_build(res: BuildResult, lock_path: Path, signer: Signer) -> Path:
    """SLSA provenance for every platform built, signed, filed beside the output."""
    lock = read_lock(lock_path)
    output = Path(res.output)
    out = attestations_path(output)
    digest = lock_digest(lock_path)
    now = utc_now()
    archive_digest, archive_platform = _archive_identity(res)
    written = out
    for platform, d in res.platforms.items():
        if archive_digest is not None and platform != archive_platform:
            continue  # an archive holds one platform, the one `build --platform` chose
        st = build_provenance(
            subject_name=lock.image.name,
            manifest_digest=archive_digest or d.manifest_digest,
            lock_digest=digest,
            lock_uri=lock_path.name,
            pins=lock_pins(lock),
            finished_on=now,
            platform=platform,
            builder_version={"imagelock": __version__},
        )
        written, _ = signer.emit(st, out)
    return written




@progress.phase("sign")
def sign_sboms(res: BuildResult, lock_path: Path, signer: Signer, formats: list[str],
               store: Store) -> Path:
    """The SBOM of every platform built, in each format, as a signed in-toto statement about
    the image (predicate: the whole SPDX or CycloneDX document), filed beside the output like
    the provenance."""
    # lazy: the SBOM libraries (spdx-tools, cyclonedx-python-lib) load only when asked for
    from imagelock.sbom.document import PREDICATE_TYPES, make_sbom
    from imagelock.sbom.targets import Target

    lock = read_lock(lock_path)
    output = Path(res.output)
    out = attestations_path(output)
    target = Target(str(lock_path), lock, lock_path)
    archive_digest, archive_platform = _archive_identity(res)
    written = out
    for platform, d in res.platforms.items():
        if archive_digest is not None and platform != archive_platform:
            continue  # an archive holds one platform, the one `build --platform` chose
        for fmt in formats:
            doc = make_sbom(target, fmt, store, platform=platform,  # type: ignore[arg-type]
                            offline=True)
            st = make_statement(lock.image.name, archive_digest or d.manifest_digest,
                                PREDICATE_TYPES[fmt], json.loads(doc.data))
            written, _ = signer.emit(st, out)
    return written


def provenance_refs(image_path: Path | None) -> list[AttestationRef]:
    """The vendor's provenance envelopes kept beside a local image, as VSA inputAttestations."""
    if image_path is None:
        return []
    path = attestations_path(image_path)
    if not path.is_file():
        return []
    refs = []
    for line in path.read_bytes().splitlines():
        if b"slsa.dev/provenance" not in _payload(line):
            continue
        refs.append(AttestationRef(hashlib.sha256(line).hexdigest(), path.name))
    return refs


def _payload(line: bytes) -> bytes:
    try:
        return base64.b64decode(json.loads(line)["payload"])
    except (ValueError, KeyError, TypeError):
        return b""


def rebuild_attestations_path(image: str | None) -> Path:
    """Where a rebuild's VSA goes by default: beside a local image, else ./rebuild.intoto.jsonl."""
    local = local_path(image) if image else None
    return attestations_path(local) if local is not None else Path("rebuild.intoto.jsonl")


@progress.phase("sign")
def sign_rebuild(
    res: RebuildResult, signer: Signer, *, out: Path, verifier_id: str | None = None,
    input_attestations: list[AttestationRef] | None = None,
) -> tuple[Path, bytes]:
    """A VSA for the image the rebuild checked (the published one, else the lock's), signed and
    appended to `out`. PASSED on a match; FAILED only when the caller asks for it.
    `input_attestations` names the vendor's provenance a rebuild from a reference verified;
    by default, the provenance kept beside a local image."""
    subject = res.published or res.rebuilt
    image_ref = res.report.image
    match = {"reproduced": "distribution", "reproduced-content": "content"}.get(res.verdict)
    st = build_vsa(
        subject_name=res.lock.image.name,
        manifest_digest=subject.manifest_digest,
        lock_digest=lock_digest(res.lock_path),
        lock_uri=res.lock_path.name,
        time_verified=utc_now(),
        match=match,  # type: ignore[arg-type]
        input_attestations=input_attestations if input_attestations is not None else
        provenance_refs(local_path(image_ref) if image_ref else None),
        verifier_version={"imagelock": __version__},
        # A local path means nothing to others (and says where the rebuilder keeps files): a
        # registry image is named by its oci:// URI, anything else by its package URL.
        resource_uri=(oci_uri(registry_form(image_ref).removeprefix("docker://"),
                              subject.manifest_digest)
                      if image_ref and local_path(image_ref) is None else None),
        **({"verifier_id": verifier_id} if verifier_id else {}),
    )
    return signer.emit(st, out)


@progress.phase("sign")
def sign_index_rebuild(
    res: RebuildResult, index_digest: str, signer: Signer, *, out: Path,
    verifier_id: str | None = None,
) -> tuple[Path, bytes]:
    """A PASSED VSA for the image index of a rebuild of every platform (`res` is one platform's
    result, for the lock and the image compared): signed only for an index that was reproduced,
    so every manifest it lists is the rebuilt one, bit for bit."""
    image_ref = res.report.image
    st = build_vsa(
        subject_name=res.lock.image.name,
        manifest_digest=index_digest,
        lock_digest=lock_digest(res.lock_path),
        lock_uri=res.lock_path.name,
        time_verified=utc_now(),
        match="distribution",
        input_attestations=provenance_refs(local_path(image_ref) if image_ref else None),
        verifier_version={"imagelock": __version__},
        resource_uri=(oci_uri(registry_form(image_ref).removeprefix("docker://"), index_digest)
                      if image_ref and local_path(image_ref) is None else None),
        **({"verifier_id": verifier_id} if verifier_id else {}),
    )
    return signer.emit(st, out)
