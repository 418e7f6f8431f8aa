"""The command line: thin typer commands that call the pipeline modules and map errors to exit
codes. Human output by default, `--json` for machines.

Exit codes: 0 ok; 1 verification failed or mismatch; 2 bad input or usage; 3 an input could not
be fetched; 4 sandbox or tool unavailable; 70 internal error (a bug: please report it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from imagelock import __version__
from imagelock.core.errors import EXIT_VERIFICATION_FAILED, ImagelockError
from imagelock.core.names import LOCK_FILENAME, SPEC_FILENAME

EXIT_INTERNAL = 70

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

T = TypeVar("T")

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


def _progress(quiet: bool, verbose: bool, json_out: bool) -> contextlib.AbstractContextManager[object]:
    """Progress on stderr while a command runs: live on a terminal, a line per phase in logs
    and with --json, nothing with --quiet (docs/rebuild-report.md shows both)."""
    from imagelock.cli_display import show_progress

    return show_progress(quiet=quiet, verbose=verbose, json_out=json_out)


def _run(json_out: bool, fn: Callable[[], T],
         progress: contextlib.AbstractContextManager[object] | None = None) -> T:
    """Run a command body (showing `progress` while it runs); errors become a message (or
    JSON) and their exit code, printed once the progress display is gone."""
    try:
        with progress or contextlib.nullcontext():
            return fn()
    except ImagelockError as e:
        if json_out:
            print(json.dumps(e.as_json(), indent=2))
        print(e.render(), file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours.
        sys.stderr.close()
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as e:  # noqa: BLE001 - last line of defence: never a bare traceback
        if os.environ.get("IMAGELOCK_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(e).__name__}: {e}\n  hint: this is a bug in imagelock; "
              "rerun with IMAGELOCK_DEBUG=1 for details and report it", file=sys.stderr)
        raise typer.Exit(EXIT_INTERNAL) from None


def _emit(json_out: bool, data: dict[str, Any], human: str) -> None:
    if json_out:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(human)


def _store(path: Path | None) -> Any:
    from imagelock.fetch.store import Store

    return Store(path)


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


def _signer(key: Path | None, sigstore: bool, token: str | None, root: Path | None,
            config: Path | None) -> Any:
    """The signer the options ask for, or None; both a key and --sigstore is a usage error."""
    from imagelock.core.errors import InputError
    from imagelock.trust.signing import KeySigner, SigstoreSigner

    if key is not None and sigstore:
        raise InputError("choose --sign KEY or --sigstore, not both")
    if sigstore:
        return SigstoreSigner(token, root, config)
    if token is not None or root is not None or config is not None:
        raise InputError("--identity-token, --trusted-root and --signing-config go with --sigstore")
    return KeySigner(_load_signing_key(key)) if key is not None else None


def _load_signing_key(path: Path) -> Any:
    """Load a private key, asking for its passphrase only when it is encrypted."""
    from imagelock.core.errors import InputError
    from imagelock.trust import load_private_key_file, passphrase_from_env_or_prompt

    try:
        return load_private_key_file(path, None)
    except InputError:
        pass
    passphrase = passphrase_from_env_or_prompt()
    if passphrase is None:
        raise InputError("the signing key is encrypted and no passphrase was given", path=path,
                         hint="set IMAGELOCK_KEY_PASSPHRASE or run on a terminal")
    return load_private_key_file(path, passphrase)


def _lock_path(arg: Path | None) -> Path:
    p = arg or Path(LOCK_FILENAME)
    return p / LOCK_FILENAME if p.is_dir() else p


def _spec_path(arg: Path | None) -> Path:
    p = arg or Path(SPEC_FILENAME)
    return p / SPEC_FILENAME if p.is_dir() else p


@app.command()
def lock(
    spec: Annotated[Path | None, typer.Argument(help="The spec, or a directory holding "
                                                "imagelock.yaml. Default: ./imagelock.yaml.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write the lock. "
                      "Default: imagelock.lock beside the spec.")] = None,
    store: StoreOpt = None,
    mirror: MirrorOpt = None,
    offline: OfflineOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Do not write: exit 1 if the existing lock "
                     "differs from what locking now would write.")] = False,
    upgrade: Annotated[list[str] | None, typer.Option("--upgrade", metavar="PACKAGE", help="Move "
                       "this Debian package to the newest version the sources offer (and what that "
                       "newly needs); every other pin of the existing lock stays. Repeatable.")] = None,
    upgrade_all: Annotated[bool, typer.Option("--upgrade-all", help="Ignore the existing lock's "
                           "pins and resolve everything afresh.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Resolve a spec into a lock: pin every input by sha256 and record the digests the build
    must produce. An existing lock's Debian pins are kept unless named with --upgrade (or no
    longer needed). The lock is byte-stable: the same inputs write the same bytes."""

    def body() -> None:
        from imagelock.api import lock as make_lock
        from imagelock.core.errors import InputError
        from imagelock.fetch.mirrors import parse_cli_mirrors
        from imagelock.formats.files import lock_bytes, read_lock, write_lock

        spec_path = _spec_path(spec)
        out = output or spec_path.parent / LOCK_FILENAME
        previous = None
        notes = []
        if out.is_file() and not upgrade_all:
            try:
                previous = read_lock(out)
            except InputError as e:
                notes.append(f"existing lock not readable, resolving afresh: {e.message}")
        lk = make_lock(spec_path, store=_store(store), cli_mirrors=parse_cli_mirrors(mirror or []),
                       offline=offline, lock_dir=out.absolute().parent, previous=previous,
                       upgrade=upgrade or [])
        new = lock_bytes(lk)
        changed = not out.is_file() or out.read_bytes() != new
        if check:
            if changed:
                _emit(json_out, {"up_to_date": False, "lock": str(out)},
                      f"{out} is out of date: run `imagelock lock`")
                raise typer.Exit(EXIT_VERIFICATION_FAILED)
            _emit(json_out, {"up_to_date": True, "lock": str(out)}, f"{out} is up to date")
            return
        write_lock(lk, out)
        data = {"lock": str(out), "changed": changed,
                "expected": {k: v.model_dump() for k, v in lk.expected.items()}}
        lines = [f"{'wrote' if changed else 'unchanged'} {out}"] + [f"note: {n}" for n in notes]
        for plat, exp in lk.expected.items():
            lines += [f"  {plat}", f"    config   {exp.config_digest}",
                      f"    manifest {exp.manifest_digest}"]
        _emit(json_out, data, "\n".join(lines))

    _run(json_out, body, _progress(quiet, verbose, json_out))


