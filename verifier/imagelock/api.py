"""The public Python API: the pipeline's stages as functions that return typed results.

Each function does what the command of the same name does and returns the model its `--json`
prints (formats/results.py, `PolicyResult` for `verify`); errors are `ImagelockError`s
(core/errors.py) whose `exit_code` is the command's. Everything else in the package is internal
and may move; docs/api.md documents this module.

Each function imports its own stage when called, so importing this module costs nothing and a
command loads only what it needs (`verify` starts in a fraction of what `build` would load).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imagelock.core.errors import ImagelockError, InputError
from imagelock.core.names import LOCK_FILENAME, lock_file, spec_file

if TYPE_CHECKING:
    from imagelock.fetch.store import Store
    from imagelock.formats.lock import Lock
    from imagelock.formats.policy import PolicyResult
    from imagelock.formats.results import (
        AttachResult,
        BuildResult,
        CheckResult,
        FetchResult,
        KeygenResult,
        LockCheckResult,
        LockDiffResult,
        LockResult,
        PullResult,
        PushResult,
        RebuildReport,
    )
    from imagelock.trust.signing import Signer

Mirrors = Mapping[str, list[str]]
"""Mirrors by source name, each tried in order before the spec's and the machine's."""

__all__ = [
    "ImagelockError", "InputError", "attach", "build", "check", "check_rebuild_signing", "diff", "fetch", "keygen", "lock",
    "lock_up_to_date", "pull", "push", "rebuild", "resolve", "signer", "verify",
    "outdated", "inspect", "sbom", "attach_recipe", "rebuild_from_reference", "inputs_check",
    "watch", "status", "vouch_once",
]

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from imagelock.fleet.once import Claim
    from imagelock.formats.inventory import InspectResult, OutdatedResult
    from imagelock.formats.results import StatusResult, WatchResult
    from imagelock.rebuild.publish import Published
    from imagelock.rebuild.rot import RotReport
    from imagelock.sbom.document import Sbom
    from imagelock.trust.keys import PublicKey
    from imagelock.trust.reference import ReferenceRebuild

if TYPE_CHECKING:
    from imagelock.rebuild.publish import Published
    from imagelock.rebuild.rot import RotReport
    from imagelock.trust.keys import PublicKey
    from imagelock.trust.reference import ReferenceRebuild


def _store(store: Store | Path | None) -> Store:
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.fetch.store import Store

    return store if isinstance(store, Store) else Store(store)


# --- lock -------------------------------------------------------------------------------------


def resolve(
    spec: Path,
    *,
    store: Store | Path | None = None,
    mirrors: Mirrors | None = None,
    offline: bool = False,
    lock_dir: Path | None = None,
    previous: Lock | None = None,
    upgrade: Sequence[str] = (),
    upgrade_security: bool = False,
    notes: list[str] | None = None,
) -> Lock:
    """The lock the spec resolves to: every input pinned (the lock stage), the Debian packages'
    maintainer-script effects (their scripts run once, in a sandbox), then the digests its
    build must produce (one build, the build stage). Nothing is written; `previous` is a lock
    whose Debian pins are kept unless named in `upgrade` (a name moves every binary of its
    source package); `upgrade_security` moves the pins a security suite has newer versions of.
    What an upgrade moved besides the names, or left behind and why, is appended to `notes`."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.build.expected import record_expected
    from imagelock.formats.files import load_spec
    from imagelock.inputs.fetching import fetch_pins
    from imagelock.inputs.python.source_build import source_builder
    from imagelock.lock.context import context_dir
    from imagelock.lock.make import resolve_lock

    st = _store(store)
    found = mirrors or {}
    resolved = resolve_lock(spec, store=st, cli_mirrors=found, offline=offline,
                            lock_dir=lock_dir, previous=previous, upgrade=upgrade,
                            upgrade_security=upgrade_security, notes=notes,
                            source_builder=source_builder(st))
    loaded = load_spec(spec)
    fetch_pins(resolved, loaded.sources, st, cli_mirrors=found, offline=offline)
    if loaded.contents.debian is not None:
        # lazy: running maintainer scripts loads .deb extraction and the sandbox, for `lock` only
        from imagelock.inputs.debian.effects import review_lines
        from imagelock.inputs.debian.scripts import derive_effects

        resolved = derive_effects(resolved, loaded.contents.debian.scripts, st, previous)
        if notes is not None:
            for platform, pins in resolved.debian.items():
                notes += review_lines(pins.scripts, platform)
    return record_expected(resolved, context=context_dir(loaded, spec), store=st)


