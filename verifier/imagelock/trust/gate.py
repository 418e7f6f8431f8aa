"""The `verify` command's job: find an image's attestations and judge them by a policy.

The consumer's pipeline step. The image's manifest digest is what every attestation must name;
attestations come from the command line, from beside a local image (`PATH.intoto.jsonl`,
`PATH.*.sigstore.json`), and from a registry's referrers. The policy fails closed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagelock.core import progress
from imagelock.core.errors import InputError
from imagelock.core.strict_json import NotJSON, loads, read_limited
from imagelock.formats.attestation import (
    DSSE_ENVELOPE_MEDIA_TYPE,
    DSSE_INTOTO_PAYLOAD_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE_PREFIX,
)
from imagelock.oci.locations import index_platforms, local_path, read_image, registry_form
from imagelock.trust.attest import attestations_path

if TYPE_CHECKING:
    from imagelock.formats.policy import PolicyResult


def manifest_digest_of(ref: str, *, workdir: Path, insecure: bool, platform: str | None) -> str:
    """The digest of the manifest `ref` names (following an index to `platform`)."""
    form = registry_form(ref)
    if form.startswith("docker://"):
        # lazy: the registry client (requests) loads only for registry references
        from imagelock.oci.reference import parse_reference
        from imagelock.oci.registry.client import client_for
        from imagelock.oci.registry.transfer import resolve_platform

        r = parse_reference(form.removeprefix("docker://"))
        with client_for(r, insecure=insecure) as client:
            found, _ = resolve_platform(client, r, platform)
        return found.digest
    return read_image(ref, platform=platform, workdir=workdir).manifest_digest


def gather(ref: str, explicit: list[Path], *, insecure: bool) -> list[Any]:
    """Every attestation to consider: explicit files, files beside a local image, referrers."""
    # lazy: policy evaluation loads the attestation models; `attach` needs none of it
    from imagelock.trust.policy import AttestationSource

    out: list[Any] = list(explicit)
    local = local_path(ref)
    if local is not None:
        beside = attestations_path(local)
        if beside.is_file() and beside not in explicit:
            out.append(beside)
        out += sorted(local.parent.glob(local.name + ".*.sigstore.json"))
    else:
        # lazy: the registry client (requests) loads only for registry references
        from imagelock.oci.registry.transfer import fetch_referrer, list_referrers

        target = registry_form(ref).removeprefix("docker://")
        for r in list_referrers(target, None, insecure=insecure):
            if r.artifact_type not in (DSSE_INTOTO_PAYLOAD_TYPE, SIGSTORE_BUNDLE_MEDIA_TYPE):
                continue
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
) -> PolicyResult:
    """Judge the image `ref` by the policy at `policy_path`, with the attestations of `explicit`
    files and those found beside the image or in its registry."""
    # lazy: policy evaluation loads the attestation models; `attach` needs none of it
    from imagelock.trust.policy import evaluate, load_policy

    policy = load_policy(policy_path)  # a bad policy is reported before touching the image
    index = index_of(ref, insecure=insecure) if policy.policy.every_platform else None
    if index is None:
        digest = manifest_digest_of(ref, workdir=workdir, insecure=insecure, platform=platform)
        return evaluate(policy, subject_name=ref, manifest_digest=digest,
                        attestations=gather(ref, explicit, insecure=insecure), now=now)
    # lazy: policy evaluation loads the attestation models; `attach` needs none of it
    from imagelock.trust.policy import every_platform, read_attestations

    index_digest, platforms = index
    raws = read_attestations(gather(ref, explicit, insecure=insecure))  # read once, judged per platform
    results = {p: evaluate(policy, subject_name=f"{ref} ({p})", attestations=raws, now=now,
                           manifest_digest=manifest_digest_of(ref, workdir=workdir / p.replace("/", "-"),
                                                              insecure=insecure, platform=p))
               for p in platforms}
    return every_platform(ref, index_digest, results)


def index_of(ref: str, *, insecure: bool) -> tuple[str, list[str]] | None:
    """The digest and platforms of the image index `ref` names (a multi-platform layout, or a
    registry index); None for an image of one platform. Entries that are not images of a
    platform (`unknown/unknown`: attestations some builders put in an index) are left out."""
    form = registry_form(ref)
    if not form.startswith("docker://"):
        # lazy: the rebuild stage's reader of a layout's index, loaded only for `every_platform`
        from imagelock.rebuild.rebuild import published_index_digest

        platforms = index_platforms(ref)
        digest = published_index_digest(ref) if platforms else None
        return (digest, platforms) if digest is not None else None
    # lazy: the registry client (requests) loads only for registry references
    from imagelock.formats.oci import Index
    from imagelock.oci.blobio import INDEX_TYPES, parse_model
    from imagelock.oci.platform import describe
    from imagelock.oci.registry.transfer import resolve

    target = form.removeprefix("docker://")
    found = resolve(target, insecure=insecure)
    if found.media_type not in INDEX_TYPES:
        return None
    listed = parse_model(Index, found.data, f"image index {found.digest}", target).manifests
    platforms = [describe(d.platform) for d in listed
                 if d.platform is not None and d.platform.os != "unknown"]
    return found.digest, platforms


def push_attestation(ref: str, envelope: bytes, *, insecure: bool) -> str:
    """Attach a DSSE envelope (or a sigstore bundle) to a registry image as an OCI 1.1 referrer."""
    # lazy: the registry client (requests) loads only for registry references
    from imagelock.oci.registry.transfer import Artifact, push_referrer

    target = registry_form(ref).removeprefix("docker://")
    is_bundle = b'"' + SIGSTORE_BUNDLE_MEDIA_TYPE_PREFIX.encode() in envelope[:512]
    artifact = (Artifact(SIGSTORE_BUNDLE_MEDIA_TYPE, SIGSTORE_BUNDLE_MEDIA_TYPE, envelope)
                if is_bundle
                else Artifact(DSSE_INTOTO_PAYLOAD_TYPE, DSSE_ENVELOPE_MEDIA_TYPE, envelope))
    return push_referrer(target, artifact, insecure=insecure)


# The artifactType SBOM readers look for among an image's referrers, by in-toto predicate type.
SBOM_MEDIA_TYPES = {"https://spdx.dev/Document": "application/spdx+json",
                    "https://cyclonedx.org/bom": "application/vnd.cyclonedx+json"}


def push_sbom_document(ref: str, predicate_type: str, document: dict[str, object], *,
                       insecure: bool) -> str:
    """The SBOM of a signed statement, also attached as the document itself with the
    artifactType SBOM readers look for (`application/spdx+json`, ...); the signed statement
    beside it is what `verify` counts."""
    import json

    # lazy: the registry client (requests) loads only for registry references
    from imagelock.oci.registry.transfer import Artifact, push_referrer

    media = SBOM_MEDIA_TYPES[predicate_type]
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return push_referrer(registry_form(ref).removeprefix("docker://"), Artifact(media, media, data),
                         insecure=insecure)


@progress.phase("push")
def attach_files(ref: str, files: list[Path], *, insecure: bool) -> list[str]:
    """Attach every envelope of `files` to the registry image `ref`; refuse an envelope whose
    subject is another image (it would never count, and would mislead whoever reads it)."""
    import base64

    def parsed(data: bytes, n: int | None) -> Any:
        # Duplicate keys refused: an ambiguous envelope must not be published.
        try:
            return loads(data, what="the attestation", path=f, line=n)
        except NotJSON:
            return None

    if local_path(ref) is not None:
        raise InputError(f"{ref} is not a registry image", hint="attestations beside a local "
                         "image are found as PATH.intoto.jsonl; attach needs HOST/REPO@digest")
    digest = manifest_digest_of(ref, workdir=Path("/nonexistent"), insecure=insecure, platform=None)
    pushed = []
    for f in files:
        data = read_limited(f, limit=16 << 20, what="the attestation file")
        whole = parsed(data, None)
        if isinstance(whole, dict) and "dsseEnvelope" in whole:  # a sigstore bundle
            docs = [(1, data, whole["dsseEnvelope"])]
        else:
            docs = []
            for n, line in enumerate(data.splitlines(), 1):
                if line.strip():
                    docs.append((n, line, parsed(line, n)))
        for n, raw, env in docs:
            try:
                st = loads(base64.b64decode(env["payload"]), what="the statement", path=f, line=n)
                subjects = {s["digest"]["sha256"] for s in st["subject"]}
            except (ValueError, KeyError, TypeError):
                raise InputError("not a DSSE envelope or sigstore bundle with an in-toto "
                                 "statement", path=f, line=n,
                                 hint="attach what `build` or `rebuild` signed") from None
            if digest.removeprefix("sha256:") not in subjects:
                raise InputError(f"the attestation's subject is not {ref} ({digest})", path=f,
                                 line=n, hint="attach it to the image it was made for")
            pushed.append(push_attestation(ref, raw, insecure=insecure))
            progress.item(f"attestation {f.name}:{n} as {pushed[-1]}", "uploaded", len(raw))
            if st.get("predicateType") in SBOM_MEDIA_TYPES and isinstance(st.get("predicate"), dict):
                pushed.append(push_sbom_document(ref, st["predicateType"], st["predicate"],
                                                 insecure=insecure))
    return pushed
