"""The comparison report: what `imagelock rebuild --json` prints.

A report says whether a rebuild reproduced an image, at which identity (DESIGN.md, "Deterministic
images"), and explains every difference when it did not. Orientation is fixed: `expected` is the
side derived from the lock (the rebuild, or the lock's own digests when no image was given) and
`got` is the side under check (the published image, or the rebuild when it is checked against
the lock alone). So "added" means "the published image has it, the rebuild does not".
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imagelock.formats.common import Strict

REPORT_VERSION: Literal[1] = 1

Verdict = Literal["reproduced", "reproduced-content", "mismatch", "error"]
Category = Literal[
    "timestamp", "ordering", "ownership", "permissions", "content", "compression", "metadata"
]
CATEGORIES: tuple[Category, ...] = (
    "content", "permissions", "ownership", "timestamp", "ordering", "compression", "metadata"
)
Scope = Literal["index", "manifest", "config", "layer"]
Change = Literal["added", "removed", "changed", "moved"]
Side = Literal["rebuilt", "published", "lock"]


class LayerIdentity(Strict):
    """One layer as one side has it: its distribution identity and its content identity."""

    index: int = Field(ge=0, description="Position in the image, 0 = bottom layer.")
    name: str | None = Field(default=None, description="Layer name from the spec, when known "
                             "(the image config's history or the lock).")
    media_type: str | None = Field(default=None, description="Media type of the blob, when known "
                                   "(not recorded in the lock).")
    digest: str = Field(description="sha256 of the blob as stored (compressed): distribution "
                        "identity.")
    size: int = Field(ge=0, description="Size of the blob as stored, in bytes.")
    diff_id: str | None = Field(default=None, description="sha256 of the uncompressed tar as the "
                                "side's config (or the lock) claims it: content identity.")
    content_digest: str | None = Field(default=None, description="sha256 of the blob's bytes "
                                       "after decompression, when this comparison decompressed "
                                       "it: the proof that the claimed diff_id is true.")


class SideIdentity(Strict):
    """Both identities of one side of the comparison."""

    side: Side = Field(description="`rebuilt` (this rebuild), `published` (the image under "
                       "check) or `lock` (the expected digests in imagelock.lock).")
    platform: str | None = Field(default=None, description="Platform as `os/arch[/variant]`.")
    manifest_digest: str = Field(description="Digest of the manifest: the distribution identity "
                                 "(covers the compressed layer bytes).")
    config_digest: str = Field(description="Digest of the image config: the content identity "
                               "(covers the diff_ids, the digests of the uncompressed layers).")
    layers: list[LayerIdentity] = Field(description="Layers, bottom first.")


class Difference(Strict):
    """One thing that is not the same on both sides, classified."""

    category: Category = Field(description=(
        "What kind of difference: `content` (bytes, entries added or removed, link targets, "
        "types), `permissions` (mode bits, capabilities, ACLs), `ownership` (uid, gid, user and "
        "group names), `timestamp` (mtimes, PAX times, config `created`), `ordering` (same "
        "entries or layers in another order), `compression` (same content compressed to other "
        "bytes), `metadata` (other manifest and config fields, tar header format, PAX records)."))
    scope: Scope = Field(description="Which document the difference is in: `index` (platform), "
                         "`manifest`, `config`, or `layer` (an entry of a layer tar).")
    layer: int | None = Field(default=None, description="Layer position (0 = bottom), for "
                              "layer-scoped differences and per-layer manifest or config fields.")
    layer_name: str | None = Field(default=None, description="Layer name, when known.")
    path: str | None = Field(default=None, description="Absolute path in the image of the entry "
                             "concerned (layer scope only).")
    field: str = Field(description="The field that differs: a document field such as "
                       "`config.Env`, `layers[0].digest`, `rootfs.diff_ids[1]`, or an entry field "
                       "such as `content`, `mode`, `uid`, `mtime`, `linkname`, `type`, `format`, "
                       "`pax:<key>`, `entry` (presence) or `order`.")
    change: Change = Field(description="`added` (only the `got` side has it), `removed` (only "
                           "the `expected` side has it), `changed`, or `moved` (same thing, "
                           "another position).")
    expected: str | None = Field(default=None, description="The value on the expected side "
                                 "(see `expected_side`), rendered as text; null when absent.")
    got: str | None = Field(default=None, description="The value on the `got` side, rendered as "
                            "text; null when absent.")
    derived: bool = Field(default=False, description="True when this difference only follows "
                          "from others in the report (a layer digest that differs because a "
                          "file in it differs). Derived differences are not counted in the "
                          "summary.")


class Summary(Strict):
    """The report in a few lines: counts per category and the first differences."""

    total: int = Field(ge=0, description="Number of differences that are not derived.")
    by_category: dict[str, int] = Field(description="Number of non-derived differences per "
                                        "category; categories with none are left out.")
    first: list[str] = Field(description="The first few non-derived differences, one line each.")
    omitted: int = Field(default=0, ge=0, description="Differences found but left out of "
                         "`differences` because the report reached its size limit (they are "
                         "still counted in `total` and `by_category`).")


class ReportError(Strict):
    """Why the comparison could not be completed (verdict `error`)."""

    message: str = Field(description="What went wrong.")
    hint: str | None = Field(default=None, description="What to do about it.")


class DiffoscopePair(Strict):
    """diffoscope's verdict on one changed file."""

    layer: int = Field(ge=0, description="Layer position of the file.")
    path: str = Field(description="Absolute path of the file in the image.")
    expected_file: str = Field(description="Where the expected side's copy was extracted.")
    got_file: str = Field(description="Where the got side's copy was extracted.")
    output: str | None = Field(default=None, description="diffoscope's text output file.")
    exit_code: int | None = Field(default=None, description="diffoscope's exit code (1 = the "
                                  "files differ), null if it did not run.")
    excerpt: str = Field(default="", description="The first lines of diffoscope's output.")


