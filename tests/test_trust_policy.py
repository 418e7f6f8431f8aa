"""Policy evaluation: k-of-n rebuilders, fail-closed refusals with reasons, malformed inputs."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from imagelock.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_VERIFICATION_FAILED,
    InputError,
    VerificationFailed,
)
from imagelock.formats.attestation import VSA_PREDICATE_TYPE
from imagelock.formats.policy import AttestationNote, PolicyResult
from imagelock.trust.dsse import envelope_json, sign_envelope
from imagelock.trust.keys import generate
from imagelock.trust.policy import (
    AllOf,
    AttestationSource,
    Evidence,
    evaluate,
    load_policy,
    require_pass,
)
from imagelock.trust.statement import make_statement, statement_bytes
from trust_helpers import (
    IMAGE,
    MANIFEST,
    NOW,
    OTHER_LOCK,
    OTHER_MANIFEST,
    World,
    provenance,
    vsa,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def run(world: World, *files: Path | AttestationSource, policy: Path | None = None) -> PolicyResult:
    return evaluate(
        load_policy(policy or world.policy()),
        subject_name=IMAGE,
        manifest_digest=MANIFEST,
        attestations=list(files),
        now=NOW,
    )


def rule(result: PolicyResult, name: str) -> tuple[bool, str]:
    (o,) = [o for o in result.rules if o.rule == name]
    return o.passed, o.reason


def note(result: PolicyResult, source: Path) -> AttestationNote:
    (n,) = [n for n in result.attestations if n.source == str(source)]
    return n


def good_set(world: World) -> list[Path]:
    return [
        world.sign(provenance(), "vendor"),
        world.sign(vsa(), "rb-alpha"),
        world.sign(vsa(), "rb-beta"),
    ]


# --- passing ----------------------------------------------------------------------------------


def test_vendor_provenance_and_two_of_three_rebuilders_pass(world: World) -> None:
    result = run(world, *good_set(world))
    assert result.passed, result.rules
    assert rule(result, "rebuilder-threshold") == (
        True,
        "2 of 2 required distinct rebuilders reproduced the image (alpha, beta)",
    )
    assert all(n.counted for n in result.attestations)
    require_pass(result)  # does not raise


def test_attestations_in_one_intoto_jsonl_file_are_all_read(world: World) -> None:
    lines = [p.read_bytes() for p in good_set(world)]
    bundle = world.root / "app.intoto.jsonl"
    bundle.write_bytes(b"\n".join(lines) + b"\n")
    result = run(world, bundle)
    assert result.passed
    assert [n.source for n in result.attestations] == [f"{bundle}:1", f"{bundle}:2", f"{bundle}:3"]


def test_attestations_from_a_registry_are_read_from_bytes(world: World) -> None:
    sources = [
        AttestationSource(f"referrer-{i}", p.read_bytes()) for i, p in enumerate(good_set(world))
    ]
    assert run(world, *sources).passed


# --- the threshold ----------------------------------------------------------------------------


def test_threshold_not_met_is_refused_with_the_count(world: World) -> None:
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"))
    assert not result.passed
    assert rule(result, "rebuilder-threshold") == (
        False,
        "1 of 2 required distinct rebuilders reproduced the image (alpha)",
    )
    with pytest.raises(VerificationFailed, match="rebuilder-threshold") as err:
        require_pass(result)
    assert err.value.exit_code == EXIT_VERIFICATION_FAILED


def test_the_same_rebuilder_is_counted_once_however_many_vsas_it_signed(world: World) -> None:
    result = run(
        world,
        world.sign(provenance(), "vendor"),
        world.sign(vsa(), "rb-alpha"),
        world.sign(vsa(when=NOW - timedelta(hours=1)), "rb-alpha"),
        world.sign(vsa(), "rb-alpha", "rb-alpha"),
    )
    assert not result.passed
    assert rule(result, "rebuilder-threshold")[1].startswith("1 of 2")


def test_two_keys_of_one_rebuilder_count_as_one(world: World) -> None:
    world.add_key("rb-alpha-new", generate())
    policy = world.policy(threshold=2, extra="    - {name: alpha, key: rb-alpha-new.pub}\n")
    result = run(
        world,
        world.sign(provenance(), "vendor"),
        world.sign(vsa(), "rb-alpha"),
        world.sign(vsa(), "rb-alpha-new"),
        policy=policy,
    )
    assert rule(result, "rebuilder-threshold") == (
        False,
        "1 of 2 required distinct rebuilders reproduced the image (alpha)",
    )


def test_one_envelope_cosigned_by_two_rebuilders_counts_both(world: World) -> None:
    result = run(
        world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha", "rb-gamma")
    )
    assert result.passed
    assert rule(result, "rebuilder-threshold")[1].endswith("(alpha, gamma)")


# --- refusals, each with its reason -----------------------------------------------------------


def test_an_untrusted_key_is_never_counted(world: World) -> None:
    stranger = world.sign(vsa(), "stranger")
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), stranger)
    assert not result.passed
    n = note(result, stranger)
    assert not n.counted and n.signers == []
    assert n.reason == "not signed by any key the policy trusts"


def test_a_stranger_cannot_impersonate_a_trusted_keyid(world: World) -> None:
    doc = json.loads(world.sign(vsa(), "stranger").read_bytes())
    doc["signatures"][0]["keyid"] = world.keys["rb-beta"].keyid
    forged = world.root / "forged.json"
    forged.write_text(json.dumps(doc))
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), forged)
    assert not result.passed
    assert "does not verify" in note(result, forged).reason


def test_an_attestation_about_another_image_is_not_counted(world: World) -> None:
    other = world.sign(vsa(manifest=OTHER_MANIFEST), "rb-beta")
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), other)
    assert not result.passed
    n = note(result, other)
    assert not n.counted and n.signers == ["beta"]
    assert n.reason == f"it is about {OTHER_MANIFEST}, not {MANIFEST}"


def test_an_unknown_predicate_type_is_not_counted(world: World) -> None:
    odd = make_statement(IMAGE, MANIFEST, "https://example.com/scan/v1", {"ok": True})
    path = world.sign(odd, "rb-beta")
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), path)
    assert not result.passed
    n = note(result, path)
    assert not n.counted
    assert n.reason.startswith("unknown predicate type 'https://example.com/scan/v1'")


def test_a_vsa_signed_by_the_vendor_is_not_a_rebuild(world: World) -> None:
    self_vouched = world.sign(vsa(), "vendor")
    result = run(
        world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), self_vouched
    )
    assert not result.passed
    assert (
        note(result, self_vouched).reason == "a VSA counts only when a trusted rebuilder signed it"
    )


def test_provenance_signed_only_by_a_rebuilder_is_not_counted(world: World) -> None:
    path = world.sign(provenance(), "rb-alpha")
    result = run(world, path, world.sign(vsa(), "rb-alpha"), world.sign(vsa(), "rb-beta"))
    assert not result.passed
    assert rule(result, f"require:{provenance().predicate_type}")[0] is False
    assert "trusted vendor" in note(result, path).reason


def _tamper(path: Path, *, payload: bool) -> Path:
    doc = json.loads(path.read_bytes())
    if payload:
        statement = json.loads(base64.b64decode(doc["payload"]))
        statement["predicate"]["verificationResult"] = "PASSED"
        statement["subject"][0]["digest"]["sha256"] = MANIFEST[7:]
        doc["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    else:
        sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
        sig[-1] ^= 0x01
        doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    out = path.with_suffix(".tampered.json")
    out.write_text(json.dumps(doc))
    return out


def test_a_tampered_payload_is_refused(world: World) -> None:
    # A rebuilder signed a VSA for another image; someone edits the subject to this one.
    tampered = _tamper(world.sign(vsa(manifest=OTHER_MANIFEST), "rb-beta"), payload=True)
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), tampered)
    assert not result.passed
    n = note(result, tampered)
    assert not n.counted
    assert "payload or the signature was modified" in n.reason


def test_a_tampered_signature_is_refused(world: World) -> None:
    tampered = _tamper(world.sign(vsa(), "rb-beta"), payload=False)
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), tampered)
    assert not result.passed
    assert "does not verify" in note(result, tampered).reason


def test_an_attestation_older_than_max_age_is_refused(world: World) -> None:
    policy = world.policy(extra="max_age: 7d\n")
    old = world.sign(vsa(when=NOW - timedelta(days=8)), "rb-beta")
    result = run(
        world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), old, policy=policy
    )
    assert not result.passed
    n = note(result, old)
    assert not n.counted
    assert n.reason == "expired: 8.0 days old, the policy allows 7.0 days"
    # The same attestation, a day younger, is fine.
    fresh = world.sign(vsa(when=NOW - timedelta(days=6)), "rb-beta")
    assert run(
        world,
        world.sign(provenance(), "vendor"),
        world.sign(vsa(), "rb-alpha"),
        fresh,
        policy=policy,
    ).passed


def test_an_attestation_from_the_future_is_refused(world: World) -> None:
    future = world.sign(vsa(when=NOW + timedelta(days=1)), "rb-beta")
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), future)
    assert not result.passed
    assert "in the future" in note(result, future).reason


def test_a_vsa_that_says_failed_vetoes_even_when_the_threshold_is_met(world: World) -> None:
    failed = world.sign(vsa(match=None), "rb-gamma")
    result = run(world, *good_set(world), failed)
    assert not result.passed
    assert rule(result, "rebuilder-threshold")[0] is True
    assert rule(result, "no-failed-rebuild") == (False, "trusted rebuilder(s) gamma report FAILED")
    assert note(result, failed).reason == "counted: the rebuilder reports FAILED"


def test_provenance_lock_that_differs_from_the_rebuilders_lock_is_refused(world: World) -> None:
    result = run(
        world,
        world.sign(provenance(lock=OTHER_LOCK), "vendor"),
        world.sign(vsa(), "rb-alpha"),
        world.sign(vsa(), "rb-beta"),
    )
    assert not result.passed
    passed, reason = rule(result, "lock-agreement")
    assert not passed
    assert "provenance by acme" in reason and "VSA by alpha" in reason and "VSA by beta" in reason
    assert OTHER_LOCK[:16] in reason


def test_content_only_match_counts_only_when_the_policy_accepts_it(world: World) -> None:
    files = [
        world.sign(provenance(), "vendor"),
        world.sign(vsa(), "rb-alpha"),
        world.sign(vsa(match="content"), "rb-beta"),
    ]
    strict = run(world, *files)
    assert not strict.passed
    assert "accept_reproduced_content" in note(strict, files[2]).reason
    lenient = world.policy(extra="  accept_reproduced_content: true\n")
    assert run(world, *files, policy=lenient).passed


def test_a_pinned_verifier_id_must_match(world: World) -> None:
    policy = world.policy(
        threshold=1,
        body=(
            "version: 1\nvendors: [{name: acme, key: vendor.pub}]\n"
            "rebuilders:\n  threshold: 1\n  trusted:\n"
            "    - {name: alpha, key: rb-alpha.pub, verifier_id: 'https://rebuild.alpha.example/v1'}\n"
        ),
    )
    wrong = world.sign(vsa(), "rb-alpha")
    result = run(world, world.sign(provenance(), "vendor"), wrong, policy=policy)
    assert not result.passed
    assert "verifier.id" in note(result, wrong).reason
    right = world.sign(vsa(verifier_id="https://rebuild.alpha.example/v1"), "rb-alpha")
    assert run(world, world.sign(provenance(), "vendor"), right, policy=policy).passed


def test_no_attestations_at_all_is_a_refusal_with_every_reason(world: World) -> None:
    result = run(world)
    assert not result.passed
    assert [o.rule for o in result.rules if not o.passed] == [
        "require:https://slsa.dev/provenance/v1",
        "rebuilder-threshold",
    ]


def test_a_policy_without_rules_accepts_nothing() -> None:
    (outcome,) = AllOf(()).check(Evidence(()))
    assert not outcome.passed


def test_vsa_can_be_a_required_predicate_type(world: World) -> None:
    policy = world.policy(
        threshold=1,
        extra=f"required_predicate_types: ['{VSA_PREDICATE_TYPE}']\n",
    )
    # No provenance needed by this policy; one rebuild is.
    assert run(world, world.sign(vsa(), "rb-gamma"), policy=policy).passed


# --- malformed inputs: exit 2, naming file and field ------------------------------------------


MALFORMED_ENVELOPES = [
    # Valid per the DSSE spec, signed by no one.
    ({"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []},
     "no signatures"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
      "signatures": [{"keyid": None, "sig": "AA=="}]}, "not signed by any key"),
    # Malformed: each is named, none aborts the verification.
    ({"payload": "e30=", "signatures": [{"sig": "AA=="}], "payloadType": 3}, "payloadType"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "%%%",
      "signatures": [{"sig": "AA=="}]}, "payload: not valid base64"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
      "signatures": [{"sig": "AA==", "keyid": 7}]}, "signatures[0].keyid"),
]


@pytest.mark.parametrize(("doc", "reason"), MALFORMED_ENVELOPES)
def test_a_malformed_envelope_counts_for_nothing_and_the_others_still_count(
    world: World, doc: dict[str, object], reason: str
) -> None:
    bad = world.root / "bad.intoto.json"
    bad.write_text(json.dumps(doc))
    result = run(world, *good_set(world), bad)
    assert result.passed, result.rules
    n = note(result, bad)
    assert not n.counted and reason in n.reason, n.reason


def test_a_raw_r_s_ecdsa_signature_counts_like_a_der_one(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    env = json.loads(world.sign(provenance(), "vendor").read_bytes())
    r, s = decode_dss_signature(base64.b64decode(env["signatures"][0]["sig"]))
    env["signatures"][0]["sig"] = base64.b64encode(
        r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    raw = world.root / "raw.intoto.json"
    raw.write_text(json.dumps(env))
    result = run(world, raw, world.sign(vsa(), "rb-alpha"), world.sign(vsa(), "rb-beta"))
    assert note(result, raw).counted and result.passed


def test_a_malformed_line_of_a_jsonl_file_counts_for_nothing(world: World) -> None:
    good = b"\n".join(p.read_bytes() for p in good_set(world))
    mixed = world.root / "all.intoto.jsonl"
    mixed.write_bytes(good + b'\n{"payloadType": "x", "payload": "e30=", "signatures": []}\n')
    result = run(world, mixed)
    assert result.passed
    (last,) = [n for n in result.attestations if n.source == f"{mixed}:4"]
    assert not last.counted and "no signatures" in last.reason


def test_a_broken_line_in_jsonl_names_the_line(world: World) -> None:
    bad = world.root / "app.intoto.jsonl"
    bad.write_bytes(world.sign(provenance(), "vendor").read_bytes() + b"\n{oops\n")
    with pytest.raises(InputError) as err:
        run(world, bad)
    assert err.value.path == str(bad) and err.value.line == 2


def test_a_file_that_is_neither_envelope_nor_bundle_is_an_input_error(world: World) -> None:
    bad = world.root / "statement.json"
    bad.write_bytes(statement_bytes(vsa()))  # an unsigned statement is not an attestation
    with pytest.raises(InputError, match="neither a DSSE envelope nor a sigstore bundle"):
        run(world, bad)


def test_a_missing_attestation_file_is_an_input_error(world: World) -> None:
    with pytest.raises(InputError, match="cannot read"):
        run(world, world.root / "absent.json")


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("  treshold: 1\n", "rebuilders.treshold", "unknown key"),
        ("max_age: soon\n", "max_age", "not a duration"),
        (
            "required_predicate_types: ['https://example.com/x']\n",
            "required_predicate_types",
            "unknown predicate type",
        ),
        ("trusted_root: root.json\n", "trusted_root", "not found"),
    ],
)
def test_malformed_policy_is_an_input_error_naming_the_field(
    world: World, extra: str, field: str, message: str
) -> None:
    policy = world.policy(extra=extra)
    with pytest.raises(InputError, match=message) as err:
        load_policy(policy)
    assert err.value.field == field
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_policy_threshold_that_can_never_be_met_is_refused(world: World) -> None:
    with pytest.raises(InputError, match="can never be met") as err:
        load_policy(world.policy(threshold=4))
    assert err.value.field == "rebuilders"


def test_policy_signer_needs_exactly_one_kind_of_key(world: World) -> None:
    body = (
        "version: 1\nvendors: [{name: acme, keyid: '"
        + "a" * 64
        + "'}]\nrebuilders: {threshold: 0}\n"
    )
    with pytest.raises(InputError, match="a keyid alone cannot check a signature") as err:
        load_policy(world.policy(body=body))
    assert err.value.field == "vendors[0]"


def test_policy_keyid_pin_catches_a_swapped_key_file(world: World) -> None:
    pin = world.keys["vendor"].keyid
    body = (
        "version: 1\nvendors: [{name: acme, key: stranger.pub, keyid: '" + pin + "'}]\n"
        "rebuilders: {threshold: 0}\n"
    )
    with pytest.raises(InputError, match="not the pinned") as err:
        load_policy(world.policy(body=body))
    assert err.value.field == "vendors[0].keyid"
    ok = body.replace("stranger.pub", "vendor.pub")
    assert load_policy(world.policy(body=ok)).signers[0].name == "acme"


def test_one_key_may_not_pose_as_two_rebuilders(world: World) -> None:
    policy = world.policy(threshold=2, extra="    - {name: delta, key: rb-alpha.pub}\n")
    with pytest.raises(InputError, match="counted twice"):
        load_policy(policy)


def test_policy_with_an_unreadable_key_names_the_field(world: World) -> None:
    body = "version: 1\nvendors: [{name: acme, key: nope.pub}]\nrebuilders: {threshold: 0}\n"
    with pytest.raises(InputError) as err:
        load_policy(world.policy(body=body))
    assert err.value.field == "vendors[0].key"


def test_policy_yaml_syntax_error_names_the_line(world: World) -> None:
    with pytest.raises(InputError, match="YAML") as err:
        load_policy(world.policy(body="version: 1\nvendors: [\n"))
    assert err.value.line is not None


def test_inline_pem_key_works(world: World) -> None:
    pem = world.keys["vendor"].public.pem().decode()
    indented = "".join(f"      {line}\n" for line in pem.splitlines())
    body = (
        "version: 1\nvendors:\n  - name: acme\n    pem: |\n"
        + indented
        + "rebuilders: {threshold: 0}\n"
    )
    result = run(world, world.sign(provenance(), "vendor"), policy=world.policy(body=body))
    assert result.passed


def test_result_serialises_for_json_output(world: World) -> None:
    result = run(world, *good_set(world))
    doc = json.loads(result.model_dump_json())
    assert doc["passed"] is True and doc["subject_digest"] == MANIFEST
    assert {"rule", "passed", "reason"} == set(doc["rules"][0])


def test_envelope_with_a_foreign_payload_type_is_not_counted(world: World) -> None:
    env = sign_envelope(statement_bytes(vsa()), [world.keys["rb-beta"]], payload_type="text/plain")
    path = world.root / "plain.json"
    path.write_bytes(envelope_json(env))
    result = run(world, world.sign(provenance(), "vendor"), world.sign(vsa(), "rb-alpha"), path)
    assert not result.passed
    assert "not an in-toto statement" in note(result, path).reason


# --- issue 12: what other tools write is read as the specs say, and ambiguity is refused -------


def _sign_raw(world: World, payload: bytes, signer: str, name: str) -> Path:
    path = world.root / name
    path.write_bytes(envelope_json(sign_envelope(payload, [world.keys[signer]])))
    return path


def _doc(statement: Any) -> dict[str, Any]:
    return json.loads(statement_bytes(statement))


def test_a_signed_statement_with_a_duplicate_key_counts_for_nothing(world: World) -> None:
    text = statement_bytes(vsa(match=None)).decode()  # verificationResult FAILED
    assert '"verificationResult":"FAILED"' in text
    # Python's json keeps the last: this would be read as PASSED, and by another tool as FAILED.
    forged = text.replace('"verificationResult":"FAILED"',
                          '"verificationResult":"FAILED","verificationResult":"PASSED"')
    forged = forged.replace('"verifiedLevels":["FAILED"]',
                            '"verifiedLevels":["SLSA_BUILD_LEVEL_1",'
                            '"IMAGELOCK_REPRODUCED_DISTRIBUTION"]')
    dup = _sign_raw(world, forged.encode(), "rb-gamma", "dup.intoto.json")
    result = run(world, *good_set(world), dup)
    n = note(result, dup)
    assert not n.counted and "appears twice" in n.reason, n.reason
    passed, reason = rule(result, "rebuilder-threshold")
    assert "gamma" not in reason


def test_an_envelope_with_a_duplicate_key_counts_for_nothing(world: World) -> None:
    good = world.sign(provenance(), "vendor").read_text()
    dup = world.root / "dup-env.intoto.json"
    dup.write_text(good.replace('{"payload":', '{"payload":"e30=","payload":', 1))
    result = run(world, dup, *good_set(world)[1:])
    assert not note(result, dup).counted and "appears twice" in note(result, dup).reason


def test_nulls_are_unset_and_a_descriptor_may_carry_only_content(world: World) -> None:
    prov = _doc(provenance())
    prov["subject"][0]["name"] = None
    run_details = prov["predicate"]["runDetails"]
    run_details["byproducts"] = None
    run_details["metadata"]["invocationId"] = None
    prov["predicate"]["buildDefinition"]["internalParameters"] = None
    prov["predicate"]["buildDefinition"]["resolvedDependencies"].append(
        {"name": "a note", "content": base64.b64encode(b"inline").decode()})
    p = _sign_raw(world, json.dumps(prov).encode(), "vendor", "nulls.intoto.json")
    v = _doc(vsa())
    v["predicate"]["inputAttestations"] = [{"content": "e30="}]
    v["predicate"]["dependencyLevels"] = None
    a = _sign_raw(world, json.dumps(v).encode(), "rb-alpha", "a.intoto.json")
    result = run(world, p, a, world.sign(vsa(), "rb-beta"))
    assert note(result, p).counted, note(result, p).reason
    assert note(result, a).counted, note(result, a).reason
    assert result.passed


def test_a_vsa_without_time_verified_counts_unless_max_age_needs_it(world: World) -> None:
    v = _doc(vsa())
    del v["predicate"]["timeVerified"]
    timeless = _sign_raw(world, json.dumps(v).encode(), "rb-gamma", "t.intoto.json")
    assert note(run(world, timeless), timeless).counted
    aged = world.policy(extra="max_age: 30d\n")
    n = note(run(world, timeless, policy=aged), timeless)
    assert not n.counted and "no timeVerified" in n.reason and "max_age" in n.reason


def test_attestation_values_are_not_coerced(world: World) -> None:
    prov = _doc(provenance())
    # Lax parsing would read a number as a Unix time; SLSA times are RFC 3339 strings.
    prov["predicate"]["runDetails"]["metadata"]["finishedOn"] = 1748779200
    p = _sign_raw(world, json.dumps(prov).encode(), "vendor", "n.intoto.json")
    n = note(run(world, p), p)
    assert not n.counted and "RFC 3339" in n.reason, n.reason


def test_a_failed_vsa_is_not_a_present_vsa(world: World) -> None:
    policy = world.policy(threshold=1,
                          extra=f"required_predicate_types: ['{VSA_PREDICATE_TYPE}']\n")
    result = run(world, world.sign(vsa(match=None), "rb-alpha"), policy=policy)
    passed, reason = rule(result, f"require:{VSA_PREDICATE_TYPE}")
    assert not passed and "only FAILED" in reason and "alpha" in reason


@pytest.mark.parametrize(("make", "needle"), [
    (lambda d: d.write_bytes(b" " * (16 << 20) + b"{}"), "larger than"),
    (lambda d: d.write_bytes(b'{"payloadType":"t","payload":"","signatures":[]}\n' * 1001),
     "more than 1000"),
])
def test_attestation_files_have_size_limits(world: World, make: Any, needle: str) -> None:
    big = world.root / "big.intoto.jsonl"
    make(big)
    with pytest.raises(InputError, match=needle):
        run(world, big)


def test_an_oversized_envelope_counts_for_nothing(world: World) -> None:
    line = b'{"payloadType":"t","payload":"' + b"A" * (4 << 20) + b'","signatures":[]}'
    big = world.root / "big.intoto.jsonl"
    big.write_bytes(world.sign(provenance(), "vendor").read_bytes() + b"\n" + line + b"\n")
    result = run(world, big)
    (last,) = [n for n in result.attestations if n.source == f"{big}:2"]
    assert not last.counted and "larger than" in last.reason
