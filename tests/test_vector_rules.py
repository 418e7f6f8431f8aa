"""Each rule of spec/README.md that a vector was written for is really pinned by it: break the
rule in the reference implementation (monkeypatched for one test) and the vector's digests no
longer match. A vector that still passed would pin nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagelock.build.layer as build_layer
import imagelock.tar.writer as tarwriter
import imagelock.oci.docker_archive as docker_archive
import imagelock.oci.layout as layout
import pytest
from imagelock.tar import unpack as archive
from imagelock.build.config import config_bytes
from imagelock.tar.entry import Entry
from imagelock.inputs.files import ContextFiles
from imagelock.build.tree import Tree
from imagelock.lock.context import pin_file_input
from imagelock.core.digest import canonical_json
from vector_runner import load, run_vector

Patch = Callable[[pytest.MonkeyPatch], None]


def _top_directory_gets_0755(mp: pytest.MonkeyPatch) -> None:
    """§3: the directory at `dest` takes `dir_mode` and `owner` (broken: always 0755)."""
    orig = pin_file_input

    def pin(item: Any, *a: Any, **kw: Any) -> Any:
        pins = orig(item, *a, **kw)
        if pins and pins[0].type == "dir" and pins[0].dest == item.dest.rstrip("/"):
            pins[0] = pins[0].model_copy(update={"mode": "0755"})
        return pins

    mp.setattr("imagelock.lock.context.pin_file_input", pin)


def _long_linkname_field_left_empty(mp: pytest.MonkeyPatch) -> None:
    """§7: a linkname over 100 bytes keeps its first 100 bytes in USTAR (broken: empty)."""
    orig = tarwriter.ustar_header

    def header(*, linkname: bytes = b"", **kw: Any) -> bytes:
        return orig(linkname=b"" if len(linkname) > 100 else linkname, **kw)

    mp.setattr(tarwriter, "ustar_header", header)


def _pax_block_copies_linkname(mp: pytest.MonkeyPatch) -> None:
    """§7: the PAX header block's linkname field is empty (broken: it copies the entry's)."""
    orig = tarwriter.entry_header

    def header(**kw: Any) -> bytes:
        out = orig(**kw)
        if out[156:157] != b"x" or not kw.get("linkname"):
            return out
        block = bytearray(out[:512])
        block[157:257] = kw["linkname"].encode()[:100].ljust(100, b"\0")
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        return bytes(block) + out[512:]

    mp.setattr(build_layer, "entry_header", header)


def _cut_at_a_character_boundary(mp: pytest.MonkeyPatch) -> None:
    """§7: USTAR fields hold the first 100 bytes even inside a character (broken: whole ones)."""
    def field(data: bytes, width: int) -> bytes:
        return data[:width].decode("utf-8", "ignore").encode()[:width].ljust(width, b"\0")

    mp.setattr(tarwriter, "_field", field)


def _directory_pax_path_without_slash(mp: pytest.MonkeyPatch) -> None:
    """§7: a directory's PAX `path` ends in `/` (broken: without it)."""
    orig = tarwriter.pax_records

    def records(r: dict[str, str]) -> bytes:
        return orig({k: v.rstrip("/") if k == "path" else v for k, v in r.items()})

    mp.setattr(tarwriter, "pax_records", records)