def _relock(spec: Path | None, output: Path | None, store: Store | Path | None,
            mirrors: Mirrors | None, offline: bool, upgrade: Sequence[str],
            upgrade_all: bool, upgrade_security: bool) -> tuple[Path, Lock, bytes, list[str]]:
    """The lock file meant, the lock resolved now, its bytes, and notes."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.files import lock_bytes, read_lock

    spec_path = spec_file(spec)
    out = output or spec_path.parent / LOCK_FILENAME
    previous, notes = None, list[str]()
    if out.is_file() and not upgrade_all:
        try:
            previous = read_lock(out)
        except InputError as e:
            notes.append(f"existing lock not readable, resolving afresh: {e.message}")
    new = resolve(spec_path, store=store, mirrors=mirrors, offline=offline,
                  lock_dir=out.absolute().parent, previous=previous, upgrade=upgrade,
                  upgrade_security=upgrade_security, notes=notes)
    return out, new, lock_bytes(new), notes


def lock(
    spec: Path | None = None,
    *,
    output: Path | None = None,
    store: Store | Path | None = None,
    mirrors: Mirrors | None = None,
    offline: bool = False,
    upgrade: Sequence[str] = (),
    upgrade_all: bool = False,
    upgrade_security: bool = False,
) -> LockResult:
    """Resolve the spec (a file or its directory) and write the lock beside it (or to
    `output`). An existing lock's Debian pins are kept unless named in `upgrade`, or unless
    `upgrade_all`."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.files import is_set_spec, write_lock
    from imagelock.formats.results import LockResult

    if is_set_spec(spec_file(spec)):
        return _lock_set(spec_file(spec), output, store, mirrors, offline, upgrade, upgrade_all,
                         upgrade_security)
    out, new, data, notes = _relock(spec, output, store, mirrors, offline, upgrade, upgrade_all,
                                    upgrade_security)
    changed = not out.is_file() or out.read_bytes() != data
    write_lock(new, out)
    return LockResult(lock=str(out), changed=changed, expected=new.expected, notes=notes)


def _lock_set(spec: Path, output: Path | None, store: Store | Path | None,
              mirrors: Mirrors | None, offline: bool, upgrade: Sequence[str], upgrade_all: bool,
              upgrade_security: bool) -> LockResult:
    """A set spec: every image's lock beside the spec, and the set's index (`output`)."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.build.sets import lock_set
    from imagelock.core.atomic import atomic_file
    from imagelock.formats.results import LockResult

    if output is not None and output.absolute() != (spec.parent / LOCK_FILENAME).absolute():
        raise InputError("a set's locks are written beside its spec", field="--output",
                         hint="drop --output")
    done = lock_set(spec, store=_store(store), cli_mirrors=mirrors or {}, offline=offline,
                    upgrade=upgrade, upgrade_all=upgrade_all, upgrade_security=upgrade_security)
    changed = False
    for name, data in done.files.items():  # images first, the index last
        target = spec.parent / name
        changed |= not target.is_file() or target.read_bytes() != data
        with atomic_file(target) as tmp:
            tmp.write_bytes(data)
    notes = [*done.notes, *(f"{n}: {e.image} -> {e.lock}" for n, e in done.index.images.items())]
    return LockResult(lock=str(spec.parent / LOCK_FILENAME), changed=changed, expected={},
                      notes=notes)


def lock_up_to_date(
    spec: Path | None = None,
    *,
    output: Path | None = None,
    upgrade: Sequence[str] = (),
    upgrade_all: bool = False,
    upgrade_security: bool = False,
) -> LockCheckResult:
    """Whether the spec (a file or its directory) and its context still match the lock on disk
    (`imagelock lock --check`): digests and sections of the spec, the requirements file, every
    context file. Nothing is resolved or fetched, and nothing is written."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.results import LockCheckResult
    from imagelock.lock.staleness import lock_differences

    if upgrade or upgrade_all or upgrade_security:
        raise InputError("--check resolves nothing, so --upgrade, --upgrade-all and "
                         "--upgrade-security do not apply",
                         hint="drop --check to upgrade; `imagelock diff` then shows what moved")
    spec_path = spec_file(spec)
    out = output or spec_path.parent / LOCK_FILENAME
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.files import is_set_spec
    from imagelock.lock.staleness import set_differences

    diffs = (set_differences if is_set_spec(spec_path) else lock_differences)(out, spec_path)
    return LockCheckResult(up_to_date=not diffs, lock=str(out), differences=diffs)


