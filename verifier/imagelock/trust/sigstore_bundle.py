"""Sigstore bundles: verify them offline from a trusted root, and sign statements keyless.

Verification never touches the network: the trusted root file holds the Fulcio CA, the Rekor
and CT log keys and the timestamp authorities, and the certificate is checked against the
signed times inside the bundle (log integration time or RFC 3161 timestamps), so a bundle does
not "expire" when its short-lived certificate does. What a signature proves is who signed it:
the certificate's SAN (identity) and OIDC issuer must match one the caller trusts.

Signing needs the sigstore services (Fulcio for a certificate, Rekor for the log entry) and an
OIDC identity token; every failure on that path is turned into an imagelock error with a hint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from sigstore import dsse as sigstore_dsse
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, ClientTrustConfig, IncompatibleEntry, TrustedRoot
from sigstore.oidc import ExpiredIdentity, IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import AnyOf, Identity, VerificationPolicy
from sigstore_models.trustroot.v1 import ClientTrustConfig as _ClientTrustConfigModel
from sigstore_models.trustroot.v1 import SigningConfig as _SigningConfigModel
from sigstore_models.trustroot.v1 import TrustedRoot as _TrustedRootModel

from imagelock.core.errors import FetchError, InputError, UnsupportedInput, VerificationFailed
from imagelock.core.strict_json import loads

TOKEN_ENV = "SIGSTORE_ID_TOKEN"


@dataclass(frozen=True)
class SigstoreIdentity:
    """A keyless signer: the certificate SAN (email, URI such as a CI workflow) and its issuer."""

    identity: str
    issuer: str

    def policy(self) -> Identity:
        return Identity(identity=self.identity, issuer=self.issuer)

    def __str__(self) -> str:
        return f"{self.identity} (issuer {self.issuer})"


@dataclass(frozen=True)
class VerifiedDSSE:
    """The payload of a DSSE bundle that verified, and which trusted identities signed it."""

    payload_type: str
    payload: bytes
    signers: tuple[SigstoreIdentity, ...]


# --- reading ----------------------------------------------------------------------------------


def load_trusted_root(path: str | Path) -> TrustedRoot:
    """A sigstore trusted root JSON file (e.g. the public-good or staging root)."""
    try:
        return TrustedRoot.from_file(str(path))
    except FileNotFoundError as exc:
        raise InputError("trusted root file not found", path=path, hint="check the path") from exc
    except Exception as exc:  # the library raises pydantic, JSON and its own errors here
        raise InputError(
            f"not a sigstore trusted root: {exc}",
            path=path,
            hint="give a trusted_root.json (`sigstore` and `cosign` distribute it through TUF)",
        ) from exc


def _library() -> str:
    try:
        return f"sigstore-python {metadata.version('sigstore')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - imported above, so installed
        return "sigstore-python"


def unsupported_feature(doc: Mapping[str, Any]) -> str | None:
    """What a bundle uses that the sigstore library cannot verify, if anything.

    These bundles are valid by the bundle specification; the library refuses them with errors
    that read like damage ("expected certificate in bundle"), so they are named here first.
    """
    media_type = doc.get("mediaType")
    if media_type not in {t.value for t in Bundle.BundleType}:
        return f"bundle format {str(media_type)[:80]!r}"
    material = doc.get("verificationMaterial")
    if isinstance(material, Mapping):
        if "publicKey" in material and not (
            material.get("certificate") or material.get("x509CertificateChain")
        ):
            return "a bundle signed with a public key (no certificate)"
        entries = material.get("tlogEntries")
        if isinstance(entries, list) and len(entries) != 1:
            return f"a bundle with {len(entries)} transparency log entries (exactly one is verified)"
    envelope = doc.get("dsseEnvelope")
    if isinstance(envelope, Mapping):
        signatures = envelope.get("signatures")
        if isinstance(signatures, list) and len(signatures) != 1:
            return f"a DSSE envelope with {len(signatures)} signatures in a bundle"
    return None


def load_bundle(
    data: bytes | str, *, path: str | Path | None = None, line: int | None = None
) -> Bundle:
    """A sigstore bundle from its JSON; InputError if it is malformed, UnsupportedInput if it
    is valid but uses what the sigstore library cannot verify."""
    doc = loads(data, what="the sigstore bundle", path=path, line=line)
    feature = unsupported_feature(doc) if isinstance(doc, Mapping) else None
    if feature is not None:
        raise UnsupportedInput(
            f"unsupported sigstore bundle: {feature} is not supported by {_library()}",
            path=path, line=line,
            hint="ask the signer for a certificate-based bundle v0.1-v0.3 with one signature and "
            "one log entry, or a DSSE envelope signed with a key",
        )
    try:
        return Bundle.from_json(data)
    except IncompatibleEntry as exc:
        raise UnsupportedInput(
            f"unsupported sigstore bundle: its log entry is not supported by {_library()}: "
            f"{_first_line(exc)}", path=path, line=line,
            hint="the bundle may be valid; this sigstore library cannot check it") from exc
    except Exception as exc:  # InvalidBundle, pydantic and JSON errors: all "malformed"
        raise InputError(
            f"not a valid sigstore bundle: {_first_line(exc)}",
            path=path,
            line=line,
            hint="give the `.sigstore.json` bundle written by a sigstore client",
        ) from exc


def load_bundle_file(path: str | Path) -> Bundle:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the bundle: {exc.strerror}", path=path) from exc
    return load_bundle(data, path=path)


# --- verifying --------------------------------------------------------------------------------


def verify_artifact(
    artifact: bytes,
    bundle: Bundle,
    *,
    trusted_root: TrustedRoot,
    identities: Sequence[SigstoreIdentity],
    path: str | Path | None = None,
) -> tuple[SigstoreIdentity, ...]:
    """Check a message-signature bundle over `artifact`; the trusted identities that signed it."""
    verifier, policy = _verifier(trusted_root, identities, path)
    try:
        verifier.verify_artifact(artifact, bundle, policy)
    except (SigstoreError, ValueError) as exc:
        raise _refused(exc, path) from exc
    return _matching(bundle, identities)


def verify_dsse(
    bundle: Bundle,
    *,
    trusted_root: TrustedRoot,
    identities: Sequence[SigstoreIdentity],
    path: str | Path | None = None,
) -> VerifiedDSSE:
    """Check a DSSE bundle; its payload and the trusted identities that signed it.

    The library does not look at the statement's subjects: the caller must.
    """
    verifier, policy = _verifier(trusted_root, identities, path)
    try:
        payload_type, payload = verifier.verify_dsse(bundle, policy)
    except (SigstoreError, ValueError) as exc:
        raise _refused(exc, path) from exc
    return VerifiedDSSE(payload_type, payload, _matching(bundle, identities))


def is_dsse_bundle(bundle: Bundle) -> bool:
    return bundle._dsse_envelope is not None  # no public accessor in sigstore 4.x


def _verifier(
    trusted_root: TrustedRoot, identities: Sequence[SigstoreIdentity], path: str | Path | None
) -> tuple[Verifier, VerificationPolicy]:
    if not identities:
        raise VerificationFailed(
            "no sigstore identity is trusted, so no keyless signature can be accepted",
            path=path,
            hint="name the expected identity and issuer",
        )
    verifier = Verifier(trusted_root=trusted_root)
    return verifier, AnyOf([i.policy() for i in identities])


def _matching(
    bundle: Bundle, identities: Sequence[SigstoreIdentity]
) -> tuple[SigstoreIdentity, ...]:
    """Which identities the (already verified) certificate satisfies: more than one can."""
    cert = bundle.signing_certificate
    found = []
    for ident in identities:
        try:
            ident.policy().verify(cert)
        except SigstoreError:
            continue
        found.append(ident)
    return tuple(found)


def _refused(exc: Exception, path: str | Path | None) -> VerificationFailed:
    return VerificationFailed(
        f"sigstore bundle refused: {_first_line(exc)}",
        path=path,
        hint="the signer identity or issuer is not the trusted one, the trusted root is not the "
        "one it was signed under, or the bundle or artifact was changed",
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --- signing ----------------------------------------------------------------------------------


def load_trust_config(trusted_root: str | Path, signing_config: str | Path) -> ClientTrustConfig:
    """The trust config for signing: a trusted root plus a signing config (service URLs)."""
    try:
        root = _TrustedRootModel.from_json(Path(trusted_root).read_bytes())
    except Exception as exc:
        raise InputError(
            f"not a sigstore trusted root: {_first_line(exc)}", path=trusted_root
        ) from exc
    try:
        config = _SigningConfigModel.from_json(Path(signing_config).read_bytes())
    except Exception as exc:
        raise InputError(
            f"not a sigstore signing config: {_first_line(exc)}",
            path=signing_config,
            hint="give a signing_config.v0.2.json",
        ) from exc
    return ClientTrustConfig(
        _ClientTrustConfigModel(
            media_type=ClientTrustConfig.ClientTrustConfigType.CONFIG_0_1.value,
            trusted_root=root,
            signing_config=config,
        )
    )


def identity_token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """`$SIGSTORE_ID_TOKEN` (the variable sigstore clients share), or None."""
    environ = os.environ if env is None else env
    return environ.get(TOKEN_ENV) or None


def sign_statement_keyless(
    payload: bytes,
    *,
    identity_token: str | None,
    trust_config: ClientTrustConfig,
    timeout: float | None = None,
) -> str:
    """Sign an in-toto statement (canonical JSON bytes) keyless; the bundle JSON.

    Contacts Fulcio and Rekor from the trust config's signing config. `timeout` (default
    `$IMAGELOCK_HTTP_TIMEOUT` or 30 s) bounds each request so an unreachable service fails
    instead of hanging.
    """
    token = _identity(identity_token)
    try:
        statement = sigstore_dsse.Statement(payload)
    except SigstoreError as exc:
        raise InputError(f"not an in-toto statement: {_first_line(exc)}") from exc
    try:
        context = SigningContext.from_trust_config(trust_config)
    except SigstoreError as exc:
        raise InputError(
            f"unusable sigstore signing config: {_first_line(exc)}",
            hint="the signing config lists no valid Fulcio CA or Rekor log for today",
        ) from exc
    seconds = (
        timeout if timeout is not None else float(os.environ.get("IMAGELOCK_HTTP_TIMEOUT", "30"))
    )
    try:
        with _bounded(context, seconds), context.signer(token, cache=True) as signer:
            bundle = signer.sign_dsse(statement)
    except ExpiredIdentity as exc:
        raise InputError(
            "the identity token expired before signing finished",
            hint=f"get a fresh token and set {TOKEN_ENV}",
        ) from exc
    except requests.RequestException as exc:
        raise FetchError(
            f"cannot reach the sigstore services: {_first_line(exc)}",
            hint="check the network and the URLs in the signing config, or sign with a key",
        ) from exc
    except Exception as exc:
        # Fulcio/Rekor client errors are not part of sigstore's public error hierarchy.
        if type(exc).__module__.startswith("sigstore"):
            raise FetchError(
                f"the sigstore services refused to sign: {_first_line(exc)}",
                hint="check that the token is for the sigstore audience and not expired",
            ) from exc
        raise
    return bundle.to_json()


def _identity(raw: str | None) -> IdentityToken:
    if not raw or not raw.strip():
        raise InputError(
            "keyless signing needs an OIDC identity token and none was given",
            hint=f"set {TOKEN_ENV} (in CI, request an id-token for the `sigstore` audience)",
        )
    try:
        return IdentityToken(raw.strip())
    except SigstoreError as exc:
        raise InputError(
            f"the identity token is unusable: {_first_line(exc)}",
            hint="give a current OIDC token (a JWT) issued for the `sigstore` audience",
        ) from exc


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that adds a timeout to requests sent without one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


@contextmanager
def _bounded(context: SigningContext, seconds: float) -> Iterator[None]:
    """Give the Fulcio and Rekor sessions a timeout: sigstore 4.x sends without one.

    Reaches into the clients' sessions; if a later sigstore renames them, signing still works,
    just without our bound (their own defaults apply).
    """
    sessions: list[requests.Session] = []
    for client, attr in (
        (getattr(context, "_fulcio", None), "session"),
        (getattr(context, "_rekor", None), "_session"),
    ):
        session = getattr(client, attr, None)
        if isinstance(session, requests.Session):
            sessions.append(session)
    for s in sessions:
        adapter = _TimeoutAdapter(seconds)
        s.mount("https://", adapter)
        s.mount("http://", adapter)
    yield
