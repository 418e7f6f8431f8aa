"""The `verify` command's job: find an image's attestations and judge them by a policy.

The consumer's pipeline step. The image's manifest digest is what every attestation must name;
attestations come from the command line, from beside a local image (`PATH.intoto.jsonl`,
`PATH.*.sigstore.json`), and from a registry's referrers. The policy fails closed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .attest import attestations_path
from .oci.read import local_path, read_image, registry_form

ARTIFACT_TYPE = "application/vnd.in-toto+json"
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


def manifest_digest_of(ref: str, *, workdir: Path, insecure: bool, platform: str | None) -> str:
    """The digest of the manifest `ref` names (following an index to `platform`)."""
    form = registry_form(ref)
    if form.startswith("docker://"):
        from .oci.reference import parse_reference
        from .oci.registry import resolve_platform
        from .oci.registry_client import client_for

        r = parse_reference(form.removeprefix("docker://"))
        with client_for(r, insecure=insecure) as client:
            found, _ = resolve_platform(client, r, platform)
        return found.digest
    return read_image(ref, platform=platform, workdir=workdir).manifest_digest


def gather(ref: str, explicit: list[Path], *, insecure: bool) -> list[Any]:
    """Every attestation to consider: explicit files, files beside a local image, referrers."""
    from .trust.policy import AttestationSource

    out: list[Any] = list(explicit)
    local = local_path(ref)
    if local is not None:
        beside = attestations_path(local)
        if beside.is_file() and beside not in explicit:
            out.append(beside)
        out += sorted(local.parent.glob(local.name + ".*.sigstore.json"))
    else:
        from .oci.registry import fetch_referrer, list_referrers

        target = registry_form(ref).removeprefix("docker://")
        for r in list_referrers(target, ARTIFACT_TYPE, insecure=insecure):
            art = fetch_referrer(target, r, insecure=insecure)
            out.append(AttestationSource(f"{target} referrer {r.digest}", art.data))
    return out


def verify(
    ref: str,
    policy_path: Path,
    explicit: list[Path],
    *,
    now: datetime,
    workdir: Path,
    insecure: bool = False,
    platform: str | None = None,
) -> Any:
    from .trust.policy import evaluate, load_policy

    policy = load_policy(policy_path)  # a bad policy is reported before touching the image
    digest = manifest_digest_of(ref, workdir=workdir, insecure=insecure, platform=platform)
    return evaluate(policy, subject_name=ref, manifest_digest=digest,
                    attestations=gather(ref, explicit, insecure=insecure), now=now)


def push_attestation(ref: str, envelope: bytes, *, insecure: bool) -> str:
    """Attach a DSSE envelope to the image in a registry as an OCI 1.1 referrer."""
    from .oci.registry import Artifact, push_referrer

    target = registry_form(ref).removeprefix("docker://")
    return push_referrer(target, Artifact(ARTIFACT_TYPE, ENVELOPE_MEDIA_TYPE, envelope),
                         insecure=insecure)


def attach_files(ref: str, files: list[Path], *, insecure: bool) -> list[str]:
    """Attach every envelope of `files` to the registry image `ref`; refuse an envelope whose
    subject is another image (it would never count, and would mislead whoever reads it)."""
    import base64
    import json

    from .errors import InputError

    if local_path(ref) is not None:
        raise InputError(f"{ref} is not a registry image", hint="attestations beside a local "
                         "image are found as PATH.intoto.jsonl; attach needs HOST/REPO@digest")
    digest = manifest_digest_of(ref, workdir=Path("/nonexistent"), insecure=insecure, platform=None)
    pushed = []
    for f in files:
        try:
            lines = [ln for ln in f.read_bytes().splitlines() if ln.strip()]
        except OSError as e:
            raise InputError(f"cannot read {f}: {e}", path=f) from None
        for n, line in enumerate(lines, 1):
            try:
                env = json.loads(line)
                st = json.loads(base64.b64decode(env["payload"]))
                subjects = {s["digest"]["sha256"] for s in st["subject"]}
            except (ValueError, KeyError, TypeError):
                raise InputError("not a DSSE envelope with an in-toto statement", path=f, line=n,
                                 hint="attach what `build --sign` or `rebuild --sign` wrote") from None
            if digest.removeprefix("sha256:") not in subjects:
                raise InputError(f"the attestation's subject is not {ref} ({digest})", path=f,
                                 line=n, hint="attach it to the image it was made for")
            pushed.append(push_attestation(ref, line, insecure=insecure))
    return pushed