# --- fetch, build, rebuild, check -------------------------------------------------------------


def fetch(
    lock: Path | None = None,
    *,
    store: Store | Path | None = None,
    mirrors: Mirrors | None = None,
    offline: bool = False,
) -> FetchResult:
    """Fill the store with every input the lock (a file or its directory) pins, checking each
    sha256; with `offline`, only check that they are there and intact."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.files import is_set_lock, read_lock, read_set_lock
    from imagelock.formats.results import FetchResult
    from imagelock.inputs.fetching import fetch_lock


    path = lock_file(lock)
    st = _store(store)
    # A set's index: each image's lock (an input several images pin is fetched once).
    paths = ([path.parent / e.lock for e in read_set_lock(path).images.values()]
             if is_set_lock(path) else [path])
    present = downloaded = size = 0
    for one in paths:
        rep = fetch_lock(read_lock(one), one, st, cli_mirrors=mirrors or {}, offline=offline)
        present, downloaded = present + rep.present, downloaded + rep.downloaded
        size += rep.bytes_downloaded
    return FetchResult(store=str(st.root), present=present, downloaded=downloaded,
                       bytes_downloaded=size)


def build(
    lock: Path | None = None,
    *,
    output: Path = Path("out"),
    format: Literal["oci", "docker-archive"] = "oci",
    store: Store | Path | None = None,
    mirrors: Mirrors | None = None,
    offline: bool = False,
    signer: Signer | None = None,
    sbom_formats: Sequence[Literal["spdx", "cyclonedx"]] = (),
    platform: str | None = None,
    select: str | None = None,
) -> BuildResult:
    """Build the image the lock describes into `output` and compare its digests with the
    lock's (`verdict`); with a `signer`, sign SLSA provenance for it, only when it is the image
    the lock names (`reproduced`: a content-only match has another manifest digest), and with
    `sbom_formats` also its SBOMs as signed in-toto statements."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.build.from_lock import build_lock

    if sbom_formats and signer is None:
        raise InputError("--sbom signs the SBOM: it needs --sign KEY or --sigstore",
                         hint="add --sign KEY, or write an unsigned SBOM with `imagelock sbom`")

    path = lock_file(lock)
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.build.sets import build_set, is_set

    if is_set(path):  # a set's index: its images (those `select` matches), each its own layout
        if format != "oci" or platform is not None or signer is not None:
            raise InputError("a set builds OCI layouts of every platform, unsigned",
                             hint="build one image's lock (imagelock.NAME.lock) for "
                             "--format, --platform or --sign")
        return build_set(path, output=output, store=_store(store), cli_mirrors=mirrors,
                         offline=offline, pattern=select)
    if select is not None:
        raise InputError("--select picks images of a set; this lock is one image's",
                         field="--select", hint="give the set's index (imagelock.lock)")
    res = build_lock(path, output=output, fmt=format, store=_store(store), cli_mirrors=mirrors,
                     offline=offline, platform=platform)
    if signer is None or res.verdict != "reproduced":
        return res
    # lazy: signing loads the trust stage only when asked for
    from imagelock.trust.signing import sign_build, sign_sboms

    written = sign_build(res, path, signer)
    if sbom_formats:
        sign_sboms(res, path, signer, list(dict.fromkeys(sbom_formats)), _store(store))
    return res.model_copy(update={"attestations": str(written)})


