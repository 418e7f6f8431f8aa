"""Comparing a rebuild with the published image (or with the lock alone): the verdict at both
identities, and the report that explains it.

- `reproduced`: the manifest digests are equal, the images are the same bit for bit.
- `reproduced-content`: the config digests are equal and every published layer blob, actually
  decompressed (streamed, whichever gzip wrote it), hashes to the rebuilt diff_id: the content is
  the same, only the compression differs. A zlib upgrade never turns a good image bad.
- `mismatch`: anything else; `compare.walk` and its modules say what differs, classified.
- `error`: the comparison could not be completed (a blob unreadable or not the bytes its digest
  names, an image whose documents do not add up). Mapping verdicts to exit codes is the CLI's job.
"""

from __future__ import annotations

from collections import Counter

from imagelock.compare.blobs import UnverifiableBlob, prove_content
from imagelock.compare.documents import (
    diff_config,
    diff_ids_of,
    diff_index,
    diff_lock,
    diff_manifest,
    layer_names,
    media_types,
)
from imagelock.compare.render import describe
from imagelock.compare.walk import Findings, walk_layers
from imagelock.core.errors import InputError, IntegrityError
from imagelock.formats.lock import ExpectedImage
from imagelock.formats.oci import Manifest
from imagelock.formats.report import (
    CATEGORIES,
    Difference,
    LayerIdentity,
    Report,
    ReportError,
    Side,
    SideIdentity,
    Summary,
    Verdict,
)
from imagelock.oci.image import Image

DEFAULT_LIMIT = 2000  # differences kept in a report (all are counted)
FIRST = 5  # differences named in the summary


