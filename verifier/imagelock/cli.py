"""The command line: each command parses its options, calls `imagelock.api`, prints the typed
result (its JSON with `--json`, else its human form) and maps it to an exit code; errors become
their message (or JSON) and their exit code. Commands import what they need when they run, so
`imagelock --version` and `verify` start fast.

Exit codes: 0 ok; 1 verification failed or mismatch; 2 bad input or usage; 3 an input could not
be fetched; 4 sandbox or tool unavailable; 70 internal error (a bug: please report it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imagelock import __version__
from imagelock.core.errors import (
    EXIT_FETCH_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_VERIFICATION_FAILED,
    ImagelockError,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from imagelock.api import Mirrors
    from imagelock.trust.keys import PublicKey
    from imagelock.trust.signing import Signer

app = typer.Typer(
    name="imagelock",
    help="Reproducible container images: a spec (imagelock.yaml) is locked into a lockfile "
    "(imagelock.lock) that pins every input by sha256; `build` turns the lock into the same OCI "
    "image bytes on any machine; `rebuild` lets anyone check that.\n\n"
    "Exit codes: 0 ok, 1 verification failed or mismatch, 2 bad input or usage, 3 an input "
    "could not be fetched, 4 sandbox or tool unavailable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Store of downloaded inputs. Default: $IMAGELOCK_STORE, else "
                 "$XDG_CACHE_HOME/imagelock/store (~/.cache/imagelock/store).",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
MirrorOpt = Annotated[
    list[str] | None,
    typer.Option("--mirror", metavar="NAME=URL", help="Mirror for source NAME, tried before "
                 "IMAGELOCK_MIRROR_<NAME>, the spec's mirrors and the machine's configuration. "
                 "Repeatable; several for one source are tried in order."),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never use the network: every input must already be in the store.")
]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr (errors "
                     "are still printed).")]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="Also list every input, layer "
                       "and blob on stderr as it is done.")]
SnapshotOpt = Annotated[
    list[str] | None,
    typer.Option("--snapshot", metavar="NAME=URL", help="Snapshot archive for Debian source "
                 "NAME (e.g. BASE/archive/debian), tried after the mirrors and the input bundle: "
                 "URL/YYYYMMDDTHHMMSSZ/pool/... at the date of the signed index. Repeatable; "
                 "before IMAGELOCK_SNAPSHOT_<NAME> and the spec's snapshots."),
]
KeyringOpt = Annotated[
    list[str] | None,
    typer.Option("--keyring", metavar="NAME=PATH", help="OpenPGP keyring trusted to sign the "
                 "indexes of Debian source NAME. Default: the spec's keyring when it is a "
                 "system keyring (/usr/share/keyrings, /etc/apt/...). Repeatable."),
]


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    from imagelock.core.errors import InputError

    out: dict[str, str] = {}
    for v in values or []:
        name, sep, value = v.partition("=")
        if not sep or not name or not value:
            raise InputError(f"{option} {v!r} is not NAME=VALUE")
        out[name] = value
    return out


def _progress(quiet: bool, verbose: bool, json_out: bool) -> contextlib.AbstractContextManager[object]:
    """Progress on stderr while a command runs: live on a terminal, a line per phase in logs
    and with --json, nothing with --quiet (docs/rebuild-report.md shows both)."""
    from imagelock.cli_display import show_progress

    return show_progress(quiet=quiet, verbose=verbose, json_out=json_out)


def _run(json_out: bool, body: Callable[[], int],
         progress: contextlib.AbstractContextManager[object] | None = None) -> None:
    """Run a command body (showing `progress` while it runs); its result is the exit code.
    Errors become a message (or JSON) and their exit code, printed once the display is gone."""
    try:
        with progress or contextlib.nullcontext():
            code = body()
    except ImagelockError as e:
        if json_out:
            from imagelock.formats.results import ErrorResult

            _print_json(ErrorResult.model_validate(e.as_json()))
        print(e.render(), file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours.
        sys.stderr.close()
        raise typer.Exit(EXIT_OK) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except typer.Exit:
        raise
    except Exception as e:  # noqa: BLE001 - last line of defence: never a bare traceback
        if os.environ.get("IMAGELOCK_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(e).__name__}: {e}\n  hint: this is a bug in imagelock; "
              "rerun with IMAGELOCK_DEBUG=1 for details and report it", file=sys.stderr)
        raise typer.Exit(EXIT_INTERNAL) from None
    if code != EXIT_OK:
        raise typer.Exit(code)


def _print_json(result: BaseModel) -> None:
    print(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))


def _emit(json_out: bool, result: BaseModel, human: str) -> None:
    if json_out:
        _print_json(result)
    else:
        print(human)


def _mirrors(values: list[str] | None) -> Mirrors:
    from imagelock.fetch.mirrors import parse_cli_mirrors

    return parse_cli_mirrors(values or [])


SigstoreOpt = Annotated[bool, typer.Option("--sigstore", help="Sign keyless with sigstore: an "
                       "OIDC identity token (--identity-token, $SIGSTORE_ID_TOKEN, or the CI's "
                       "ambient credential) gets a short-lived certificate; writes a bundle "
                       "beside the image as PATH.N.sigstore.json.")]
TokenOpt = Annotated[str | None, typer.Option("--identity-token", metavar="JWT",
                     help="OIDC identity token for --sigstore.")]
TrustedRootOpt = Annotated[Path | None, typer.Option("--trusted-root", help="Sigstore trusted root "
                           "JSON for --sigstore (with --signing-config). Default: the public "
                           "instance's, fetched through TUF.")]
SigningConfigOpt = Annotated[Path | None, typer.Option("--signing-config", help="Sigstore "
                             "signing config JSON (service URLs) for --sigstore.")]


@app.command()
def lock(
    spec: Annotated[Path | None, typer.Argument(help="The spec, or a directory holding "
                                                "imagelock.yaml. Default: ./imagelock.yaml.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write the lock. "
                      "Default: imagelock.lock beside the spec.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    offline: OfflineOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Resolve nothing and write nothing: exit 1 "
                     "if the spec, the requirements file or a context file no longer matches the "
                     "existing lock (digests and sections), naming each difference. Pins are not "
                     "compared with what the archives serve today, so a republished index does "
                     "not make a lock out of date.")] = False,
    upgrade: Annotated[list[str] | None, typer.Option("--upgrade", metavar="PACKAGE", help="Move "
                       "this Debian package, and every locked binary of its source package, to "
                       "the newest version the sources offer (and what that newly needs); every "
                       "other pin of the existing lock stays. Repeatable.")] = None,
    upgrade_security: Annotated[bool, typer.Option("--upgrade-security", help="Move exactly the "
                                "Debian pins that a security suite has a newer version of (and "
                                "what they newly need): what `imagelock outdated` flags.")] = False,
    upgrade_all: Annotated[bool, typer.Option("--upgrade-all", help="Ignore the existing lock's "
                           "pins and resolve everything afresh.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Resolve a spec into a lock: pin every input by sha256 and record the digests the build
    must produce. An existing lock's Debian pins are kept unless named with --upgrade (or no
    longer needed). The lock is byte-stable: the same inputs write the same bytes."""

    def body() -> int:
        from imagelock import api

        mirrors, upgrades = _mirrors(mirror), upgrade or []
        if check:
            state = api.lock_up_to_date(spec, output=output, upgrade=upgrades,
                                        upgrade_all=upgrade_all, upgrade_security=upgrade_security)
            _emit(json_out, state, state.human())
            return EXIT_OK if state.up_to_date else EXIT_VERIFICATION_FAILED
        result = api.lock(spec, output=output, store=store, mirrors=mirrors, offline=offline,
                          upgrade=upgrades, upgrade_all=upgrade_all,
                          upgrade_security=upgrade_security)
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body, _progress(quiet, verbose, json_out))