def rebuild(
    lock: Path | None = None,
    *,
    image: str | None = None,
    sandbox: bool = True,
    platform: str | None = None,
    keep: Path | None = None,
    diffoscope: Path | None = None,
    report_html: Path | None = None,
    store: Store | Path | None = None,
    mirrors: Mirrors | None = None,
    offline: bool = False,
    insecure: bool = False,
    signer: Signer | None = None,
    sign_failures: bool = False,
    attestation_out: Path | None = None,
    push_attestation: bool = False,
    verifier_id: str | None = None,
) -> RebuildReport:
    """Rebuild the lock in isolation and compare it with the published `image` (or with the
    lock's digests). With a `signer`, sign a SLSA VSA on a match (and on a mismatch with
    `sign_failures`), appended to `attestation_out` (default: beside a local image, else
    ./rebuild.intoto.jsonl), and with `push_attestation` attach it to the registry image. With
    `report_html`, also write the comparison as one self-contained page."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.rebuild.rebuild import rebuild as rebuild_lock
    from imagelock.rebuild.rebuild import scratch

    check_rebuild_signing(signing=signer is not None, sandbox=sandbox, image=image,
                          push_attestation=push_attestation)
    if platform == "all":
        if report_html is not None:
            raise InputError("--report-html writes one platform's comparison", field="--platform",
                             hint="choose a platform with --platform OS/ARCH")
        return _rebuild_all(lock, image=image, sandbox=sandbox, keep=keep, diffoscope=diffoscope,
                            store=store, mirrors=mirrors, offline=offline, insecure=insecure,
                            signer=signer, sign_failures=sign_failures,
                            attestation_out=attestation_out, push_attestation=push_attestation,
                            verifier_id=verifier_id)
    with scratch() as tmp:
        res = rebuild_lock(lock_file(lock), image=image, store=_store(store), cli_mirrors=mirrors,
                           offline=offline, sandbox=sandbox, platform=platform, workdir=Path(tmp),
                           insecure=insecure, keep=keep, diffoscope=diffoscope,
                           report_html=report_html)
        matched = res.verdict in ("reproduced", "reproduced-content")
        if signer is None or not (matched or (sign_failures and res.verdict == "mismatch")):
            return res.report
        # lazy: signing loads the trust stage only when asked for
        from imagelock.trust.gate import push_attestation as attach_envelope
        from imagelock.trust.signing import rebuild_attestations_path, sign_rebuild

        written, line = sign_rebuild(res, signer, verifier_id=verifier_id,
                                     out=attestation_out or rebuild_attestations_path(image))
        referrer = (attach_envelope(image, line, insecure=insecure)
                    if push_attestation and image is not None else None)
    return res.report.model_copy(update={"attestation": str(written), "referrer": referrer})


def _rebuild_all(
    lock: Path | None, *, image: str | None, sandbox: bool, keep: Path | None,
    diffoscope: Path | None, store: Store | Path | None, mirrors: Mirrors | None, offline: bool,
    insecure: bool, signer: Signer | None, sign_failures: bool, attestation_out: Path | None,
    push_attestation: bool, verifier_id: str | None,
) -> RebuildReport:
    """`rebuild --platform all`: one build, every platform compared, a VSA for each manifest
    that matched and one for the index when it was reproduced whole."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.files import read_lock
    from imagelock.rebuild.rebuild import index_check, rebuild_platforms, scratch, summary

    path = lock_file(lock)
    with scratch() as tmp:
        results = rebuild_platforms(path, read_lock(path).platforms, image=image,
                                    store=_store(store), cli_mirrors=mirrors, offline=offline,
                                    sandbox=sandbox, workdir=Path(tmp), insecure=insecure,
                                    keep=keep, diffoscope=diffoscope)
        index = index_check(results, image, insecure=insecure)
        report = summary(results, index)
        if signer is None:
            return report
        # lazy: signing loads the trust stage only when asked for
        from imagelock.oci.locations import registry_form
        from imagelock.oci.reference import parse_reference
        from imagelock.trust.gate import push_attestation as attach_envelope
        from imagelock.trust.signing import (
            rebuild_attestations_path,
            sign_index_rebuild,
            sign_rebuild,
        )

        out = attestation_out or rebuild_attestations_path(image)
        signed: list[tuple[str, bytes]] = []
        written = None
        for res in results:
            matched = res.verdict in ("reproduced", "reproduced-content")
            if matched or (sign_failures and res.verdict == "mismatch"):
                subject = res.published or res.rebuilt
                written, line = sign_rebuild(res, signer, verifier_id=verifier_id, out=out)
                signed.append((subject.manifest_digest, line))
        if index.verdict == "reproduced":
            written, line = sign_index_rebuild(results[0], index.published or index.rebuilt,
                                               signer, out=out, verifier_id=verifier_id)
            signed.append((index.published or index.rebuilt, line))
        if written is None:
            return report
        referrer = None
        if push_attestation and image is not None:
            repo = parse_reference(registry_form(image).removeprefix("docker://"))
            pushed = [attach_envelope(str(repo.at(d)), line, insecure=insecure) for d, line in signed]
            referrer = pushed[-1]
    return report.model_copy(update={"attestation": str(written), "referrer": referrer})