class _Inconsistent(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --- identities ------------------------------------------------------------------------------

def side_identity(image: Image, side: Side, content_digests: dict[int, str] | None = None
                  ) -> SideIdentity:
    """Both identities of an image, with the content digests this comparison computed."""
    ids, names, types = diff_ids_of(image.config), layer_names(image.config), \
        media_types(image.manifest)
    proofs = content_digests or {}
    return SideIdentity(
        side=side,
        platform=image.platform,
        manifest_digest=image.manifest_digest,
        config_digest=image.config_digest,
        layers=[
            LayerIdentity(index=i, name=names[i] if i < len(names) else None,
                          media_type=types[i] if i < len(types) else b.media_type,
                          digest=b.digest, size=b.size, diff_id=ids[i] if i < len(ids) else None,
                          content_digest=proofs.get(i))
            for i, b in enumerate(image.layers)
        ],
    )


def lock_identity(expected: ExpectedImage, platform: str | None) -> SideIdentity:
    return SideIdentity(
        side="lock", platform=platform, manifest_digest=expected.manifest_digest,
        config_digest=expected.config_digest,
        layers=[LayerIdentity(index=i, name=la.name, digest=la.digest, size=la.size,
                              diff_id=la.diff_id) for i, la in enumerate(expected.layers)],
    )


def _check_consistent(image: Image, side: str) -> None:
    """The manifest must name exactly the config and blobs the image carries."""
    hint = ("the image's documents and blobs were read inconsistently; read or fetch it again "
            "(if it persists, the image is corrupt)")
    try:
        manifest = Manifest.model_validate_json(image.manifest)
    except ValueError as e:
        raise _Inconsistent(f"the {side} manifest is not a valid image manifest: "
                            f"{str(e).splitlines()[0]}", hint) from None
    if manifest.config.digest != image.config_digest:
        raise _Inconsistent(f"the {side} manifest names config {manifest.config.digest}, but the "
                            f"config read hashes to {image.config_digest}", hint)
    named = [(d.digest, d.size) for d in manifest.layers]
    held = [(b.digest, b.size) for b in image.layers]
    if named != held:
        raise _Inconsistent(f"the {side} manifest names {len(named)} layer blobs that are not the "
                            f"{len(held)} blobs read", hint)


# --- the verdict -----------------------------------------------------------------------------

def compare_images(
    rebuilt: Image,
    published: Image | None,
    expected: ExpectedImage | None,
    *,
    limit: int = DEFAULT_LIMIT,
) -> Report:
    """Compare a rebuild with the published image, or, without one, with the lock's digests.

    With a published image, `expected` values in the report are the rebuild's and `got` values
    the published image's; `expected` (the lock), when given too, only adds notes.

    A mismatch, a blob that cannot be read (OSError) or is not the bytes its digest names, and
    an image whose manifest does not name its config and blobs are verdicts, not exceptions.
    Raises InputError when there is nothing to compare with; other errors of a reader's blob
    stream (a registry that stops answering: FetchError) propagate with their exit code.
    """
    if published is None and expected is None:
        raise InputError("nothing to compare the rebuild with",
                         hint="give the published image (--image) or a lock with expected digests")
    lock_side = lock_identity(expected, rebuilt.platform) if expected is not None else None
    exp_side: Side = "rebuilt" if published is not None else "lock"
    got_side: Side = "published" if published is not None else "rebuilt"
    try:
        _check_consistent(rebuilt, "rebuilt")
        if published is None:
            assert expected is not None and lock_side is not None
            return _against_lock(rebuilt, expected, lock_side, limit)
        _check_consistent(published, "published")
        return _against_published(rebuilt, published, expected, lock_side, limit)
    except (UnverifiableBlob, _Inconsistent) as e:
        message, hint = e.message, e.hint
    except IntegrityError as e:  # a reader's verifying stream caught bytes that do not hash
        message, hint = e.message, e.hint or "fetch the image again"
    except OSError as e:
        message, hint = (f"a layer blob could not be read: {e}",
                         "check that the image's blobs are all present and readable")
    return Report(
        verdict="error", reason=message, expected_side=exp_side, got_side=got_side,
        rebuilt=side_identity(rebuilt, "rebuilt"),
        published=side_identity(published, "published") if published is not None else None,
        lock=lock_side, summary=Summary(total=0, by_category={}, first=[]),
        error=ReportError(message=message, hint=hint),
    )


def _against_published(rebuilt: Image, published: Image, expected: ExpectedImage | None,
                       lock_side: SideIdentity | None, limit: int) -> Report:
    notes = _lock_notes(rebuilt, published, expected)
    if rebuilt.manifest_digest == published.manifest_digest:
        return _report("reproduced", "the manifest digests are equal: the published image is "
                       "the rebuild, bit for bit", rebuilt, published, lock_side, [], Findings(limit),
                       {}, notes)
    same_config = rebuilt.config_digest == published.config_digest
    layers = Findings(limit)
    walk = walk_layers(rebuilt, published, layers, "published", prove_all=same_config)
    names = layer_names(rebuilt.config)
    # Layers walked, and layers only one side has, are explained in the layer differences.
    unpaired = range(min(len(rebuilt.layers), len(published.layers)),
                     max(len(rebuilt.layers), len(published.layers)))
    explained = {i for i, s in walk.status.items() if s == "explained"} | set(unpaired)
    docs = [*diff_index(rebuilt, published),
            *diff_manifest(rebuilt.manifest, published.manifest, walk.status, names),
            *diff_config(rebuilt.config, published.config, explained, names)]
    content_same = (same_config and len(rebuilt.layers) == len(published.layers)
                    and all(s in ("same", "compression") for s in walk.status.values()))
    if content_same:
        n = sum(1 for s in walk.status.values() if s == "compression")
        verdict: Verdict = "reproduced-content"
        reason = (f"the config digests are equal and every published layer decompresses to the "
                  f"rebuilt diff_id; {n} of {len(rebuilt.layers)} layer blobs are stored (compressed) "
                  "differently")
    else:
        verdict, reason = "mismatch", "the published image differs from the rebuild"
        if walk.limits:
            reason += " (reading stopped at a limit in layer " + ", ".join(
                str(i) for i in sorted(walk.limits)) + ")"
    notes += [f"layer {i}: reading stopped at a limit: {why}" for i, why in
              sorted(walk.limits.items())]
    return _report(verdict, reason, rebuilt, published, lock_side, docs, layers,
                   walk.content_digests, notes)


def _against_lock(rebuilt: Image, expected: ExpectedImage, lock_side: SideIdentity,
                  limit: int) -> Report:
    findings = Findings(limit)
    notes: list[str] = []
    proofs: dict[int, str] = {}
    if rebuilt.manifest_digest == expected.manifest_digest:
        verdict: Verdict = "reproduced"
        reason = "the rebuild has the lock's manifest digest: bit for bit what the lock expects"
    else:
        findings.extend(diff_lock(expected, rebuilt))
        if rebuilt.config_digest == expected.config_digest:
            # The lock only has digests: prove the rebuild's own blobs carry its diff_ids.
            ids = diff_ids_of(rebuilt.config)
            for i, blob in enumerate(rebuilt.layers):
                proof = prove_content(blob, "rebuilt")
                if proof.content_digest is not None:
                    proofs[i] = proof.content_digest
                if proof.content_digest != (ids[i] if i < len(ids) else None):
                    raise _Inconsistent(
                        f"rebuilt layer {i} decompresses to {proof.content_digest or proof.error},"
                        " not to the diff_id its config names",
                        "this is a bug in the builder: please report it")
            verdict = "reproduced-content"
            reason = ("the rebuild has the lock's config digest (same content); its compressed "
                      "blobs differ from the lock's")
        else:
            verdict = "mismatch"
            reason = "the rebuild's config digest is not the lock's"
            notes.append("without the published image only digests can be compared: rerun with "
                         "the image to see which files and fields differ")
    return _report(verdict, reason, rebuilt, None, lock_side, [], findings, proofs, notes,
                   proofs_side="rebuilt")


def _lock_notes(rebuilt: Image, published: Image, expected: ExpectedImage | None) -> list[str]:
    if expected is None:
        return []
    notes = []
    for image, who in ((published, "the published image"), (rebuilt, "the rebuild")):
        if image.manifest_digest == expected.manifest_digest:
            notes.append(f"{who} has the lock's manifest digest")
        elif image.config_digest == expected.config_digest:
            notes.append(f"{who} has the lock's config digest, not its manifest digest")
        else:
            notes.append(f"{who} does not have the lock's config digest "
                         f"({expected.config_digest})")
    return notes


def _report(verdict: Verdict, reason: str, rebuilt: Image, published: Image | None,
            lock_side: SideIdentity | None, docs: list[Difference], layers: Findings,
            proofs: dict[int, str], notes: list[str], proofs_side: Side = "published") -> Report:
    differences = [*docs, *layers.items]
    counts = Counter(layers.counts)
    counts.update(d.category for d in docs if not d.derived)
    by_category: dict[str, int] = {c: counts[c] for c in CATEGORIES if counts[c]}
    total = sum(by_category.values())
    first = [describe(d) for d in differences if not d.derived][:FIRST]
    if verdict == "mismatch":
        reason += f": {total} difference{'s' if total != 1 else ''} (" + ", ".join(
            f"{c} {n}" for c, n in by_category.items()) + ")"
    rebuilt_proofs = proofs if proofs_side == "rebuilt" else None
    published_proofs = proofs if proofs_side == "published" else None
    return Report(
        verdict=verdict, reason=reason,
        expected_side="rebuilt" if published is not None else "lock",
        got_side="published" if published is not None else "rebuilt",
        rebuilt=side_identity(rebuilt, "rebuilt", rebuilt_proofs),
        published=side_identity(published, "published", published_proofs)
        if published is not None else None,
        lock=lock_side,
        summary=Summary(total=total, by_category=by_category, first=first,
                        omitted=layers.omitted),
        differences=differences, notes=notes,
    )


# --- human output ----------------------------------------------------------------------------









# --- --diffoscope and --keep -----------------------------------------------------------------





