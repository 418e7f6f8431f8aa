"""A rebuild compared with a published image: the verdict at both identities, and every
difference named, classified and located (tests/tamper.py makes the tampered copies)."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
import tamper
from helpers import copy_example
from imagelock.api import resolve
from imagelock.build.image import build_images
from imagelock.compare.diffoscope import keep_images, run_diffoscope
from imagelock.compare.extract import safe_relpath
from imagelock.compare.images import compare_images
from imagelock.compare.render import render
from imagelock.core.digest import sha256_digest
from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.report import Difference, Report
from imagelock.oci.image import Blob, Image

TWO_LAYER_SPEC = """\
version: 1
image:
  name: test/two
  tag: "1"
  layers: [base, app]
source_date_epoch: 1767225600
contents:
  files:
    - src: base
      dest: /opt/base
      layer: base
    - src: app
      dest: /opt/app
      layer: app
config:
  entrypoint: ["/opt/app/run.sh"]
  env:
    GREETING: hello
"""


def _build_hello(tmp: Path) -> Image:
    ctx = copy_example("hello", tmp / "hello")
    (tmp / "work").mkdir()
    lock = read_lock(ctx / "imagelock.lock")
    return build_images(lock, context=ctx, store=Store(tmp / "store"), workdir=tmp / "work")[0]


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return _build_hello(tmp_path_factory.mktemp("hello"))


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A two-layer image (base, app) from a tmp context with a few files."""
    tmp = tmp_path_factory.mktemp("two")
    ctx = tmp / "ctx"
    (ctx / "base" / "lib").mkdir(parents=True)
    (ctx / "base" / "lib" / "data.bin").write_bytes(bytes(range(256)) * 64)
    (ctx / "base" / "README").write_text("the base layer\n")
    (ctx / "app").mkdir()
    (ctx / "app" / "run.sh").write_text("#!/bin/sh\necho hello\n")
    (ctx / "app" / "run.sh").chmod(0o755)
    (ctx / "app" / "app.conf").write_text("greeting = hello\nrepeat = 3\n")
    (ctx / "imagelock.yaml").write_text(TWO_LAYER_SPEC)
    store = Store(tmp / "store")
    lock = resolve(ctx / "imagelock.yaml", store=store, offline=True)
    (tmp / "work").mkdir()
    return build_images(lock, context=ctx, store=store, workdir=tmp / "work")[0]


def _only(report: Report, **match: object) -> list[Difference]:
    """The non-derived differences, checking every one of them matches `match`."""
    found = [d for d in report.differences if not d.derived]
    assert found, render(report, verbose=True)
    for d in found:
        for k, v in match.items():
            assert getattr(d, k) == v, (k, d, render(report, verbose=True))
    return found


# --- the verdicts ----------------------------------------------------------------------------

def test_a_second_build_of_the_same_lock_is_reproduced(hello: Image, tmp_path: Path) -> None:
    again = _build_hello(tmp_path)
    report = compare_images(again, hello, None)
    assert report.verdict == "reproduced"
    assert report.differences == [] and report.summary.total == 0
    assert report.published is not None
    assert report.published.manifest_digest == report.rebuilt.manifest_digest
    assert render(report).startswith("REPRODUCED: ")


def test_an_untouched_rewrite_by_the_tamper_helpers_changes_only_compression(
    hello: Image, tmp_path: Path
) -> None:
    # The helpers write members back byte for byte: a no-op edit gives the same diff_ids.
    same = tamper.edit_layer(hello, 0, tmp_path)
    assert same.config_digest == hello.config_digest
    assert compare_images(hello, same, None).verdict == "reproduced-content"