def check_rebuild_signing(*, signing: bool, sandbox: bool, image: str | None,
                          push_attestation: bool) -> None:
    """Refuse what `rebuild` must not sign or attach (InputError), before any work: a VSA
    vouches for an isolated rebuild, and only a registry image can carry a referrer. `rebuild`
    checks this itself; call it first to refuse before making a signer (which may ask for a
    passphrase or reach sigstore)."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.oci.locations import local_path

    if signing and not sandbox:
        raise InputError("--sign with --no-sandbox: a VSA vouches for an isolated rebuild",
                         hint="rebuild in the sandbox to sign, or drop --sign")
    if push_attestation and (image is None or local_path(image) is not None):
        raise InputError("--push-attestation needs --image naming a registry image",
                         hint="e.g. --image registry.example.com/app@sha256:...")
    if push_attestation and not signing:
        raise InputError("--push-attestation needs --sign KEY or --sigstore")


def check(
    spec: Path | None = None,
    *,
    builds: int = 2,
    variations: Sequence[str] | None = None,
    store: Store | Path | None = None,
    mirrors: Mirrors | None = None,
) -> CheckResult:
    """Build the lock beside the spec (a file or its directory) `builds` times under varied
    hosts (`variations`, default all: `rebuild.check.VARIATIONS`) and say which variation
    changes which file."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.rebuild.check import check as check_lock

    return check_lock(spec_file(spec).parent / LOCK_FILENAME, store=_store(store),
                      cli_mirrors=mirrors, builds=builds, names=variations)


# --- trust ------------------------------------------------------------------------------------


def signer(
    key: Path | None = None,
    *,
    sigstore: bool = False,
    identity_token: str | None = None,
    trusted_root: Path | None = None,
    signing_config: Path | None = None,
) -> Signer | None:
    """A signer for `build` and `rebuild`: a private key file (its passphrase from
    $IMAGELOCK_KEY_PASSPHRASE or the terminal when it is encrypted), or keyless with sigstore;
    None when neither is asked for."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.trust.signing import signer_for

    return signer_for(key, sigstore=sigstore, identity_token=identity_token,
                      trusted_root=trusted_root, signing_config=signing_config)


def verify(
    image: str,
    *,
    policy: Path,
    attestations: Sequence[Path] = (),
    platform: str | None = None,
    insecure: bool = False,
    now: datetime | None = None,
) -> PolicyResult:
    """Judge an image (a layout directory, a docker-archive, `oci:DIR[:TAG]`,
    `docker-archive:FILE` or a registry reference) by a policy, with the `attestations` files
    and those found beside the image or in its registry. Fails closed: `passed` is True only
    if every rule passed."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.trust.attest import utc_now
    from imagelock.trust.gate import verify as judge

    with tempfile.TemporaryDirectory(prefix="imagelock-verify-") as tmp:
        return judge(image, policy, list(attestations), now=now or utc_now(), workdir=Path(tmp),
                     insecure=insecure, platform=platform)