class DiffoscopeResult(Strict):
    """What `--diffoscope` did."""

    available: bool = Field(description="Whether diffoscope was found on PATH.")
    out_dir: str | None = Field(default=None, description="Directory holding the extracted "
                                "files and diffoscope's outputs.")
    pairs: list[DiffoscopePair] = Field(default_factory=list, description="One per changed "
                                        "regular file.")
    note: str | None = Field(default=None, description="Why nothing ran, when nothing did.")


class Report(Strict):
    """The result of comparing a rebuild with a published image or with the lock."""

    report_version: Literal[1] = Field(default=REPORT_VERSION, description="Report format "
                                       "version.")
    verdict: Verdict = Field(description=(
        "`reproduced`: manifest digests are equal, the image is bit for bit the same. "
        "`reproduced-content`: config digests are equal and every published layer blob was "
        "decompressed and hashes to the rebuilt diff_id (with no published image: the lock's "
        "config digest is matched): same content, other compression. `mismatch`: the content "
        "differs; `differences` says how. `error`: the comparison could not be completed; "
        "`error` says why."))
    reason: str = Field(description="One line saying why this verdict.")
    expected_side: Side = Field(description="Which side `expected` values come from: `rebuilt` "
                                "when a published image was given, else `lock`.")
    got_side: Side = Field(description="Which side `got` values come from: `published` when a "
                           "published image was given, else `rebuilt`.")
    rebuilt: SideIdentity = Field(description="Identities of the rebuild.")
    published: SideIdentity | None = Field(default=None, description="Identities of the "
                                           "published image, when one was given.")
    lock: SideIdentity | None = Field(default=None, description="The lock's expected "
                                      "identities, when given.")
    summary: Summary = Field(description="Counts and the first differences, for humans.")
    differences: list[Difference] = Field(default_factory=list, description="Every difference "
                                          "found, in walk order: index, manifest, config, "
                                          "then layers bottom first.")
    notes: list[str] = Field(default_factory=list, description="Things worth knowing that are "
                             "not differences (e.g. the rebuild does not match the lock).")
    error: ReportError | None = Field(default=None, description="Set when the verdict is "
                                      "`error`.")
    diffoscope: DiffoscopeResult | None = Field(default=None, description="Set when "
                                                "`--diffoscope` was asked for.")
