"""Sigstore bundles verified offline from real fixtures, and keyless signing up to the network."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from helpers import SIGSTORE_FIXTURES
from imagelock.core.errors import FetchError, InputError, VerificationFailed
from imagelock.formats.attestation import PROVENANCE_PREDICATE_TYPE
from imagelock.trust.policy import evaluate, load_policy
from imagelock.trust.sigstore_bundle import (
    SigstoreIdentity,
    load_bundle,
    load_bundle_file,
    load_trust_config,
    load_trusted_root,
    sign_statement_keyless,
    verify_artifact,
    verify_dsse,
)
from imagelock.trust.statement import names_subject, parse_statement
from trust_helpers import NOW, World

TRUST = SIGSTORE_FIXTURES / "sigstore-python" / "trust"
PRODUCTION = TRUST / "production.trusted_root.json"
STAGING = TRUST / "staging.trusted_root.json"
ASSETS = SIGSTORE_FIXTURES / "sigstore-python" / "test" / "assets"
CONFORMANCE = SIGSTORE_FIXTURES / "sigstore-conformance" / "test" / "assets" / "bundle-verify"

GITHUB = "https://token.actions.githubusercontent.com"
GITHUB_OAUTH = "https://github.com/login/oauth"
BEACON = SigstoreIdentity(
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    GITHUB,
)
A_TXT_SHA256 = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"


@dataclass(frozen=True)
class Case:
    bundle: Path
    root: Path
    signer: SigstoreIdentity
    artifact: Path | None = None  # None: a DSSE bundle

    def __str__(self) -> str:
        return self.bundle.name


POSITIVE = [
    Case(CONFORMANCE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json", PRODUCTION, BEACON),
    Case(ASSETS / "a.dsse.staging-rekor-v2.txt.sigstore.json", STAGING, BEACON),
    Case(
        ASSETS / "bundle_v3_github.whl.sigstore",
        PRODUCTION,
        SigstoreIdentity(
            "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml"
            "@refs/tags/v0.1.2",
            GITHUB,
        ),
        ASSETS / "bundle_v3_github.whl",
    ),
    Case(
        ASSETS / "bundle_v3.txt.sigstore",
        STAGING,
        SigstoreIdentity("william@yossarian.net", GITHUB_OAUTH),
        ASSETS / "bundle_v3.txt",
    ),
    Case(
        ASSETS / "staging-rekor-v2.txt.sigstore.json",
        STAGING,
        SigstoreIdentity("jku@goto.fi", GITHUB_OAUTH),
        ASSETS / "staging-rekor-v2.txt",
    ),
]


def _verify(case: Case, identities: list[SigstoreIdentity]) -> tuple[SigstoreIdentity, ...]:
    root = load_trusted_root(case.root)
    bundle = load_bundle_file(case.bundle)
    if case.artifact is None:
        return verify_dsse(bundle, trusted_root=root, identities=identities).signers
    return verify_artifact(
        case.artifact.read_bytes(), bundle, trusted_root=root, identities=identities
    )


def test_the_sigstore_fixtures_are_in_the_repository() -> None:
    # Without them every test below would be vacuous; fail loudly rather than skip.
    assert PRODUCTION.is_file(), f"missing {PRODUCTION}: tests/fixtures/sigstore/ is committed"


@pytest.mark.parametrize("case", POSITIVE, ids=str)
def test_real_bundle_verifies_offline_with_its_identity(case: Case) -> None:
    assert _verify(case, [case.signer]) == (case.signer,)


@pytest.mark.parametrize("case", POSITIVE, ids=str)
def test_real_bundle_is_refused_for_another_identity(case: Case) -> None:
    other = SigstoreIdentity("someone-else@example.com", case.signer.issuer)
    with pytest.raises(VerificationFailed, match="refused"):
        _verify(case, [other])


@pytest.mark.parametrize("case", POSITIVE, ids=str)
def test_real_bundle_is_refused_for_another_issuer(case: Case) -> None:
    other = SigstoreIdentity(case.signer.identity, "https://accounts.google.com")
    with pytest.raises(VerificationFailed, match="refused"):
        _verify(case, [other])


@pytest.mark.parametrize("case", POSITIVE, ids=str)
def test_only_the_matching_identity_is_reported_among_several(case: Case) -> None:
    decoy = SigstoreIdentity("decoy@example.com", case.signer.issuer)
    assert _verify(case, [decoy, case.signer]) == (case.signer,)


@pytest.mark.parametrize("case", POSITIVE, ids=str)
def test_real_bundle_is_refused_under_the_other_trusted_root(case: Case) -> None:
    other_root = STAGING if case.root == PRODUCTION else PRODUCTION
    with pytest.raises(VerificationFailed):
        _verify(Case(case.bundle, other_root, case.signer, case.artifact), [case.signer])


@pytest.mark.parametrize("case", [c for c in POSITIVE if c.artifact], ids=str)
def test_artifact_bundle_is_refused_for_a_changed_artifact(case: Case) -> None:
    assert case.artifact is not None
    bundle = load_bundle_file(case.bundle)
    with pytest.raises(VerificationFailed):
        verify_artifact(
            case.artifact.read_bytes() + b"\n",
            bundle,
            trusted_root=load_trusted_root(case.root),
            identities=[case.signer],
        )


@pytest.mark.parametrize("case", [c for c in POSITIVE if c.artifact is None], ids=str)
def test_dsse_bundle_yields_the_in_toto_statement_about_a_txt(case: Case) -> None:
    got = verify_dsse(
        load_bundle_file(case.bundle),
        trusted_root=load_trusted_root(case.root),
        identities=[case.signer],
    )
    assert got.payload_type == "application/vnd.in-toto+json"
    statement = parse_statement(got.payload)
    assert statement.predicate_type == PROVENANCE_PREDICATE_TYPE
    assert statement.subject[0].name == "a.txt"
    # The library does not compare subjects; we do, against the real file's digest.
    a_txt = (CONFORMANCE / "a.txt").read_bytes()
    assert hashlib.sha256(a_txt).hexdigest() == A_TXT_SHA256
    assert names_subject(statement, A_TXT_SHA256)
    assert not names_subject(statement, "00" * 32)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("dsse-invalid-sig_fail", "invalid signature"),
        ("dsse-mismatch-sig_fail", "log entry signatures do not match"),
        ("dsse-mismatch-envelope_fail", "payload hash does not match"),
    ],
)
def test_negative_dsse_fixture_is_refused_for_its_reason(name: str, reason: str) -> None:
    bundle = load_bundle_file(CONFORMANCE / name / "bundle.sigstore.json")
    with pytest.raises(VerificationFailed, match=reason):
        verify_dsse(bundle, trusted_root=load_trusted_root(PRODUCTION), identities=[BEACON])


def test_cve_2022_36056_bundle_is_refused() -> None:
    bundle = load_bundle_file(ASSETS / "bundle_cve_2022_36056.txt.sigstore")
    with pytest.raises(VerificationFailed, match="inconsistent"):
        verify_artifact(
            (ASSETS / "bundle_cve_2022_36056.txt").read_bytes(),
            bundle,
            trusted_root=load_trusted_root(STAGING),
            identities=[SigstoreIdentity("william@yossarian.net", GITHUB_OAUTH)],
        )


def test_no_trusted_identity_accepts_nothing() -> None:
    case = POSITIVE[0]
    with pytest.raises(VerificationFailed, match="no sigstore identity"):
        _verify(case, [])


def test_malformed_bundle_is_an_input_error(tmp_path: Path) -> None:
    doc = json.loads(POSITIVE[0].bundle.read_text())
    del doc["verificationMaterial"]
    with pytest.raises(InputError, match="not a valid sigstore bundle"):
        load_bundle(json.dumps(doc), path="x.sigstore.json")
    with pytest.raises(InputError):
        load_bundle(b"{", path="x.sigstore.json")


def test_malformed_trusted_root_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "root.json"
    bad.write_text('{"mediaType": "nope"}')
    with pytest.raises(InputError, match="trusted root") as err:
        load_trusted_root(bad)
    assert err.value.path == str(bad)
    with pytest.raises(InputError, match="not found"):
        load_trusted_root(tmp_path / "absent.json")


# --- in a policy ------------------------------------------------------------------------------


def _sigstore_policy(tmp_path: Path, identity: SigstoreIdentity) -> Path:
    World(tmp_path)  # writes the rebuilder keys the policy names
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        f"trusted_root: {PRODUCTION}\n"
        "vendors:\n"
        "  - name: beacon\n"
        f"    sigstore: {{identity: '{identity.identity}', issuer: '{identity.issuer}'}}\n"
        "rebuilders:\n"
        "  threshold: 0\n"
    )
    return policy


def test_policy_reads_a_sigstore_bundle_and_names_its_trusted_signer(tmp_path: Path) -> None:
    policy = load_policy(_sigstore_policy(tmp_path, BEACON))
    result = evaluate(
        policy,
        subject_name="a.txt",
        manifest_digest="sha256:" + A_TXT_SHA256,
        attestations=[POSITIVE[0].bundle],
        now=NOW,
    )
    (note,) = result.attestations
    assert note.signers == ["beacon"]
    assert note.predicate_type == PROVENANCE_PREDICATE_TYPE
    # Signed by the trusted identity, but it is another build system's provenance: it names no
    # imagelock lock, so it cannot count, and the policy fails closed.
    assert not note.counted and "not imagelock's" in note.reason
    assert not result.passed


def test_policy_refuses_a_sigstore_bundle_from_an_untrusted_identity(tmp_path: Path) -> None:
    other = SigstoreIdentity(
        "https://github.com/acme/app/.github/workflows/x.yml@refs/heads/main", GITHUB
    )
    result = evaluate(
        load_policy(_sigstore_policy(tmp_path, other)),
        subject_name="a.txt",
        manifest_digest="sha256:" + A_TXT_SHA256,
        attestations=[POSITIVE[0].bundle],
        now=NOW,
    )
    (note,) = result.attestations
    assert not note.counted and note.signers == [] and "refused" in note.reason


# --- keyless signing, up to the network boundary ---------------------------------------------


def _token(**overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "https://issuer.example",
        "sub": "ci@example.test",
        "aud": "sigstore",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return jwt.encode(claims, "test-secret-that-is-long-enough-for-hs256", algorithm="HS256")


def _trust_config_pointing_at(tmp_path: Path, base_url: str) -> Path:
    doc = json.loads((TRUST / "staging.signing_config.v0.2.json").read_text())
    for section in ("caUrls", "rekorTlogUrls", "tsaUrls", "oidcUrls"):
        for service in doc.get(section, []):
            service["url"] = base_url
    path = tmp_path / "signing_config.json"
    path.write_text(json.dumps(doc))
    return path


STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/p",
        "predicate": {},
    }
).encode()


@pytest.mark.parametrize("token", [None, "", "   "])
def test_keyless_signing_without_a_token_says_how_to_get_one(
    tmp_path: Path, token: str | None
) -> None:
    config = load_trust_config(STAGING, _trust_config_pointing_at(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(InputError, match="identity token") as err:
        sign_statement_keyless(STATEMENT, identity_token=token, trust_config=config)
    assert "SIGSTORE_ID_TOKEN" in (err.value.hint or "")


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", _token(aud="someone-else"), _token(exp=int(time.time()) - 3600)],
    ids=["garbage", "wrong-audience", "expired"],
)
def test_keyless_signing_with_a_bad_token_is_an_input_error(tmp_path: Path, token: str) -> None:
    config = load_trust_config(STAGING, _trust_config_pointing_at(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(InputError, match="identity token is unusable"):
        sign_statement_keyless(STATEMENT, identity_token=token, trust_config=config)


def test_keyless_signing_of_a_non_statement_is_an_input_error(tmp_path: Path) -> None:
    config = load_trust_config(STAGING, _trust_config_pointing_at(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(InputError, match="not an in-toto statement"):
        sign_statement_keyless(b"{}", identity_token=_token(), trust_config=config)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_sigstore_services_are_a_fetch_error_not_a_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    config = load_trust_config(STAGING, _trust_config_pointing_at(tmp_path, url))
    with pytest.raises(FetchError, match="cannot reach the sigstore services") as err:
        sign_statement_keyless(STATEMENT, identity_token=_token(), trust_config=config, timeout=2)
    assert err.value.exit_code == 3 and err.value.hint


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers: the shape of a hung service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_service_that_never_answers_times_out_instead_of_hanging(
    tmp_path: Path, silent_server: str
) -> None:
    config = load_trust_config(STAGING, _trust_config_pointing_at(tmp_path, silent_server))
    outcome: list[BaseException] = []

    def sign() -> None:
        try:
            sign_statement_keyless(
                STATEMENT, identity_token=_token(), trust_config=config, timeout=0.5
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            outcome.append(exc)

    # In a thread, so a regression fails this test instead of hanging the whole run.
    worker = threading.Thread(target=sign, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "signing hung on a silent service"
    assert len(outcome) == 1 and isinstance(outcome[0], FetchError)
    assert "timed out" in outcome[0].message


def test_malformed_signing_config_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "signing.json"
    bad.write_text("[]")
    with pytest.raises(InputError, match="signing config"):
        load_trust_config(STAGING, bad)


# --- what the library cannot verify is named as unsupported, not as damage (issue 12) ---------


def _variant(change: str) -> dict[str, object]:
    doc = json.loads(POSITIVE[0].bundle.read_text())
    material = doc["verificationMaterial"]
    if change == "public-key":
        del material["certificate"]
        material["publicKey"] = {"hint": "a-key-id"}
    elif change == "unknown-version":
        doc["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.9+json"
    elif change == "two-signatures":
        doc["dsseEnvelope"]["signatures"] *= 2
    elif change == "no-log-entry":
        material["tlogEntries"] = []
    elif change == "log-entry-version":
        material["tlogEntries"][0]["kindVersion"]["version"] = "0.0.9"
    return doc


UNSUPPORTED = {
    "public-key": "signed with a public key",
    "unknown-version": "bundle format",
    "two-signatures": "2 signatures",
    "no-log-entry": "0 transparency log entries",
    "log-entry-version": "log entry",
}


@pytest.mark.parametrize("change", sorted(UNSUPPORTED))
def test_a_bundle_the_library_cannot_verify_is_named_unsupported(change: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_bundle(json.dumps(_variant(change)), path="x.sigstore.json")
    assert err.value.message.startswith("unsupported sigstore bundle")
    assert UNSUPPORTED[change] in err.value.message and "sigstore-python" in err.value.message
    # In verify, it counts for nothing with that reason; it does not abort the verification.
    bundle = tmp_path / "x.sigstore.json"
    bundle.write_text(json.dumps(_variant(change)))
    result = evaluate(load_policy(_sigstore_policy(tmp_path, BEACON)), subject_name="a.txt",
                      manifest_digest="sha256:" + A_TXT_SHA256, attestations=[bundle], now=NOW)
    (note,) = result.attestations
    assert not note.counted and note.reason.startswith("unsupported sigstore bundle"), note.reason


def test_every_positive_case_is_still_supported() -> None:
    from imagelock.trust.sigstore_bundle import unsupported_feature

    for case in POSITIVE:
        assert unsupported_feature(json.loads(case.bundle.read_text())) is None, case