@app.command()
def fetch(
    lock_path: Annotated[Path | None, typer.Argument(metavar="LOCK", help="The lock, or its "
                         "directory. Default: ./imagelock.lock.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Download nothing: only check that "
                       "every input is in the store and intact (exit 3 if not).")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Fill the store with every input the lock pins, checking each sha256."""

    def body() -> int:
        from imagelock import api

        result = api.fetch(lock_path, store=store, mirrors=_mirrors(mirror), offline=offline)
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body, _progress(quiet, verbose, json_out))


class SbomFormat(StrEnum):
    spdx = "spdx"
    cyclonedx = "cyclonedx"


class OutputFormat(StrEnum):
    oci = "oci"
    docker_archive = "docker-archive"


@app.command()
def build(
    lock_path: Annotated[Path | None, typer.Argument(metavar="LOCK", help="The lock, or its "
                         "directory. Default: ./imagelock.lock.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output: a directory for an OCI "
                      "layout, a file for a docker-archive. Replaced atomically if it is an earlier "
                      "output.")] = Path("out"),
    fmt: Annotated[OutputFormat, typer.Option("--format", help="oci (an OCI image layout) or "
                   "docker-archive (a tar for `podman load` / `docker load`).")] = OutputFormat.oci,
    platform: Annotated[str | None, typer.Option("--platform", help="The platform a "
                        "docker-archive holds (one per archive). Default: the lock's first.")] = None,
    select: Annotated[str | None, typer.Option("--select", metavar="REGEX", help="For a set's "
                      "lock: build the images whose name matches (and their parents), each an "
                      "OCI layout OUTPUT/NAME. Default: every image of the set.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    offline: OfflineOpt = False,
    sign: Annotated[Path | None, typer.Option("--sign", metavar="KEY", help="Sign SLSA provenance "
                    "for the image with this private key (passphrase from "
                    "$IMAGELOCK_KEY_PASSPHRASE or the terminal); written to OUTPUT.intoto.jsonl.")] = None,
    sigstore: SigstoreOpt = False,
    identity_token: TokenOpt = None,
    trusted_root: TrustedRootOpt = None,
    signing_config: SigningConfigOpt = None,
    sbom_formats: Annotated[list[SbomFormat] | None, typer.Option("--sbom", metavar="FORMAT",
                            help="With --sign/--sigstore, also sign the image's SBOM (spdx or "
                            "cyclonedx; repeatable) as an in-toto statement beside the "
                            "provenance.")] = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Build the image a lock describes, deterministically, and compare it with the lock's
    expected digests (exit 1 if they differ, a content-only match included: the lock promises
    the manifest digest). Prints the config and manifest digests."""

    def body() -> int:
        from imagelock import api

        signer = api.signer(sign, sigstore=sigstore, identity_token=identity_token,
                            trusted_root=trusted_root, signing_config=signing_config)
        result = api.build(lock_path, output=output, format=fmt.value, store=store,
                           mirrors=_mirrors(mirror), offline=offline, signer=signer, platform=platform,
                           sbom_formats=[f.value for f in sbom_formats or []], select=select)
        human = result.human()
        if signer is not None and result.verdict != "reproduced":
            human += "\nnot signed: the build is not the image the lock names"
        _emit(json_out, result, human)
        return EXIT_OK if result.verdict == "reproduced" else EXIT_VERIFICATION_FAILED

    _run(json_out, body, _progress(quiet, verbose, json_out))


@app.command()
def check(
    spec: Annotated[Path | None, typer.Argument(help="The spec (its lock beside it), or their "
                                                "directory. Default: ./imagelock.yaml.")] = None,
    builds: Annotated[int, typer.Option("-n", "--builds", help="Builds to compare: a control "
                      "and N-1 under every variation at once.")] = 2,
    variation: Annotated[list[str] | None, typer.Option("--variation", help="Only this variation "
                         "(repeatable): wall-clock, timezone, locale, umask, hostname, file-order, "
                         "home, build-path, cpu-count. Default: all.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The vendor's gate before publishing: build the lock several times under reprotest-style
    variations (wall clock, time zone, locale, umask, host name, context file order, HOME, build
    path, CPU count) and report which variation changes which file. When builds differ, each
    variation is tried alone, and a second plain build shows what changes in every build (random
    bytes, the build's own clock). Exit 0 when every build is the same, 1 when any differs."""

    def body() -> int:
        from imagelock import api

        result = api.check(spec, builds=builds, variations=variation, store=store,
                           mirrors=_mirrors(mirror))
        _emit(json_out, result, result.human())
        return EXIT_OK if result.reproducible else EXIT_VERIFICATION_FAILED

    _run(json_out, body)


InsecureOpt = Annotated[
    bool, typer.Option("--insecure-registry", help="Allow plain HTTP to a registry that is not on "
                       "loopback (loopback registries always may use it).")
]


@app.command()
def rebuild(
    lock_path: Annotated[str | None, typer.Argument(metavar="LOCK|REF", help="The lock, or its "
                         "directory (default ./imagelock.lock); or an image reference "
                         "(HOST/REPO@sha256:..., or oci:DIR pulled with --with-inputs) to rebuild "
                         "from its recipe and inputs alone.")] = None,
    image: Annotated[str | None, typer.Option("--image", metavar="REF", help="The published image "
                     "to compare with: oci:DIR[:TAG], docker-archive:FILE, HOST[:PORT]/REPO:TAG or "
                     "HOST/REPO@sha256:... Without it, compare with the lock's digests only.")] = None,
    no_sandbox: Annotated[bool, typer.Option("--no-sandbox", help="Build without the bubblewrap "
                          "sandbox (the result says so). By default a missing sandbox is an "
                          "error (exit 4).")] = False,
    platform: Annotated[str | None, typer.Option("--platform", help="Platform to rebuild and "
                        "compare, or `all`: every platform and the index, from one build (with "
                        "--sign, a VSA for each manifest and one for the index). Default: the "
                        "lock's first.")] = None,
    keep: Annotated[Path | None, typer.Option("--keep", metavar="DIR", help="Keep both images as "
                    "OCI layouts in DIR/rebuilt and DIR/published for inspection.")] = None,
    diffoscope: Annotated[Path | None, typer.Option("--diffoscope", metavar="DIR", help="On a "
                          "mismatch, hand each changed file to diffoscope (when installed), "
                          "writing its reports to DIR.")] = None,
    report_html: Annotated[Path | None, typer.Option("--report-html", metavar="FILE", help="Also "
                           "write the comparison as one self-contained HTML page: verdict, "
                           "identities, differing files per layer and class, inline diffs of "
                           "small text files, links to --diffoscope's outputs.")] = None,
    sign: Annotated[Path | None, typer.Option("--sign", metavar="KEY", help="On reproduced or "
                    "reproduced-content, sign a SLSA Verification Summary (VSA) with this private "
                    "key.")] = None,
    sign_failures: Annotated[bool, typer.Option("--sign-failures", help="With --sign, also sign a "
                             "FAILED VSA on a mismatch.")] = False,
    attestation_out: Annotated[Path | None, typer.Option("--attestation-out", metavar="FILE",
                               help="Where to append the signed VSA. Default: beside a local "
                               "image (PATH.intoto.jsonl), else ./rebuild.intoto.jsonl.")] = None,
    push_attestation: Annotated[bool, typer.Option("--push-attestation", help="Also attach the "
                                "signed VSA to a registry image as an OCI 1.1 referrer.")] = False,
    verifier_id: Annotated[str | None, typer.Option("--verifier-id", help="Your identity as a "
                           "rebuilder (a URI), written into the VSA.")] = None,
    sigstore: SigstoreOpt = False,
    identity_token: TokenOpt = None,
    trusted_root: TrustedRootOpt = None,
    signing_config: SigningConfigOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="List every difference.")] = False,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    offline: OfflineOpt = False,
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    vendor_key: Annotated[list[Path] | None, typer.Option("--vendor-key", metavar="KEY",
                          help="With REF: count only provenance signed by this public key "
                          "(repeatable).")] = None,
    vendor_policy: Annotated[Path | None, typer.Option("--policy", help="With REF: count only "
                             "provenance signed by the vendor keys of this policy.")] = None,
    keyring: KeyringOpt = None,
    snapshot: SnapshotOpt = None,
    skip_if_vouched: Annotated[bool, typer.Option("--skip-if-vouched", help="With REF, --sign "
                               "KEY and --push-attestation: do nothing (exit 0) when a VSA "
                               "signed by KEY is already attached to the image; workers sharing "
                               "a store never rebuild one image twice (docs/rebuilder.md).")
                               ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the image a lock describes, in isolation, and compare it with the published image
    (or the lock): fetch every pinned input (hashes checked), build in a bubblewrap sandbox with
    no network and the store read-only, compare both identities, explain any difference down to
    the file, and optionally sign the verdict.

    With an image reference instead of a lock, the provenance, the recipe and the inputs are
    found beside the image: the recipe must be the lock the provenance names, every Debian pin
    is checked against its signed index, and inputs come from the local store, the mirrors, the
    input bundle, then snapshot archives.

    Verdicts: reproduced (bit-identical, exit 0); reproduced-content (same content, other
    compression, proven by decompressing the published blobs, exit 0); mismatch (exit 1);
    error (the published image could not be read or checked, exit 3)."""

    def body() -> int:
        from imagelock import api
        from imagelock.rebuild.rebuild import render_rebuild
        from imagelock.rebuild.reference import is_reference

        if lock_path is not None and is_reference(lock_path):
            if image is not None:
                raise api.InputError("give an image reference or --image, not both",
                                     hint="rebuild REF compares the rebuild with REF itself")
            return _rebuild_reference(
                lock_path, store=store, mirror=mirror, snapshot=snapshot, keyring=keyring,
                vendor_key=vendor_key or [], vendor_policy=vendor_policy, offline=offline,
                sandbox=not no_sandbox, platform=platform, insecure=insecure, keep=keep,
                diffoscope=diffoscope, sign=sign, sigstore=sigstore, identity_token=identity_token,
                trusted_root=trusted_root, signing_config=signing_config,
                sign_failures=sign_failures, attestation_out=attestation_out,
                push_attestation=push_attestation, verifier_id=verifier_id, verbose=verbose,
                json_out=json_out, skip_if_vouched=skip_if_vouched)
        if vendor_key or vendor_policy or keyring or snapshot or skip_if_vouched:
            raise api.InputError("--vendor-key, --policy, --keyring, --snapshot and "
                                 "--skip-if-vouched go with a rebuild from an image reference "
                                 "(rebuild REF)")
        api.check_rebuild_signing(signing=sign is not None or sigstore, sandbox=not no_sandbox,
                                  image=image, push_attestation=push_attestation)
        signer = api.signer(sign, sigstore=sigstore, identity_token=identity_token,
                            trusted_root=trusted_root, signing_config=signing_config)
        report = api.rebuild(
            Path(lock_path) if lock_path else None, image=image, sandbox=not no_sandbox,
            platform=platform, keep=keep, diffoscope=diffoscope, report_html=report_html,
            store=store, mirrors=_mirrors(mirror), offline=offline, insecure=insecure,
            signer=signer, sign_failures=sign_failures, attestation_out=attestation_out,
            push_attestation=push_attestation, verifier_id=verifier_id)
        _emit(json_out, report, render_rebuild(report, verbose=verbose))
        return {"mismatch": EXIT_VERIFICATION_FAILED, "error": EXIT_FETCH_FAILED}.get(
            report.verdict, EXIT_OK)

    _run(json_out, body, _progress(quiet, verbose, json_out))


def _rebuild_reference(
    ref: str, *, store: Path | None, mirror: list[str] | None, snapshot: list[str] | None,
    keyring: list[str] | None, vendor_key: list[Path], vendor_policy: Path | None, offline: bool,
    sandbox: bool, platform: str | None, insecure: bool, keep: Path | None,
    diffoscope: Path | None, sign: Path | None, sigstore: bool, identity_token: str | None,
    trusted_root: Path | None, signing_config: Path | None, sign_failures: bool,
    attestation_out: Path | None, push_attestation: bool, verifier_id: str | None,
    verbose: bool, json_out: bool, skip_if_vouched: bool = False,
) -> int:
    """`rebuild REF`: the rebuild from an image reference alone (docs/rebuilder.md); with
    `skip_if_vouched`, once per image and rebuilder key (fleet/once.py)."""
    from imagelock import api
    from imagelock.core.errors import InputError
    from imagelock.trust.keys import load_public_key_file

    signing = sign is not None or sigstore
    if signing and not sandbox:
        raise InputError("--sign with --no-sandbox: a VSA vouches for an isolated rebuild",
                         hint="rebuild in the sandbox to sign, or drop --sign")
    if push_attestation and not signing:
        raise InputError("--push-attestation needs --sign KEY or --sigstore")
    keys = [load_public_key_file(k) for k in vendor_key]
    named = ", ".join(str(k) for k in vendor_key)
    if vendor_policy is not None:
        from imagelock.trust.policy import load_policy

        loaded = load_policy(vendor_policy)
        keys += [s.key for s in loaded.signers if s.role == "vendor" and s.key is not None]
        if not any(s.role == "vendor" and s.key is not None for s in loaded.signers):
            raise InputError("the policy names no vendor key", path=vendor_policy,
                             field="vendors", hint="rebuild REF checks provenance against "
                             "vendor keys (sigstore identities are not used here)")
        named = ", ".join(filter(None, [named, f"the vendors of {vendor_policy}"]))
    if skip_if_vouched and (sign is None or not push_attestation):
        raise InputError("--skip-if-vouched needs --sign KEY and --push-attestation",
                         hint="it recognises this rebuilder's VSAs among the image's referrers "
                         "by the key's signature, so the VSA must be signed with a key and "
                         "attached")
    key = api.signer(sign, sigstore=sigstore, identity_token=identity_token,
                     trusted_root=trusted_root, signing_config=signing_config)
    with contextlib.ExitStack() as held:
        if skip_if_vouched:
            from imagelock.trust.signing import KeySigner

            if not isinstance(key, KeySigner):  # pragma: no cover - --sign KEY, checked above
                raise InputError("--skip-if-vouched needs --sign KEY")
            claim = held.enter_context(api.vouch_once(ref, key=key.key.public, store=store,
                                                      platform=platform, insecure=insecure))
            if claim.existing is not None:
                from imagelock.formats.results import RebuildSkipped

                done = claim.existing
                skipped = RebuildSkipped(
                    skipped=True, image=claim.image, subject=claim.subject,
                    reason=f"this rebuilder (keyid {claim.keyid}) already attached a "
                    f"{done.result} VSA ({done.source})", result=done.result,
                    referrer=done.source.removeprefix("referrer "), keyid=claim.keyid)
                _emit(json_out, skipped, skipped.human())
                return EXIT_OK
            ref = claim.image  # by digest: a tag that moves meanwhile changes nothing
        return _rebuild_and_sign(
            ref, key=key, store=store, keys=keys, named=named, keyring=keyring, mirror=mirror,
            snapshot=snapshot, offline=offline, sandbox=sandbox, platform=platform,
            insecure=insecure, keep=keep, diffoscope=diffoscope, sign_failures=sign_failures,
            attestation_out=attestation_out, push_attestation=push_attestation,
            verifier_id=verifier_id, verbose=verbose, json_out=json_out)


def _rebuild_and_sign(
    ref: str, *, key: Signer | None, store: Path | None, keys: list[PublicKey], named: str,
    keyring: list[str] | None, mirror: list[str] | None, snapshot: list[str] | None,
    offline: bool, sandbox: bool, platform: str | None, insecure: bool, keep: Path | None,
    diffoscope: Path | None, sign_failures: bool, attestation_out: Path | None,
    push_attestation: bool, verifier_id: str | None, verbose: bool, json_out: bool,
) -> int:
    from imagelock import api
    from imagelock.core.errors import InputError
    from imagelock.fetch.snapshot import parse_cli_snapshots
    from imagelock.oci.locations import local_path
    from imagelock.rebuild.rebuild import scratch

    with scratch() as tmp:
        res = api.rebuild_from_reference(
            ref, store=store, workdir=Path(tmp), vendor_keys=keys, keys_from=named,
            keyrings=_pairs(keyring, "--keyring"), cli_mirrors=_mirrors(mirror),
            cli_snapshots=parse_cli_snapshots(snapshot or []), offline=offline, sandbox=sandbox,
            platform=platform, insecure=insecure, keep=keep, diffoscope=diffoscope)
        report = res.report()
        human = res.human(verbose)
        matched = res.verdict in ("reproduced", "reproduced-content")
        if key is not None and (matched or (sign_failures and res.verdict == "mismatch")):
            from imagelock.trust.signing import sign_rebuild

            local = local_path(res.image) if res.image.startswith("oci:") else None
            out = attestation_out or (local.with_name(local.name + ".intoto.jsonl")
                                      if local is not None else Path("rebuild.intoto.jsonl"))
            written, line = sign_rebuild(res.result, key, out=out, verifier_id=verifier_id,
                                         input_attestations=res.input_attestations())
            report = report.model_copy(update={"attestation": str(written)})
            human += f"\nsigned {'PASSED' if matched else 'FAILED'} VSA -> {written}"
            if push_attestation:
                if local is not None:
                    raise InputError("--push-attestation needs a registry image, not a pulled one",
                                     hint="hand the .intoto.jsonl file over, or attach it later")
                from imagelock.trust.gate import push_attestation as push_att

                digest = push_att(res.image, line, insecure=insecure)
                report = report.model_copy(update={"referrer": digest})
                human += f"\nattached to {res.image} as referrer {digest}"
    _emit(json_out, report, human)
    return {"mismatch": EXIT_VERIFICATION_FAILED, "error": EXIT_FETCH_FAILED}.get(
        report.verdict, EXIT_OK)


@app.command()
def push(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="An OCI layout directory, a "
                     "docker-archive file, or oci:DIR[:TAG] / docker-archive:FILE.")],
    ref: Annotated[str, typer.Argument(metavar="REF", help="HOST[:PORT]/REPO[:TAG].")],
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Push an image to a registry (blobs, then the manifest, then the tag); prints the manifest
    digest. A layout of several platforms (a multi-platform build) goes as one image index:
    each platform's manifest, then the index at the tag. Credentials come from the usual
    container auth files."""

    def body() -> int:
        from imagelock import api

        result = api.push(image, ref, insecure=insecure)
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body, _progress(quiet, verbose, json_out))


@app.command()
def pull(
    ref: Annotated[str, typer.Argument(metavar="REF", help="HOST[:PORT]/REPO:TAG or "
                   "HOST[:PORT]/REPO@sha256:...")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OCI layout directory to write.")],
    platform: Annotated[str | None, typer.Option("--platform", help="Platform to pull from an "
                        "index, or `all`: every platform of the index into one layout. "
                        "Default: linux/amd64.")] = None,
    with_inputs: Annotated[bool, typer.Option("--with-inputs", help="Also keep the image's "
                           "attestations, recipe and input bundle in OUTPUT.referrers/, so that "
                           "`rebuild oci:OUTPUT --offline` needs nothing else.")] = False,
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Pull an image from a registry into an OCI layout, checking every blob's digest while it
    streams."""

    def body() -> int:
        from imagelock import api

        from imagelock.formats.results import PulledArtifact, PulledReferrers

        if with_inputs and platform == "all":
            raise api.InputError("--with-inputs keeps one image's referrers",
                                 field="--platform", hint="pull one platform with --platform OS/ARCH")
        result = api.pull(ref, output, platform=platform, insecure=insecure)
        if with_inputs:
            kept, referrers = _pull_referrers(ref, result.manifest_digest, output, insecure)
            result = result.model_copy(update={"referrers": PulledReferrers(
                path=str(kept), artifacts=[PulledArtifact.model_validate(a) for a in referrers])})
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body, _progress(quiet, verbose, json_out))


def _pull_referrers(ref: str, digest: str, output: Path, insecure: bool
                    ) -> tuple[Path, list[dict[str, object]]]:
    """Copy the attestations, recipes and input bundles attached to the pulled image."""
    from imagelock.formats.recipe import INPUTS_ARTIFACT_TYPE, RECIPE_ARTIFACT_TYPE
    from imagelock.oci.locations import registry_form
    from imagelock.oci.reference import parse_reference
    from imagelock.oci.referrer_sources import RegistryReferrers, copy_referrers, referrers_dir
    from imagelock.formats.attestation import DSSE_INTOTO_PAYLOAD_TYPE as ARTIFACT_TYPE
    from imagelock.formats.attestation import SIGSTORE_BUNDLE_MEDIA_TYPE as BUNDLE_TYPE

    r = parse_reference(registry_form(ref).removeprefix("docker://")).at(digest)
    kept = referrers_dir(output)
    with RegistryReferrers(r, insecure=insecure) as source:
        copied = copy_referrers(source, {ARTIFACT_TYPE, BUNDLE_TYPE, RECIPE_ARTIFACT_TYPE,
                                         INPUTS_ARTIFACT_TYPE}, kept)
    return kept, [{"digest": a.digest, "artifact_type": a.artifact_type, "blobs": len(a.layers)}
                  for a in copied]


@app.command()
def verify(
    image: Annotated[str, typer.Argument(metavar="REF", help="The image to check: a layout "
                     "directory, a docker-archive, oci:DIR[:TAG], docker-archive:FILE, or a "
                     "registry reference.")],
    policy: Annotated[Path, typer.Option("--policy", help="The policy (policy.yaml).")],
    attestations: Annotated[list[Path] | None, typer.Argument(metavar="[ATTESTATION]...",
                            help="Attestation files (DSSE envelopes, .intoto.jsonl, sigstore "
                            "bundles), besides those found beside the image or in the "
                            "registry.")] = None,
    platform: Annotated[str | None, typer.Option("--platform", help="Platform of an index to "
                        "check. Default: linux/amd64.")] = None,
    insecure: InsecureOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The consumer's gate before deployment: check the image's attestations (signatures,
    subject digest, predicate types, age, rebuild verdicts) against a policy that names trusted
    vendors and rebuilders with a threshold. Fails closed. Exit 0 when the policy is met, 1 when
    it refuses (the failed rule and why are printed), 2 for a malformed policy or attestation."""

    def body() -> int:
        from imagelock import api

        result = api.verify(image, policy=policy, attestations=attestations or [],
                            platform=platform, insecure=insecure)
        _emit(json_out, result, result.human())
        return EXIT_OK if result.passed else EXIT_VERIFICATION_FAILED

    _run(json_out, body)


@app.command()
def attach(
    image: Annotated[str, typer.Argument(metavar="REF", help="A registry image, "
                     "HOST[:PORT]/REPO@sha256:... or :TAG.")],
    attestations: Annotated[list[Path] | None, typer.Argument(metavar="[ATTESTATION]...",
                            help="Files of DSSE envelopes (.intoto.jsonl: one per line), e.g. "
                            "what `build --sign` wrote.")] = None,
    recipe: Annotated[Path | None, typer.Option("--recipe", metavar="LOCK", help="Also attach "
                      "the recipe of this lock (or its directory): the spec, the lock and every "
                      "context file it pins, so the image can be rebuilt from its reference "
                      "alone.")] = None,
    inputs: Annotated[bool, typer.Option("--inputs", help="With --recipe, also attach the input "
                      "bundle: every pinned blob and the signed Debian indexes (blobs the "
                      "repository already holds are not uploaded again).")] = False,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    snapshot: SnapshotOpt = None,
    offline: OfflineOpt = False,
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Attach attestations to an image in a registry as OCI 1.1 referrers (with the tag-scheme
    fallback on registries without the referrers API), so `verify REF` finds them. Each envelope
    must name the image's manifest digest as its subject. With --recipe (and --inputs), also
    attach what it takes to rebuild the image: its recipe and input bundle."""

    def body() -> int:
        from imagelock import api
        from imagelock.core.names import lock_file as recipe_lock
        from imagelock.formats.results import AttachResult

        if not attestations and recipe is None:
            raise api.InputError("nothing to attach",
                                 hint="give attestation files and/or --recipe LOCK")
        if inputs and recipe is None:
            raise api.InputError("--inputs needs --recipe LOCK (the bundle holds that lock's "
                                 "inputs)")
        published = None
        if recipe is not None:
            from imagelock.fetch.snapshot import parse_cli_snapshots

            published = api.attach_recipe(
                image, recipe_lock(recipe), store=store, inputs=inputs,
                cli_mirrors=_mirrors(mirror), cli_snapshots=parse_cli_snapshots(snapshot or []),
                offline=offline, insecure=insecure)
        result = (api.attach(image, attestations, insecure=insecure) if attestations
                  else AttachResult(ref=image, referrers=[]))
        if published is not None:
            result = AttachResult.model_validate({
                **result.model_dump(mode="json"), **published.as_json(), "ref": image,
                "published_lines": published.human()})
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body, _progress(quiet, verbose, json_out))


class KeyAlgorithm(StrEnum):
    ecdsa_p256 = "ecdsa-p256"
    ed25519 = "ed25519"


@app.command()
def keygen(
    output: Annotated[Path, typer.Option("-o", "--output", help="Private key file; the public key "
                      "goes to the same name plus .pub.")] = Path("imagelock.key"),
    algorithm: Annotated[KeyAlgorithm, typer.Option("--algorithm", help="ecdsa-p256 (widest "
                         "interoperability) or ed25519.")] = KeyAlgorithm.ecdsa_p256,
    no_passphrase: Annotated[bool, typer.Option("--no-passphrase", help="Leave the private key "
                             "unencrypted (for throw-away keys and tests only).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Make a signing key pair (PEM). The private key is encrypted with a passphrase from
    $IMAGELOCK_KEY_PASSPHRASE, or asked for on the terminal. Prints the keyid (hex sha256 of the
    DER public key), which policies may pin."""

    def body() -> int:
        from imagelock import api

        result = api.keygen(output, algorithm=algorithm.value, encrypt=not no_passphrase)
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The old lock (file or directory).")],
    new: Annotated[Path, typer.Argument(help="The new lock (file or directory).")],
    platform: Annotated[str | None, typer.Option("--platform", help="Only what this platform's "
                        "image gets. Default: every platform, each reviewed on its own.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """What changed between two locks, made for review: Debian packages added, removed, upgraded,
    downgraded or with changed bytes; context files, downloads and paths; image settings; and the
    expected digests. Exit 0 when they are the same, 1 when they differ."""

    def body() -> int:
        from imagelock.compare.locks import diff_locks, render_lock_diff
        from imagelock.core.names import lock_file
        from imagelock.formats.files import read_lock
        from imagelock.formats.results import LockDiffResult

        found = diff_locks(read_lock(lock_file(old)), read_lock(lock_file(new)), platform=platform)
        _emit(json_out, LockDiffResult.model_validate(found.as_json()), render_lock_diff(found))
        return EXIT_OK if found.empty else EXIT_VERIFICATION_FAILED

    _run(json_out, body)


@app.command()
def outdated(
    lock_file: Annotated[Path | None, typer.Argument(metavar="LOCK", help="The lock, or its "
                         "directory. Default: ./imagelock.lock. The spec beside it names the "
                         "suites to check.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Which Debian pins the spec's suites now hold newer versions of, security updates flagged:
    reads the suites' signed indexes (as `lock` does) and compares every pin. Exit 1 when a
    security suite has a newer version of a pin (`lock --upgrade-security` moves exactly those),
    0 otherwise, also when only non-security updates exist."""

    def body() -> int:
        from imagelock import api

        res = api.outdated(lock_file, store=store, mirrors=_mirrors(mirror))
        _emit(json_out, res, res.human())
        return EXIT_VERIFICATION_FAILED if res.security_pending else EXIT_OK

    _run(json_out, body)


@app.command()
def inspect(
    targets: Annotated[list[str], typer.Argument(metavar="LOCK|REF...", help="Locks (or their "
                       "directories), or images (oci:DIR, docker-archive:FILE, a registry "
                       "reference) with --lock.")],
    package: Annotated[str | None, typer.Option("--package", metavar="CONDITION", help="Only "
                       "this package: NAME, or NAME with a version condition, e.g. "
                       "'libssl3<3.0.22' (< <= = != >= >; Debian versions compare by Debian's "
                       "rules, wheels by PEP 440). Lists which targets match.")] = None,
    lock_file: Annotated[Path | None, typer.Option("--lock", metavar="LOCK", help="The lock of "
                         "the image(s) given; checked against each image's config digest.")] = None,
    platform: Annotated[str | None, typer.Option("--platform", help="Only this platform. "
                        "Default: every platform of each lock.")] = None,
    insecure: InsecureOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """What is inside an image, from its lock: every Debian package, wheel, context file and
    download with its version, kind, where it came from (SOURCE/SUITE) and layer. With
    --package, across many locks or images at once: which of them hold a package matching a
    version condition (exit 0 either way; the JSON lists the matches)."""

    def body() -> int:
        from imagelock import api

        res = api.inspect(targets, package=package, lock=lock_file, platform=platform,
                          insecure=insecure)
        _emit(json_out, res, res.human())
        return EXIT_OK

    _run(json_out, body)


@app.command()
def sbom(
    target: Annotated[str, typer.Argument(metavar="LOCK|REF", help="A lock (or its directory), "
                      "or an image (oci:DIR, docker-archive:FILE, a registry reference) with "
                      "--lock.")],
    fmt: Annotated[SbomFormat, typer.Option("--format", help="spdx (SPDX 2.3 JSON) or "
                   "cyclonedx (CycloneDX 1.6 JSON).")] = SbomFormat.spdx,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the document "
                      "here (atomically). Default: standard output.")] = None,
    lock_file: Annotated[Path | None, typer.Option("--lock", metavar="LOCK", help="The lock of "
                         "the image given; checked against its config digest.")] = None,
    platform: Annotated[str | None, typer.Option("--platform", help="The platform's image to "
                        "describe, or `all`: the multi-platform image as a whole (each "
                        "platform's image, a shared component once). Default: the lock's "
                        "first.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    offline: OfflineOpt = False,
    insecure: InsecureOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="With -o: print what was written as "
                        "one JSON document.")] = False,
) -> None:
    """A software bill of materials of the image, from its lock alone (no scanning): every
    Debian package, wheel, download and context file with its sha256 and package URL, its
    supplier or source package and its licence where the package states them machine-readably
    (else NOASSERTION), and who depends on whom. The pinned .debs and wheels are read from the
    store (fetched first, hash checked). The same lock always gives the same bytes."""

    def body() -> int:
        from imagelock import api
        from imagelock.core.atomic import atomic_file

        if json_out and output is None:
            raise api.InputError("--json describes the file written with -o; without -o the "
                                 "SBOM itself is printed", hint="add -o FILE, or drop --json")
        doc = api.sbom(target, fmt=fmt.value, store=store, lock=lock_file, platform=platform,
                       mirrors=_mirrors(mirror), offline=offline, insecure=insecure)
        if output is None:
            sys.stdout.buffer.write(doc.data)
            sys.stdout.flush()
            return EXIT_OK
        with atomic_file(output) as tmp:
            tmp.write_bytes(doc.data)
        res = doc.result(str(output))
        _emit(json_out, res, res.human())
        return EXIT_OK

    _run(json_out, body)


SourcesArg = Annotated[list[str], typer.Argument(
    metavar="SOURCE...", help="A registry repository HOST/REPO (every tag, at most 10,000), an "
    "image HOST/REPO:TAG or HOST/REPO@sha256:..., or a file of such references, one a line.")]
PlatformFilterOpt = Annotated[str | None, typer.Option("--platform", help="Only this platform "
                              "(os/arch[/variant]); by default every platform of an index.")]


def _since(value: str | None) -> object:
    """`--since`: an RFC 3339 time or date, or a duration before now (12h, 7d, 2w)."""
    if value is None:
        return None
    from datetime import UTC, datetime, timedelta

    from imagelock.core.errors import InputError
    from imagelock.formats.policy import parse_age

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_age(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r} is neither a time nor a duration",
                         hint="write 2026-11-30, 2026-11-30T12:00:00Z, 12h, 7d or 2w") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@app.command()
def watch(
    sources: SourcesArg,
    rebuilder: Annotated[list[Path], typer.Option("--rebuilder", metavar="KEY.pub", help="The "
                         "rebuilder's public key: an image with a VSA this key signed (PASSED or "
                         "FAILED) is done. Repeatable.")],
    vendor_key: Annotated[list[Path] | None, typer.Option("--vendor-key", metavar="KEY",
                          help="Count only provenance signed by this public key "
                          "(repeatable).")] = None,
    vendor_policy: Annotated[Path | None, typer.Option("--policy", help="Count only provenance "
                             "signed by the vendor keys of this policy.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only images whose vendor "
                     "provenance says the build finished at or after this time (2026-11-30, "
                     "2026-11-30T12:00:00Z) or within this duration (12h, 7d, 2w).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many work "
                     "items.")] = None,
    platform: PlatformFilterOpt = None,
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document (items and "
                        "counts) instead of a JSON line per work item.")] = False,
) -> None:
    """List a rebuilder's work: every image of the sources that carries vendor provenance and
    no VSA from this rebuilder, as one JSON line each (`reference` by digest, `reason`,
    `platform`, ...) for `imagelock rebuild REF --skip-if-vouched`. Reads the registry and the
    referrers; writes nothing. The counts go to stderr. Exit 0 (also when there is no work), 2
    bad input, 3 a registry could not be read."""

    def body() -> int:
        from imagelock import api
        from imagelock.trust.keys import load_public_key_file

        vendors = [load_public_key_file(k) for k in vendor_key or []]
        if vendor_policy is not None:
            from imagelock.trust.policy import load_policy

            vendors += [s.key for s in load_policy(vendor_policy).signers
                        if s.role == "vendor" and s.key is not None]
        result = api.watch(sources, rebuilder_keys=[load_public_key_file(k) for k in rebuilder],
                           vendor_keys=vendors, since=_since(since),  # type: ignore[arg-type]
                           limit=limit, platform=platform, insecure=insecure)
        if json_out:
            _print_json(result)
        else:
            for item in result.items:
                print(item.model_dump_json(), flush=True)
        if not quiet:
            print(result.human(), file=sys.stderr)
        return EXIT_OK

    _run(json_out, body)


@app.command()
def status(
    sources: SourcesArg,
    policy: Annotated[Path | None, typer.Option("--policy", help="The trusted rebuilders (and "
                      "vendors) of this policy.")] = None,
    rebuilder: Annotated[list[Path] | None, typer.Option("--rebuilder", metavar="KEY.pub",
                         help="Also trust this rebuilder's public key, named by its file "
                         "name. Repeatable.")] = None,
    platform: PlatformFilterOpt = None,
    insecure: InsecureOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The fleet's view, per image: which trusted rebuilders vouched (a PASSED VSA) and which
    disagreed (a FAILED VSA: the image is `disputed`). Read it before `verify`, or as the fleet's
    dashboard. Reads only. Exit 0 (whatever the states), 2 bad input, 3 a registry could not be
    read."""

    def body() -> int:
        from imagelock import api

        result = api.status(sources, policy=policy, rebuilders=rebuilder or [],
                            platform=platform, insecure=insecure)
        _emit(json_out, result, result.human())
        return EXIT_OK

    _run(json_out, body)


inputs_app = typer.Typer(help="The inputs of a lock or an image: where each is still "
                         "available.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(inputs_app, name="inputs")


@inputs_app.command("check")
def inputs_check(
    target: Annotated[str | None, typer.Argument(metavar="LOCK|REF", help="A lock (or its "
                      "directory; default ./imagelock.lock), or an image reference whose "
                      "recipe names the inputs.")] = None,
    image: Annotated[str | None, typer.Option("--image", metavar="REF", help="With a lock: the "
                     "registry image whose input bundle and recipe to check too.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    snapshot: SnapshotOpt = None,
    keyring: KeyringOpt = None,
    insecure: InsecureOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The rot monitor: for every input (packages, wheels, downloads, the signed Debian indexes,
    context files), where it can still be fetched: the configured mirrors, the image's input
    bundle, snapshot archives. Asks without downloading. Exit 1 if an input survives only in the
    local store or nowhere (run it on a schedule)."""

    def body() -> int:
        import tempfile

        from imagelock import api
        from imagelock.fetch.snapshot import parse_cli_snapshots
        from imagelock.formats.results import InputsCheckResult

        with tempfile.TemporaryDirectory(prefix="imagelock-inputs-") as tmp:
            report = api.inputs_check(target or "imagelock.lock", store=store, workdir=Path(tmp),
                                      image=image, cli_mirrors=_mirrors(mirror),
                                      cli_snapshots=parse_cli_snapshots(snapshot or []),
                                      keyrings=_pairs(keyring, "--keyring"), insecure=insecure)
        _emit(json_out, InputsCheckResult.model_validate(report.as_json()), report.human())
        return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED

    _run(json_out, body)


def _version(value: bool) -> None:
    if value:
        print(f"imagelock {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                       help="Print the version and exit.")] = False,
) -> None:
    pass


def main() -> None:
    # Predictable text handling whatever the caller's locale.
    app()


if __name__ == "__main__":
    main()