def test_recompressed_layers_are_reproduced_content_with_a_decompression_proof(
    two_layers: Image, tmp_path: Path
) -> None:
    published = tamper.recompress(two_layers, tmp_path, level=9)
    assert published.manifest_digest != two_layers.manifest_digest
    report = compare_images(two_layers, published, None)
    assert report.verdict == "reproduced-content", render(report, verbose=True)
    assert report.published is not None
    rebuilt_ids = [la.diff_id for la in report.rebuilt.layers]
    # Every published blob was decompressed and hashes to the rebuilt diff_id.
    assert [la.content_digest for la in report.published.layers] == rebuilt_ids
    assert {la.digest for la in report.published.layers}.isdisjoint(
        la.digest for la in report.rebuilt.layers)
    diffs = _only(report, category="compression", scope="manifest")
    assert sorted(d.field for d in diffs) == ["layers[0].digest", "layers[1].digest"]
    assert report.summary.by_category == {"compression": 2}


@pytest.mark.parametrize("encoding", ["zstd", "none"])
def test_zstd_or_uncompressed_layers_of_the_same_content_are_reproduced_content(
    two_layers: Image, tmp_path: Path, encoding: tamper.Encoding
) -> None:
    # What a docker-archive (uncompressed layers) or a zstd re-push of the image looks like.
    published = tamper.recompress(two_layers, tmp_path, level=3, encoding=encoding)
    report = compare_images(two_layers, published, None)
    assert report.verdict == "reproduced-content", render(report, verbose=True)
    diffs = _only(report, category="compression", scope="manifest")
    assert {d.field for d in diffs} == {"layers[0].mediaType", "layers[0].digest",
                                        "layers[1].mediaType", "layers[1].digest"}


def test_a_blob_that_decompresses_to_something_else_is_not_reproduced_content(
    hello: Image, tmp_path: Path
) -> None:
    # The config (and so the config digest) is the rebuild's: only the blob lies.
    published = tamper.replace_blob_keeping_config(
        hello, tmp_path, 0, tamper.change_byte("/etc/os-release", 3))
    assert published.config_digest == hello.config_digest
    report = compare_images(hello, published, None)
    assert report.verdict == "mismatch"
    fields = {(d.field, d.path) for d in report.differences if not d.derived}
    assert ("content", "/etc/os-release") in fields
    assert ("content_digest", None) in fields


def test_a_blob_that_is_not_gzip_at_all_is_a_mismatch(hello: Image, tmp_path: Path) -> None:
    published = tamper.with_blob_bytes(hello, tmp_path, 0, b"this is not a gzip stream" * 10)
    report = compare_images(hello, published, None)
    assert report.verdict == "mismatch"
    (d,) = _only(report, scope="layer", layer=0, field="blob")
    assert d.got is not None and "not valid gzip" in d.got


def test_a_blob_that_is_not_the_bytes_its_digest_names_is_an_error(
    hello: Image, tmp_path: Path
) -> None:
    good = tamper.recompress(hello, tmp_path / "good")
    lying = tmp_path / "lying.gz"
    lying.write_bytes(b"\x1f\x8b" + b"\0" * 40)
    blob = good.layers[0]
    published = Image(manifest=good.manifest, config=good.config, platform=good.platform,
                      layers=[Blob(blob.digest, blob.size, blob.media_type, path=lying)])
    report = compare_images(hello, published, None)
    assert report.verdict == "error"
    assert report.error is not None and blob.digest in report.error.message
    assert report.error.hint


def test_nothing_to_compare_with_is_a_usage_error(hello: Image) -> None:
    with pytest.raises(InputError) as e:
        compare_images(hello, None, None)
    assert e.value.hint


# --- each kind of tampering is named and classified ------------------------------------------

def test_one_changed_byte_names_the_file_as_content(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path, tamper.change_byte("/usr/local/bin/hello", 100))
    report = compare_images(hello, published, None)
    assert report.verdict == "mismatch"
    (d,) = _only(report, category="content", scope="layer", layer=0, layer_name="files",
                 path="/usr/local/bin/hello", field="content", change="changed")
    assert d.expected is not None and d.got is not None
    assert d.expected.startswith("8512 bytes, sha256:") and d.got.startswith("8512 bytes, sha256:")
    assert d.expected != d.got
    assert report.summary.total == 1 and report.summary.by_category == {"content": 1}
    # The digests that differ only because of it are listed, marked derived.
    derived = {d.field for d in report.differences if d.derived}
    assert {"rootfs.diff_ids[0]", "layers[0].digest", "config.digest"} <= derived
    assert "/usr/local/bin/hello" in report.summary.first[0]