def keygen(
    output: Path = Path("imagelock.key"),
    *,
    algorithm: Literal["ecdsa-p256", "ed25519"] = "ecdsa-p256",
    encrypt: bool = True,
    passphrase: bytes | None = None,
) -> KeygenResult:
    """Make a signing key pair: the private key at `output`, the public one beside it as
    `output.pub`. With `encrypt`, the private key is encrypted with `passphrase`, else with
    $IMAGELOCK_KEY_PASSPHRASE, else one asked on the terminal."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.results import KeygenResult
    from imagelock.trust.keys import generate, passphrase_from_env_or_prompt, write_key_pair

    if encrypt and passphrase is None:
        passphrase = passphrase_from_env_or_prompt(confirm=True)
        if passphrase is None:
            raise InputError("no passphrase for the private key",
                             hint="set IMAGELOCK_KEY_PASSPHRASE, run on a terminal, or pass "
                             "--no-passphrase for a throw-away key")
    key = generate(algorithm)
    if not output.parent.is_dir():
        raise InputError(f"directory {output.parent} does not exist",
                         hint="create it first, or choose another -o path")
    pub = output.with_name(output.name + ".pub")
    write_key_pair(key, output, pub, passphrase if encrypt else None)
    return KeygenResult(private=str(output), public=str(pub), keyid=key.public.keyid,
                        algorithm=algorithm, encrypted=encrypt)


# --- diff and the registry --------------------------------------------------------------------


def diff(old: Path, new: Path, *, platform: str | None = None) -> LockDiffResult:
    """What changed between two locks (files or their directories), made for review; with
    `platform`, only what that platform's image gets."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.compare.locks import diff_locks
    from imagelock.formats.files import read_lock
    from imagelock.formats.results import LockDiffResult

    found = diff_locks(read_lock(lock_file(old)), read_lock(lock_file(new)), platform=platform)
    return LockDiffResult.model_validate(found.as_json())


def push(image: str, ref: str, *, insecure: bool = False) -> PushResult:
    """Push a local image (a layout directory, a docker-archive, `oci:DIR[:TAG]`,
    `docker-archive:FILE`) to `ref` (`HOST[:PORT]/REPO[:TAG]`): blobs, manifest, then tag. A
    layout of several platforms (a multi-platform build) is pushed as one image index: every
    platform's manifest by digest, then the index at the tag."""
    # lazy: each API function loads only its own stage; the registry client loads requests
    from imagelock.formats.results import PushResult
    from imagelock.oci.locations import index_platforms, read_image, registry_form
    from imagelock.oci.registry.push_index import push_index
    from imagelock.oci.registry.transfer import push as push_image

    target = registry_form(ref).removeprefix("docker://")
    platforms = index_platforms(image)
    if platforms:
        images = [read_image(image, platform=p) for p in platforms]
        digest = push_index(images, target, insecure=insecure)
        return PushResult(ref=ref, digest=digest,
                          platforms={i.platform: i.manifest_digest for i in images})
    digest = push_image(read_image(image), target, insecure=insecure)
    return PushResult(ref=ref, digest=digest)


def pull(ref: str, output: Path, *, platform: str | None = None,
         insecure: bool = False) -> PullResult:
    """Pull `ref` into an OCI layout at `output`, checking every blob's digest as it streams;
    `platform` "all" pulls every platform of an image index into the one layout."""
    # lazy: each API function loads only its own stage; the registry client loads requests
    from imagelock.formats.results import PullResult
    from imagelock.oci.locations import registry_form
    from imagelock.oci.registry.push_index import pull_index
    from imagelock.oci.registry.transfer import pull as pull_image

    if platform == "all":
        digest, images = pull_index(registry_form(ref).removeprefix("docker://"), output,
                                    insecure=insecure)
        return PullResult(ref=ref, output=str(output), manifest_digest=digest, config_digest=None,
                          platforms={i.platform: i.manifest_digest for i in images})
    img = pull_image(registry_form(ref).removeprefix("docker://"), output, platform=platform,
                     insecure=insecure)
    return PullResult(ref=ref, output=str(output), manifest_digest=img.manifest_digest,
                      config_digest=img.config_digest)


def attach(image: str, attestations: Sequence[Path], *, insecure: bool = False) -> AttachResult:
    """Attach attestation files (DSSE envelopes, one per line, or sigstore bundles) to a
    registry image as OCI 1.1 referrers; each must name the image as its subject."""
    # lazy: each API function loads only its own stage (docs/architecture.md)
    from imagelock.formats.results import AttachResult
    from imagelock.trust.gate import attach_files

    return AttachResult(ref=image, referrers=attach_files(image, list(attestations),
                                                           insecure=insecure))


