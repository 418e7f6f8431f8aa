"""Walking two images layer by layer: which layers differ, and within them which entries, collected as findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from imagelock.compare.blobs import (
    ContentBudget,
    UnverifiableBlob,
    prove_content,
    uncompressed_size,
)
from imagelock.compare.documents import diff_ids_of, layer_names
from imagelock.compare.entries import LayerBounds, diff_layer, index_layer
from imagelock.formats.report import Category, Change, Difference
from imagelock.oci.image import Image


@dataclass
class Findings:
    """Differences as they are found: every one counted, at most `limit` kept."""

    limit: int
    items: list[Difference] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    omitted: int = 0

    def add(self, d: Difference) -> None:
        if not d.derived:
            self.counts[d.category] += 1
        if len(self.items) < self.limit:
            self.items.append(d)
        else:
            self.omitted += 1

    def extend(self, ds: Iterable[Difference]) -> None:
        for d in ds:
            self.add(d)


@dataclass
class LayerWalk:
    """Per paired layer position, why the blobs differ: `same` (equal digests), `compression`
    (the got blob decompresses to the expected diff_id), `explained` (differences were listed),
    plus the content digests computed on the got side (the proofs), and the layers whose
    reading stopped at a bound (docs/rebuild-report.md, "Limits") with the reason."""

    status: dict[int, str] = field(default_factory=dict)
    content_digests: dict[int, str] = field(default_factory=dict)
    limits: dict[int, str] = field(default_factory=dict)


def walk_layers(expected: Image, got: Image, findings: Findings, got_side: str, *,
                prove_all: bool = False) -> LayerWalk:
    """Pair layers by position and explain every pair whose content differs.

    With `prove_all`, got blobs equal to the expected ones are decompressed too, so every
    got layer's content digest is proven, not inferred (for `reproduced-content`).

    The got side is hostile input: its reads share one ContentBudget and each of its layers
    is indexed within LayerBounds set by the expected layer it is paired with.
    """
    walk = LayerWalk()
    budget = ContentBudget(lambda: uncompressed_size(expected.layers))
    exp_ids, got_ids = diff_ids_of(expected.config), diff_ids_of(got.config)
    names = layer_names(expected.config)

    def name(i: int) -> str | None:
        return names[i] if i < len(names) else None

    def moved_from(content: str, i: int) -> int | None:
        """The expected position of a layer found at `i`, if it moved there (the got image no
        longer has it at that position: a copy of a layer that is still in place did not move)."""
        if content not in exp_ids or exp_ids.index(content) == i:
            return None
        j = exp_ids.index(content)
        return j if j >= len(got_ids) or got_ids[j] != exp_ids[j] else None

    def add(category: Category, i: int, fld: str, change: Change, a: str | None,
            b: str | None, path: str | None = None) -> None:
        findings.add(Difference(category=category, scope="layer", layer=i, layer_name=name(i),
                                path=path, field=fld, change=change, expected=a, got=b))

    def stopped(i: int, reason: str) -> None:
        add("content", i, "blob", "changed", "a layer the rebuild could have made",
            f"reading stopped at a limit: {reason}")
        walk.limits[i] = reason
        walk.status[i] = "explained"

    for i, (eb, gb) in enumerate(zip(expected.layers, got.layers, strict=False)):
        want = exp_ids[i] if i < len(exp_ids) else None
        claimed = got_ids[i] if i < len(got_ids) else None
        if eb.digest == gb.digest and not prove_all:
            walk.status[i] = "same"
            continue
        if claimed == want or claimed in exp_ids or eb.digest == gb.digest:
            # Cheap first: does the got blob decompress to a diff_id we have?
            proof = prove_content(gb, got_side, budget, i)
            if proof.limit is not None:
                stopped(i, proof.limit)
                continue
            if proof.error is not None:
                add("compression", i, "blob", "changed", "a valid compressed tar", proof.error)
                walk.status[i] = "explained"
                continue
            assert proof.content_digest is not None
            walk.content_digests[i] = proof.content_digest
            if proof.content_digest == want:
                walk.status[i] = "same" if eb.digest == gb.digest else "compression"
                continue
            j = moved_from(proof.content_digest, i)
            if j is not None:
                add("ordering", i, "layer", "moved", f"layer {i}: {want}",
                    f"layer {i}: the expected layer {j} ({proof.content_digest})")
                walk.status[i] = "explained"
                continue
        e_idx = index_layer(eb, "rebuilt" if got_side == "published" else "expected")
        if e_idx.error is not None or e_idx.limit is not None:
            raise UnverifiableBlob(f"the expected side's layer {i} cannot be read: "
                                   f"{e_idx.error or e_idx.limit}",
                                   hint="this is a bug in the builder or the image reader: "
                                   "please report it")
        g_idx = index_layer(gb, got_side, LayerBounds.relative_to(e_idx, budget, i))
        if g_idx.limit is not None:
            stopped(i, g_idx.limit)
            continue
        walk.content_digests[i] = g_idx.content_digest
        walk.status[i] = "explained"
        if g_idx.error is not None:
            category: Category = "content" if g_idx.error.startswith("not a valid tar") else \
                "compression"
            add(category, i, "blob", "changed", "a valid compressed tar", g_idx.error)
            continue
        j = moved_from(g_idx.content_digest, i)
        if j is not None:
            add("ordering", i, "layer", "moved", f"layer {i}: {want}",
                f"layer {i}: the expected layer {j} ({g_idx.content_digest})")
            continue
        if claimed is not None and claimed != g_idx.content_digest:
            add("content", i, "content_digest", "changed", claimed,
                f"{g_idx.content_digest} (the blob does not decompress to the diff_id its "
                "config claims)")
        before = len(findings.items) + findings.omitted
        for category, path, fld, change, a, b in diff_layer(e_idx, g_idx):
            add(category, i, fld, change, a, b, path)
        if len(findings.items) + findings.omitted == before and g_idx.content_digest != want:
            add("metadata", i, "tar stream", "changed", want,
                f"{g_idx.content_digest} (same entries and header fields: the bytes differ in "
                "padding, end-of-archive blocks or header encoding)")
    for i in range(len(got.layers), len(expected.layers)):
        blob = expected.layers[i]
        add("content", i, "layer", "removed", f"{blob.digest} ({blob.size} bytes)", None)
    for i in range(len(expected.layers), len(got.layers)):
        blob = got.layers[i]
        add("content", i, "layer", "added", None, f"{blob.digest} ({blob.size} bytes)")
    return walk