def test_a_changed_mode_is_permissions(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path, tamper.chmod("/etc/passwd", 0o666))
    report = compare_images(hello, published, None)
    (d,) = _only(report, category="permissions", path="/etc/passwd", field="mode")
    assert (d.expected, d.got) == ("0644", "0666")


def test_an_extra_file_is_content_added(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(
        hello, 0, tmp_path, tamper.add_file("/etc/cron.d/backdoor", b"* * * * * root sh\n",
                                            mtime=1767225600))
    report = compare_images(hello, published, None)
    (d,) = _only(report, category="content", path="/etc/cron.d/backdoor", change="added",
                 field="entry")
    assert d.expected is None and d.got is not None and d.got.startswith("file, 18 bytes")


def test_a_removed_file_is_content_removed(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path, tamper.remove("/usr/share/hello/README.txt"))
    report = compare_images(hello, published, None)
    (d,) = _only(report, category="content", path="/usr/share/hello/README.txt",
                 change="removed")
    assert d.got is None


def test_a_changed_mtime_is_a_timestamp(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path, tamper.set_mtime("/etc/group", 1700000000))
    report = compare_images(hello, published, None)
    (d,) = _only(report, category="timestamp", path="/etc/group", field="mtime")
    assert d.expected is not None and d.expected.startswith("1767225600 (2026-01-01T00:00:00Z)")
    assert d.got is not None and d.got.startswith("1700000000")


def test_a_changed_owner_is_ownership(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path,
                                  tamper.chown("/usr/local/bin/hello", 1000, 1000, "builder"))
    report = compare_images(hello, published, None)
    diffs = _only(report, category="ownership", path="/usr/local/bin/hello")
    assert {(d.field, d.expected, d.got) for d in diffs} == {
        ("uid", "0", "1000"), ("gid", "0", "1000"), ("uname", "", "builder")}


def test_reordered_entries_are_ordering(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path, tamper.swap_entries("/etc/group",
                                                                          "/etc/passwd"))
    report = compare_images(hello, published, None)
    diffs = _only(report, category="ordering", field="order", change="moved")
    assert {d.path for d in diffs} <= {"/etc/group", "/etc/passwd", "/etc/os-release"}
    assert 1 <= len(diffs) <= 2


def test_a_changed_env_entry_is_metadata_in_the_config(hello: Image, tmp_path: Path) -> None:
    def edit(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["config"]["Env"] = [e if not e.startswith("PATH=") else "PATH=/tmp/evil:/usr/bin"
                                for e in cfg["config"]["Env"]]
    published = tamper.edit_config(hello, tmp_path, edit)
    report = compare_images(hello, published, None)
    assert report.verdict == "mismatch"
    (d,) = _only(report, category="metadata", scope="config", field="config.Env")
    assert d.expected is not None and d.expected.startswith("PATH=/usr/local/sbin")
    assert d.got == "PATH=/tmp/evil:/usr/bin"
    # Layers are the same blobs: no layer was decompressed or walked.
    assert not any(d.scope == "layer" for d in report.differences)


def test_another_tar_header_format_is_metadata(hello: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(hello, 0, tmp_path,
                                  tamper.as_format("/etc/os-release", tarfile.GNU_FORMAT))
    report = compare_images(hello, published, None)
    (d,) = _only(report, category="metadata", path="/etc/os-release", field="format")
    assert (d.expected, d.got) == ("ustar", "gnu")


def test_a_file_capability_is_permissions_and_its_pax_header_a_format_change(
    hello: Image, tmp_path: Path
) -> None:
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00"  # cap_net_raw, as setcap writes it
    published = tamper.edit_layer(hello, 0, tmp_path, tamper.add_pax(
        "/usr/local/bin/hello", {"SCHILY.xattr.security.capability": cap}))
    report = compare_images(hello, published, None)
    diffs = _only(report, path="/usr/local/bin/hello")
    assert {(d.category, d.field) for d in diffs} == {
        ("permissions", "pax:SCHILY.xattr.security.capability"), ("metadata", "format")}
    assert report.summary.by_category == {"permissions": 1, "metadata": 1}


def test_an_extra_layer_is_content_added(two_layers: Image, tmp_path: Path) -> None:
    extra = tamper.write_tar(tamper.add_file("/opt/extra", b"more\n")([]))
    published = tamper.with_layers(two_layers, tmp_path, [*two_layers.layers, extra])
    report = compare_images(two_layers, published, None)
    assert len(_only(report, scope="layer", layer=2, field="layer", change="added")) == 1
    assert report.summary.by_category == {"content": 1}


def test_swapped_layers_are_ordering_of_layers(two_layers: Image, tmp_path: Path) -> None:
    published = tamper.swap_layers(two_layers, tmp_path, 0, 1)
    report = compare_images(two_layers, published, None)
    assert report.verdict == "mismatch"
    diffs = _only(report, category="ordering", scope="layer", field="layer", change="moved")
    assert sorted(d.layer or 0 for d in diffs) == [0, 1]
    assert "expected layer 1" in (diffs[0].got or "")


def test_a_layer_replaced_by_another_names_its_files(two_layers: Image, tmp_path: Path) -> None:
    # The app layer replaced by a copy of the base layer: its files are gone, base's are added.
    base = tamper.layer_tar(two_layers.layers[0])
    published = tamper.with_layers(two_layers, tmp_path, [two_layers.layers[0], base])
    report = compare_images(two_layers, published, None)
    changes = {(d.change, d.path) for d in report.differences if d.scope == "layer"}
    assert ("removed", "/opt/app/run.sh") in changes
    assert ("added", "/opt/base/lib/data.bin") in changes
    assert all(d.layer == 1 and d.layer_name == "app" for d in report.differences
               if d.scope == "layer")


def test_a_change_in_the_second_layer_names_that_layer(two_layers: Image, tmp_path: Path) -> None:
    published = tamper.edit_layer(two_layers, 1, tmp_path,
                                  tamper.change_byte("/opt/app/app.conf", 0),
                                  tamper.chmod("/opt/app/run.sh", 0o4755))
    report = compare_images(two_layers, published, None)
    diffs = _only(report, scope="layer", layer=1, layer_name="app")
    assert {(d.category, d.path) for d in diffs} == {
        ("content", "/opt/app/app.conf"), ("permissions", "/opt/app/run.sh")}
    # Layer 0 was not walked: its blob is the same.
    assert not any(d.layer == 0 for d in report.differences)


# --- against the lock alone ------------------------------------------------------------------

def test_against_the_lock_alone(hello: Image, tmp_path: Path) -> None:
    from helpers import REPO

    expected = read_lock(REPO / "examples/hello/imagelock.lock").expected["linux/amd64"]
    report = compare_images(hello, None, expected)
    assert report.verdict == "reproduced"
    assert (report.expected_side, report.got_side) == ("lock", "rebuilt")
    assert report.lock is not None and report.lock.manifest_digest == expected.manifest_digest

    # Same config, other blob digests (a lock made with another gzip): content only.
    other = [la.model_copy(update={"digest": "sha256:" + "0" * 64, "size": 1})
             for la in expected.layers]
    report = compare_images(hello, None, expected.model_copy(
        update={"layers": other, "manifest_digest": "sha256:" + "1" * 64}))
    assert report.verdict == "reproduced-content"
    assert [la.content_digest for la in report.rebuilt.layers] == \
        [la.diff_id for la in expected.layers]
    _only(report, category="compression", field="layers[0].digest")

    # Another diff_id: a mismatch that names the layer, and says what would explain it.
    wrong = [expected.layers[0].model_copy(update={"diff_id": "sha256:" + "2" * 64})]
    report = compare_images(hello, None, expected.model_copy(
        update={"layers": wrong, "config_digest": "sha256:" + "3" * 64,
                "manifest_digest": "sha256:" + "4" * 64}))
    assert report.verdict == "mismatch"
    assert len(_only(report, category="content", field="rootfs.diff_ids[0]", layer_name="files")) == 1
    assert any("published image" in n for n in report.notes)


def test_the_lock_adds_notes_when_a_published_image_is_given(hello: Image, tmp_path: Path) -> None:
    from helpers import REPO

    expected = read_lock(REPO / "examples/hello/imagelock.lock").expected["linux/amd64"]
    published = tamper.recompress(hello, tmp_path)
    report = compare_images(hello, published, expected)
    assert report.verdict == "reproduced-content"
    assert "the rebuild has the lock's manifest digest" in report.notes
    assert "the published image has the lock's config digest, not its manifest digest" \
        in report.notes


# --- the report ------------------------------------------------------------------------------

def test_the_report_is_json_and_renders_a_summary_before_the_detail(
    two_layers: Image, tmp_path: Path
) -> None:
    published = tamper.edit_layer(two_layers, 1, tmp_path,
                                  tamper.set_mtime("/opt/app/run.sh", 1),
                                  tamper.set_mtime("/opt/app/app.conf", 1),
                                  tamper.change_byte("/opt/app/run.sh", 5))
    report = compare_images(two_layers, published, None)
    data = json.loads(report.model_dump_json())
    assert data["verdict"] == "mismatch"
    assert data["summary"]["by_category"] == {"content": 1, "timestamp": 2}
    assert Report.model_validate(data) == report
    text = render(report)
    lines = text.splitlines()
    assert lines[0].startswith("MISMATCH: the published image differs from the rebuild: "
                               "3 differences (content 1, timestamp 2)")
    assert any("[content] layer 1 (app) /opt/app/run.sh: content:" in x for x in lines)
    assert "follows from" not in text
    assert "(follows from the differences below)" in render(report, verbose=True)


def test_the_report_keeps_a_bounded_list_but_counts_everything(
    hello: Image, tmp_path: Path
) -> None:
    edits = [tamper.set_mtime(p, 5) for p in ("/etc/group", "/etc/passwd", "/etc/os-release",
                                              "/usr/share/hello/README.txt")]
    published = tamper.edit_layer(hello, 0, tmp_path, *edits)
    report = compare_images(hello, published, None, limit=2)
    assert report.summary.total == 4 and report.summary.omitted == 2
    assert "more" in render(report, verbose=True)


def test_every_report_field_is_described() -> None:
    def walk(schema: dict, where: str) -> list[str]:  # type: ignore[type-arg]
        missing = [f"{where}.{n}" for n, p in schema.get("properties", {}).items()
                   if "description" not in p]
        for name, d in schema.get("$defs", {}).items():
            missing += walk(d, name)
        return missing

    assert walk(Report.model_json_schema(), "Report") == []


# --- --diffoscope and --keep -----------------------------------------------------------------

def test_diffoscope_explains_a_changed_file(hello: Image, tmp_path: Path) -> None:
    if shutil.which("diffoscope") is None:
        pytest.fail("diffoscope is not installed: run ./scripts/setup (it installs "
                    "diffoscope-minimal)")
    published = tamper.edit_layer(hello, 0, tmp_path / "img",
                                  tamper.change_byte("/usr/share/hello/README.txt", 0))
    report = compare_images(hello, published, None)
    out = tmp_path / "diffs"
    report = run_diffoscope(report, hello, published, out)
    assert report.diffoscope is not None and report.diffoscope.available
    (pair,) = report.diffoscope.pairs
    assert pair.path == "/usr/share/hello/README.txt" and pair.exit_code == 1
    assert "@@" in pair.excerpt
    for f in (pair.expected_file, pair.got_file, pair.output):
        assert f is not None and Path(f).resolve().is_relative_to(out.resolve())
    assert "diffoscope: 1 file(s) compared" in render(report)


def test_without_diffoscope_the_report_says_how_to_get_it(
    hello: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    published = tamper.edit_layer(hello, 0, tmp_path / "img", tamper.change_byte("/etc/group"))
    report = run_diffoscope(compare_images(hello, published, None), hello, published,
                            tmp_path / "diffs")
    assert report.diffoscope is not None and not report.diffoscope.available
    assert "diffoscope-minimal" in (report.diffoscope.note or "")
    assert not (tmp_path / "diffs").exists()


def test_extraction_paths_cannot_leave_the_output_directory() -> None:
    for evil in ("../../etc/passwd", "/../x", "a/../../b", "..", "./", "a//b/./c"):
        rel = safe_relpath(evil)
        assert not rel.is_absolute() and ".." not in rel.parts
    assert safe_relpath("/usr/bin/x").as_posix() == "usr/bin/x"


def test_keep_writes_both_images_as_oci_layouts(hello: Image, tmp_path: Path) -> None:
    published = tamper.recompress(hello, tmp_path / "img")
    # A published image read from a registry has blobs with an opener, not a path.
    def opener(path: Path | None) -> Callable[[], BinaryIO]:
        assert path is not None
        return lambda: path.open("rb")

    opened = Image(manifest=published.manifest, config=published.config, platform="linux/amd64",
                   tag="1.0", layers=[Blob(b.digest, b.size, b.media_type, opener=opener(b.path))
                                      for b in published.layers])
    out = keep_images(hello, opened, tmp_path / "keep")
    assert set(out) == {"rebuilt", "published"}
    for side, image in (("rebuilt", hello), ("published", published)):
        index = json.loads((out[side] / "index.json").read_text())
        assert index["manifests"][0]["digest"] == image.manifest_digest
        for blob in image.layers:
            data = (out[side] / "blobs" / "sha256" / blob.digest.split(":")[1]).read_bytes()
            assert sha256_digest(data) == blob.digest
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == ["published", "rebuilt"]


# --- images as the readers give them ---------------------------------------------------------

def test_images_read_back_from_a_layout_and_a_docker_archive(tmp_path: Path) -> None:
    from imagelock.oci.archive_read import read_docker_archive
    from imagelock.oci.docker_archive import write_docker_archive
    from imagelock.oci.layout import write_layout
    from imagelock.oci.layout_read import read_layout

    ctx = copy_example("hello", tmp_path / "hello")
    (tmp_path / "work").mkdir()
    lock = read_lock(ctx / "imagelock.lock")
    (rebuilt,) = build_images(lock, context=ctx, store=Store(tmp_path / "store"),
                              workdir=tmp_path / "work", keep_tars=True)
    write_layout([rebuilt], tmp_path / "oci")
    write_docker_archive(rebuilt, tmp_path / "img.tar", mtime=lock.source_date_epoch)

    assert compare_images(rebuilt, read_layout(tmp_path / "oci"), None).verdict == "reproduced"
    # A docker-archive keeps the config and the uncompressed layers, not the manifest: the
    # content identity is proven from the tars themselves.
    report = compare_images(rebuilt, read_docker_archive(tmp_path / "img.tar"), None)
    assert report.verdict == "reproduced-content", render(report, verbose=True)
    assert report.published is not None
    assert report.published.layers[0].content_digest == report.rebuilt.layers[0].diff_id

    # --keep writes layouts the reader takes back, digests intact.
    kept = keep_images(rebuilt, read_docker_archive(tmp_path / "img.tar"), tmp_path / "keep")
    assert read_layout(kept["rebuilt"]).manifest_digest == rebuilt.manifest_digest
    assert read_layout(kept["published"]).config_digest == rebuilt.config_digest