def outdated(lock: Path | None = None, *, store: Store | Path | None = None,
             mirrors: Mirrors | None = None) -> OutdatedResult:
    """Every Debian pin of the lock at `lock_path` that the suites of the spec beside it now hold
    a newer version of, security updates flagged. Reads the signed indexes; writes nothing."""
    # lazy: the inventory commands load only what they use (docs/architecture.md)
    from imagelock.formats.files import read_lock
    from imagelock.lock.outdated import outdated as check

    path = lock_file(lock)
    return check(read_lock(path), path, _store(store), mirrors)


def inspect(targets: Sequence[str], *, package: str | None = None, lock: Path | None = None,
            platform: str | None = None, insecure: bool = False) -> InspectResult:
    """What is inside each lock or image (name, version, kind, where from, layer); with
    `package` (`NAME` or `NAME<VERSION`, ...), only the matches, and which targets hold one. An
    image is described by its lock (`lock`), checked to be the lock it was built from."""
    # lazy: the inventory commands load only what they use (docs/architecture.md)
    from imagelock.sbom.inspect import inspect as do_inspect
    from imagelock.sbom.query import parse_condition
    from imagelock.sbom.targets import resolve_target

    condition = parse_condition(package) if package is not None else None
    found = [resolve_target(t, lock=lock, platform=platform, insecure=insecure) for t in targets]
    return do_inspect(found, condition=condition, platform=platform)


def sbom(target: str, *, fmt: Literal["spdx", "cyclonedx"], store: Store | Path | None = None,
         lock: Path | None = None, platform: str | None = None,
         mirrors: Mirrors | None = None, offline: bool = False,
         insecure: bool = False) -> Sbom:
    """The SPDX 2.3 or CycloneDX 1.6 JSON SBOM of a lock's image (or of an image, with its
    lock): every package, wheel, download and context file with sha256 and purl, from the lock
    and the pinned bytes alone; the same lock always gives the same bytes."""
    # lazy: the inventory commands load only what they use (docs/architecture.md)
    from imagelock.sbom.document import make_sbom
    from imagelock.sbom.targets import resolve_target

    found = resolve_target(target, lock=lock, platform=platform, insecure=insecure)
    return make_sbom(found, fmt, _store(store), platform=platform, cli_mirrors=mirrors,
                     offline=offline)


def attach_recipe(
    ref: str,
    lock_path: Path,
    *,
    store: Store | Path | None = None,
    inputs: bool = False,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    insecure: bool = False,
) -> Published:
    """Attach the recipe of the lock (spec, lock, pinned context files) and, with `inputs`, its
    input bundle to the registry image the lock describes."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.rebuild.publish import publish

    return publish(ref, lock_path, recipe=True, inputs=inputs, store=_store(store),
                   cli_mirrors=cli_mirrors or {}, cli_snapshots=cli_snapshots or {},
                   offline=offline, insecure=insecure)


def rebuild_from_reference(
    ref: str,
    *,
    store: Store | Path | None = None,
    workdir: Path,
    vendor_keys: Sequence[PublicKey] = (),
    keys_from: str = "",
    keyrings: Mapping[str, str] | None = None,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    offline: bool = False,
    sandbox: bool = True,
    platform: str | None = None,
    insecure: bool = False,
    keep: Path | None = None,
    diffoscope: Path | None = None,
) -> ReferenceRebuild:
    """Rebuild an image from its reference alone: provenance, recipe and inputs found beside it
    (docs/rebuilder.md)."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.trust.reference import rebuild_reference

    return rebuild_reference(ref, store=_store(store), vendor_keys=vendor_keys, keys_from=keys_from,
                             keyrings=keyrings, cli_mirrors=cli_mirrors,
                             cli_snapshots=cli_snapshots, offline=offline, sandbox=sandbox,
                             platform=platform, workdir=workdir, insecure=insecure, keep=keep,
                             diffoscope=diffoscope)