def _config(mp: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    orig = config_bytes

    def config(*a: Any, **kw: Any) -> bytes:
        doc = json.loads(orig(*a, **kw))
        change(doc)
        return canonical_json(doc)

    mp.setattr("imagelock.build.image.config_bytes", config)


def _empty_labels_and_ports_written(mp: pytest.MonkeyPatch) -> None:
    """§9: empty Labels and ExposedPorts are left out (broken: written as {})."""
    _config(mp, lambda d: d["config"].update({"Labels": {}, "ExposedPorts": {}}))


def _variant_dropped_from_config(mp: pytest.MonkeyPatch) -> None:
    """§9: the platform's variant is in the config (broken: left out)."""
    _config(mp, lambda d: d.pop("variant", None))


def _index(mp: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    orig = layout.index_bytes

    def index(images: Any) -> bytes:
        doc = json.loads(orig(images))
        for m in doc["manifests"]:
            change(m)
        return canonical_json(doc)

    mp.setattr(layout, "index_bytes", index)


def _variant_dropped_from_index(mp: pytest.MonkeyPatch) -> None:
    """§10: index.json's platform objects carry the variant (broken: left out)."""
    _index(mp, lambda m: m["platform"].pop("variant", None))


def _ref_name_is_name_and_tag(mp: pytest.MonkeyPatch) -> None:
    """§10: the ref.name annotation is the tag alone (broken: NAME:TAG)."""
    _index(mp, lambda m: m["annotations"].update(
        {"org.opencontainers.image.ref.name": "vectors/docker-archive:2.0"}))


def _archive_members_unsorted(mp: pytest.MonkeyPatch) -> None:
    """§10: docker-archive members are sorted bytewise (broken: manifest.json first)."""
    orig = docker_archive.archive_entries

    def entries(image: Any) -> list[Entry]:
        out = orig(image)
        return [e for e in out if e.path == "manifest.json"] + [e for e in out if e.path != "manifest.json"]

    mp.setattr(docker_archive, "archive_entries", entries)


def _later_directory_declaration_wins(mp: pytest.MonkeyPatch) -> None:
    """§6: a directory declared twice stays in the first declaration's layer (broken: the last)."""
    orig = Tree.add

    def add(self: Tree, entry: Entry, layer: str, origin: str) -> None:
        old = self.by_path.get(entry.path)
        if old is not None and old.entry == entry and entry.type == "dir":
            del self.by_path[entry.path]
        orig(self, entry, layer, origin)

    mp.setattr(Tree, "add", add)


def _dot_components_kept_when_stripping(mp: pytest.MonkeyPatch) -> None:
    """§5: `.` components are dropped before `strip_components` (broken: counted)."""
    def member_path(name: str, strip: int, where: str) -> str | None:
        parts = [p for p in name.split("/") if p != ""][strip:]
        parts = [p for p in parts if p != "."]
        return "/".join(parts) if parts else None

    mp.setattr(archive, "_member_path", member_path)


def _member_owners_dropped(mp: pytest.MonkeyPatch) -> None:
    """§5: unpacked members keep their numeric owners (broken: 0:0)."""
    orig = archive.unpack_tar

    def unpack(*a: Any, **kw: Any) -> Any:
        for e in orig(*a, **kw):
            yield Entry(e.path, e.type, e.mode, 0, 0, e.linkname, e.content)

    mp.setattr("imagelock.inputs.downloads.unpack_tar", unpack)


def _context_symlinks_owned_by_root(mp: pytest.MonkeyPatch) -> None:
    """§3: symlinks from the context take the input's owner (broken: 0:0)."""
    orig = ContextFiles.place

    def entries(*a: Any, **kw: Any) -> Any:
        for e, layer, origin in orig(*a, **kw):
            if e.type == "symlink":
                e = Entry(e.path, e.type, e.mode, 0, 0, e.linkname, e.content)
            yield e, layer, origin

    mp.setattr(ContextFiles, "place", entries)


def _encoder_fed_half_mebibyte_pieces(mp: pytest.MonkeyPatch) -> None:
    """§8: the encoder is fed pieces of exactly 1 MiB (broken: 512 KiB)."""
    mp.setattr(build_layer, "ENCODER_BLOCK", 1 << 19)


def _encoder_fed_64_kib_pieces(mp: pytest.MonkeyPatch) -> None:
    """§8: the encoder is fed pieces of exactly 1 MiB (broken: 64 KiB; for this text 512 KiB
    happens to give the same stream)."""
    mp.setattr(build_layer, "ENCODER_BLOCK", 1 << 16)


# (rule, vector, what changes): "content" = diff_ids and everything after them.
CASES: list[tuple[Patch, str, str]] = [
    (_top_directory_gets_0755, "directory-src-modes", "content"),
    (_long_linkname_field_left_empty, "hardlink-long-names", "content"),
    (_pax_block_copies_linkname, "hardlink-long-names", "content"),
    (_cut_at_a_character_boundary, "utf8-cut-at-100", "content"),
    (_directory_pax_path_without_slash, "directory-pax-path", "content"),
    (_empty_labels_and_ports_written, "empty-config", "config"),
    (_variant_dropped_from_config, "variant-platforms", "config"),
    (_variant_dropped_from_index, "variant-platforms", "index"),
    (_ref_name_is_name_and_tag, "docker-archive", "index"),
    (_archive_members_unsorted, "docker-archive", "archive"),
    (_later_directory_declaration_wins, "docker-archive", "content"),
    (_dot_components_kept_when_stripping, "downloads-unpack", "content"),
    (_member_owners_dropped, "downloads-unpack", "content"),
    (_context_symlinks_owned_by_root, "context-symlinks", "content"),
    (_encoder_fed_half_mebibyte_pieces, "large-file-and-config", "blobs"),
    (_encoder_fed_64_kib_pieces, "large-text", "blobs"),
]


@pytest.mark.parametrize(("broken", "name", "changes"), CASES,
                         ids=[c[0].__name__.strip("_") for c in CASES])
def test_breaking_the_rule_makes_its_vector_fail(
    broken: Patch, name: str, changes: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vector = load(name)
    broken(monkeypatch)
    got = run_vector(vector, tmp_path)
    want = vector["expected"]

    def same(key: str) -> list[bool]:
        return [got["platforms"].get(p, {}).get(key) == w[key] for p, w in want["platforms"].items()]

    if changes == "content":
        assert not all(same("diff_ids")), f"{name} still matches with {broken.__doc__}"
    elif changes == "config":
        assert all(same("diff_ids")) and not all(same("config_digest")), broken.__doc__
    elif changes == "blobs":
        # The content identity holds; only the distribution identity moves.
        assert all(same("config_digest")) and not any(same("layers")), broken.__doc__
    elif changes == "index":
        # The images are the same (the archive holds the first one); only index.json moves.
        assert got["docker_archive"] == want["docker_archive"], broken.__doc__
        assert got["index_json_digest"] != want["index_json_digest"], broken.__doc__
    else:
        assert got["platforms"] == want["platforms"], broken.__doc__
        assert got["docker_archive"]["archive_digest"] != want["docker_archive"]["archive_digest"]
    assert got != want