@app.command()
def fetch(
    lock_file: Annotated[Path | None, typer.Argument(metavar="LOCK", help="The lock, or its "
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

    def body() -> None:
        from imagelock.fetch.mirrors import parse_cli_mirrors
        from imagelock.inputs.fetching import fetch_lock
        from imagelock.formats.files import read_lock

        path = _lock_path(lock_file)
        lk = read_lock(path)
        st = _store(store)
        rep = fetch_lock(lk, path, st, cli_mirrors=parse_cli_mirrors(mirror or []), offline=offline)
        _emit(json_out, {"store": str(st.root), "present": rep.present, "downloaded": rep.downloaded,
                         "bytes_downloaded": rep.bytes_downloaded},
              f"store {st.root}: {rep.present} present, {rep.downloaded} downloaded "
              f"({rep.bytes_downloaded} bytes)")

    _run(json_out, body, _progress(quiet, verbose, json_out))


class OutputFormat(StrEnum):
    oci = "oci"
    docker_archive = "docker-archive"


@app.command()
def build(
    lock_file: Annotated[Path | None, typer.Argument(metavar="LOCK", help="The lock, or its "
                         "directory. Default: ./imagelock.lock.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output: a directory for an OCI "
                      "layout, a file for a docker-archive. Replaced atomically if it is an earlier "
                      "output.")] = Path("out"),
    fmt: Annotated[OutputFormat, typer.Option("--format", help="oci (an OCI image layout) or "
                   "docker-archive (a tar for `podman load` / `docker load`).")] = OutputFormat.oci,
    platform: Annotated[str | None, typer.Option("--platform", help="The platform a "
                        "docker-archive holds (one per archive). Default: the lock's first.")] = None,
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
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Build the image a lock describes, deterministically, and compare it with the lock's
    expected digests (exit 1 if they differ). Prints the config and manifest digests."""

    def body() -> None:
        from imagelock.build.from_lock import build_lock

        key = _signer(sign, sigstore, identity_token, trusted_root, signing_config)
        lock_path = _lock_path(lock_file)
        res = build_lock(lock_path, output=output, fmt=fmt.value, store=_store(store),
                         cli_mirrors=mirror or [], offline=offline, platform=platform)
        data = res.as_json()
        human = res.human()
        if key is not None and res.verdict != "mismatch":
            from imagelock.trust.signing import sign_build

            att = sign_build(res, lock_path, key)
            data["attestations"] = str(att)
            human += f"\nsigned provenance -> {att}"
        _emit(json_out, data, human)
        if res.verdict == "mismatch":
            raise typer.Exit(EXIT_VERIFICATION_FAILED)

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

    def body() -> None:
        from imagelock.core.errors import InputError
        from imagelock.fetch.mirrors import parse_cli_mirrors
        from imagelock.inputs.fetching import fetch_lock
        from imagelock.formats.files import read_lock
        from imagelock.rebuild.check import VARIATIONS
        from imagelock.rebuild.check import check as do_check

        unknown = [v for v in variation or [] if v not in VARIATIONS]
        if unknown:
            raise InputError(f"unknown variation {', '.join(unknown)}",
                             hint="choose from " + ", ".join(VARIATIONS))
        spec_path = _spec_path(spec)
        lock_path = spec_path.parent / LOCK_FILENAME
        st = _store(store)
        fetch_lock(read_lock(lock_path), lock_path, st, cli_mirrors=parse_cli_mirrors(mirror or []),
                   offline=False)
        res = do_check(lock_path, store=st.root, builds=builds, names=variation)
        _emit(json_out, res.as_json(), res.human())
        if not res.reproducible:
            raise typer.Exit(EXIT_VERIFICATION_FAILED)

    _run(json_out, body)


InsecureOpt = Annotated[
    bool, typer.Option("--insecure-registry", help="Allow plain HTTP to a registry that is not on "
                       "loopback (loopback registries always may use it).")
]


@app.command()
def rebuild(
    lock_file: Annotated[Path | None, typer.Argument(metavar="LOCK", help="The lock, or its "
                         "directory. Default: ./imagelock.lock.")] = None,
    image: Annotated[str | None, typer.Option("--image", metavar="REF", help="The published image "
                     "to compare with: oci:DIR[:TAG], docker-archive:FILE, HOST[:PORT]/REPO:TAG or "
                     "HOST/REPO@sha256:... Without it, compare with the lock's digests only.")] = None,
    no_sandbox: Annotated[bool, typer.Option("--no-sandbox", help="Build without the bubblewrap "
                          "sandbox (the result says so). By default a missing sandbox is an "
                          "error (exit 4).")] = False,
    platform: Annotated[str | None, typer.Option("--platform", help="Platform to rebuild and "
                        "compare. Default: the lock's first.")] = None,
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
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the image a lock describes, in isolation, and compare it with the published image
    (or the lock): fetch every pinned input (hashes checked), build in a bubblewrap sandbox with
    no network and the store read-only, compare both identities, explain any difference down to
    the file, and optionally sign the verdict.

    Verdicts: reproduced (bit-identical, exit 0); reproduced-content (same content, other
    compression, proven by decompressing the published blobs, exit 0); mismatch (exit 1);
    error (the published image could not be read or checked, exit 3)."""

    def body() -> None:
        from imagelock.core.errors import InputError
        from imagelock.oci.locations import local_path
        from imagelock.rebuild.rebuild import rebuild as do_rebuild
        from imagelock.rebuild.rebuild import scratch

        signing = sign is not None or sigstore
        if signing and no_sandbox:
            raise InputError("--sign with --no-sandbox: a VSA vouches for an isolated rebuild",
                             hint="rebuild in the sandbox to sign, or drop --sign")
        if push_attestation and (image is None or local_path(image) is not None):
            raise InputError("--push-attestation needs --image naming a registry image",
                             hint="e.g. --image registry.example.com/app@sha256:...")
        if push_attestation and not signing:
            raise InputError("--push-attestation needs --sign KEY or --sigstore")
        key = _signer(sign, sigstore, identity_token, trusted_root, signing_config)
        with scratch() as tmp:
            res = do_rebuild(_lock_path(lock_file), image=image, store=_store(store),
                             cli_mirrors=mirror or [], offline=offline, sandbox=not no_sandbox,
                             platform=platform, workdir=Path(tmp), insecure=insecure, keep=keep,
                             diffoscope=diffoscope, report_html=report_html)
            data = res.as_json()
            human = res.human(verbose)
            matched = res.verdict in ("reproduced", "reproduced-content")
            if key is not None and (matched or (sign_failures and res.verdict == "mismatch")):
                from imagelock.trust.signing import sign_rebuild

                local = local_path(image) if image else None
                out = attestation_out or (
                    local.with_name(local.name + ".intoto.jsonl") if local is not None
                    else Path("rebuild.intoto.jsonl"))
                written, line = sign_rebuild(res, key, out=out, verifier_id=verifier_id)
                data["attestation"] = str(written)
                human += f"\nsigned {'PASSED' if matched else 'FAILED'} VSA -> {written}"
                if push_attestation:
                    from imagelock.trust.gate import push_attestation as push_att

                    assert image is not None
                    digest = push_att(image, line, insecure=insecure)
                    data["referrer"] = digest
                    human += f"\nattached to {image} as referrer {digest}"
        _emit(json_out, data, human)
        if res.verdict == "mismatch":
            raise typer.Exit(EXIT_VERIFICATION_FAILED)
        if res.verdict == "error":
            raise typer.Exit(3)

    _run(json_out, body, _progress(quiet, verbose, json_out))


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
    digest. Credentials come from the usual container auth files."""

    def body() -> None:
        from imagelock.oci.locations import read_image, registry_form
        from imagelock.oci.registry.transfer import push as do_push

        digest = do_push(read_image(image), registry_form(ref).removeprefix("docker://"), insecure=insecure)
        _emit(json_out, {"ref": ref, "digest": digest}, f"pushed {ref}\n  manifest {digest}")

    _run(json_out, body, _progress(quiet, verbose, json_out))


@app.command()
def pull(
    ref: Annotated[str, typer.Argument(metavar="REF", help="HOST[:PORT]/REPO:TAG or "
                   "HOST[:PORT]/REPO@sha256:...")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OCI layout directory to write.")],
    platform: Annotated[str | None, typer.Option("--platform", help="Platform to pull from an "
                        "index. Default: linux/amd64.")] = None,
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Pull an image from a registry into an OCI layout, checking every blob's digest while it
    streams."""

    def body() -> None:
        from imagelock.oci.locations import registry_form
        from imagelock.oci.registry.transfer import pull as do_pull

        img = do_pull(registry_form(ref).removeprefix("docker://"), output, platform=platform,
                      insecure=insecure)
        _emit(json_out, {"ref": ref, "output": str(output), "manifest_digest": img.manifest_digest,
                         "config_digest": img.config_digest},
              f"pulled {ref} -> {output}\n  config   {img.config_digest}\n"
              f"  manifest {img.manifest_digest}")

    _run(json_out, body, _progress(quiet, verbose, json_out))


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

    def body() -> None:
        from imagelock.trust.attest import utc_now
        from imagelock.trust.gate import verify as do_verify

        with tempfile.TemporaryDirectory(prefix="imagelock-verify-") as tmp:
            result = do_verify(image, policy, attestations or [], now=utc_now(),
                               workdir=Path(tmp), insecure=insecure, platform=platform)
        data = result.model_dump(mode="json")
        lines = [f"{'PASSED' if result.passed else 'REFUSED'}: {image} ({result.subject_digest})"]
        for o in result.rules:
            lines.append(f"  [{'ok' if o.passed else 'FAIL'}] {o.rule}: {o.reason}")
        for a in result.attestations:
            who = ", ".join(a.signers) or "no trusted signer"
            lines.append(f"  {'counted' if a.counted else 'ignored'}: {a.source} "
                         f"({a.predicate_type or '?'}; {who}): {a.reason}")
        _emit(json_out, data, "\n".join(lines))
        if not result.passed:
            raise typer.Exit(EXIT_VERIFICATION_FAILED)

    _run(json_out, body)


@app.command()
def attach(
    image: Annotated[str, typer.Argument(metavar="REF", help="A registry image, "
                     "HOST[:PORT]/REPO@sha256:... or :TAG.")],
    attestations: Annotated[list[Path], typer.Argument(metavar="ATTESTATION...", help="Files of "
                            "DSSE envelopes (.intoto.jsonl: one per line), e.g. what `build "
                            "--sign` wrote.")],
    insecure: InsecureOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Attach attestations to an image in a registry as OCI 1.1 referrers (with the tag-scheme
    fallback on registries without the referrers API), so `verify REF` finds them. Each envelope
    must name the image's manifest digest as its subject."""

    def body() -> None:
        from imagelock.trust.gate import attach_files

        pushed = attach_files(image, attestations, insecure=insecure)
        _emit(json_out, {"ref": image, "referrers": pushed},
              "\n".join([f"attached {len(pushed)} attestation(s) to {image}",
                         *[f"  {d}" for d in pushed]]))

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

    def body() -> None:
        from imagelock.core.errors import InputError
        from imagelock.trust import generate, passphrase_from_env_or_prompt, write_key_pair

        passphrase = None if no_passphrase else passphrase_from_env_or_prompt(confirm=True)
        if passphrase is None and not no_passphrase:
            raise InputError("no passphrase for the private key",
                             hint="set IMAGELOCK_KEY_PASSPHRASE, run on a terminal, or pass "
                             "--no-passphrase for a throw-away key")
        key = generate(algorithm.value)
        if not output.parent.is_dir():
            raise InputError(f"directory {output.parent} does not exist",
                             hint="create it first, or choose another -o path")
        pub = output.with_name(output.name + ".pub")
        write_key_pair(key, output, pub, passphrase)
        _emit(json_out, {"private": str(output), "public": str(pub), "keyid": key.public.keyid,
                         "algorithm": algorithm.value},
              f"wrote {output} (private, {'encrypted' if passphrase else 'NOT encrypted'}) and "
              f"{pub}\nkeyid {key.public.keyid}")

    _run(json_out, body)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The old lock (file or directory).")],
    new: Annotated[Path, typer.Argument(help="The new lock (file or directory).")],
    json_out: JsonOpt = False,
) -> None:
    """What changed between two locks, made for review: Debian packages added, removed, upgraded,
    downgraded or with changed bytes; context files, downloads and paths; image settings; and the
    expected digests. Exit 0 when they are the same, 1 when they differ."""

    def body() -> None:
        from imagelock.formats.files import read_lock
        from imagelock.compare.locks import diff_locks, render_lock_diff

        d = diff_locks(read_lock(_lock_path(old)), read_lock(_lock_path(new)))
        _emit(json_out, d.as_json(), render_lock_diff(d))
        if not d.empty:
            raise typer.Exit(EXIT_VERIFICATION_FAILED)

    _run(json_out, body)


def _version(value: bool) -> None:
    if value:
        print(f"imagelock {__version__}")
        raise typer.Exit(0)


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