def inputs_check(
    target: str,
    *,
    store: Store | Path | None = None,
    workdir: Path,
    image: str | None = None,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    cli_snapshots: Mapping[str, list[str]] | None = None,
    keyrings: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> RotReport:
    """Where every input of a lock (or of an image's recipe) is still available."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.rebuild.reference import is_reference
    from imagelock.rebuild.rot import check_lock, check_reference

    mirrors, snaps, rings = cli_mirrors or {}, cli_snapshots or {}, dict(keyrings or {})
    st = _store(store)
    if is_reference(target) and not Path(target).exists():
        return check_reference(target, store=st, cli_mirrors=mirrors, cli_snapshots=snaps,
                               keyrings=rings, workdir=workdir, insecure=insecure)
    path = Path(target)
    lock_path = path / LOCK_FILENAME if path.is_dir() else path
    if image is not None:
        return check_reference(image, store=st, cli_mirrors=mirrors, cli_snapshots=snaps,
                               keyrings=rings, workdir=workdir, insecure=insecure,
                               lock_path=lock_path)
    return check_lock(lock_path, store=st, cli_mirrors=mirrors, cli_snapshots=snaps,
                      keyrings=rings)


# --- the rebuilder fleet ----------------------------------------------------------------------


def watch(
    sources: Sequence[str],
    *,
    rebuilder_keys: Sequence[PublicKey],
    vendor_keys: Sequence[PublicKey] = (),
    since: datetime | None = None,
    limit: int | None = None,
    platform: str | None = None,
    insecure: bool = False,
) -> WatchResult:
    """The work a rebuilder has not done: every image of `sources` (registry repositories, all
    their tags, or files of references) with vendor provenance (signed by one of `vendor_keys`,
    when given) and no VSA signed by one of `rebuilder_keys` (docs/rebuilder.md). Only reads."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.fleet.watch import watch as find_work

    if not rebuilder_keys:
        raise InputError("watch needs the rebuilder's public key (--rebuilder KEY.pub)",
                         hint="a VSA from this rebuilder is one that key's signature verifies")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: give a positive number of work items")
    return find_work(sources, rebuilder_keys=rebuilder_keys, vendor_keys=vendor_keys,
                     since=since, limit=limit, platform=platform, insecure=insecure)


def status(
    sources: Sequence[str],
    *,
    policy: Path | None = None,
    rebuilders: Sequence[Path] = (),
    platform: str | None = None,
    insecure: bool = False,
) -> StatusResult:
    """Per image of `sources`, which trusted rebuilders vouched (PASSED) and which disagreed
    (FAILED): those of `policy` (and its vendors' keys for the provenance) and the public key
    files `rebuilders`, each named by its file name."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.fleet.status import status as fleet_status
    from imagelock.trust.keys import load_public_key_file

    named = [(p.name, load_public_key_file(p)) for p in rebuilders]
    vendors: list[PublicKey] = []
    notes: list[str] = []
    if policy is not None:
        # lazy: each API function loads only its own stage (docs/architecture.md)
        from imagelock.trust.policy import load_policy

        loaded = load_policy(policy)
        for s in loaded.signers:
            if s.key is None:
                notes.append(f"{s.role} {s.name!r} is a sigstore identity; status reads "
                             "key-signed VSAs only (verify counts both)")
            elif s.role == "rebuilder":
                named.append((s.name, s.key))
            else:
                vendors.append(s.key)
    if not named:
        raise InputError("status needs the trusted rebuilders: --policy POLICY (its "
                         "rebuilders.trusted) or --rebuilder KEY.pub")
    return fleet_status(sources, rebuilders=named, vendor_keys=vendors, platform=platform,
                        insecure=insecure, notes=notes)


def vouch_once(
    ref: str,
    *,
    key: PublicKey,
    store: Store | Path | None = None,
    platform: str | None = None,
    insecure: bool = False,
) -> AbstractContextManager[Claim]:
    """Hold the registry image `ref` for one rebuilder (`key`: its public key) while the caller
    rebuilds, signs and pushes its VSA; the claim's `existing` is set when that rebuilder's VSA
    is already attached, and the caller then skips. Workers sharing a store leave one VSA."""
    # lazy: the registry client loads only for the commands that talk to a registry
    from imagelock.fleet.once import vouch_once as claim

    return claim(ref, key=key, store_root=_store(store).root, platform=platform,
                 insecure=insecure)
