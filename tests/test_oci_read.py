"""Reading images from where they live (OCI layouts, docker-archives) into the one image model,
and refusing every layout or archive that does not add up."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from imagelock.core.digest import canonical_json
from imagelock.core.errors import InputError, IntegrityError, UnsafeContentError
from imagelock.formats.oci import MT_CONFIG, MT_INDEX, MT_LAYER_GZIP, MT_LAYER_TAR, MT_MANIFEST
from imagelock.oci.archive_read import read_docker_archive
from imagelock.oci.blobio import MAX_DOCUMENT
from imagelock.oci.image import Image
from imagelock.oci.layout_read import read_layout
from imagelock.oci.locations import read_image
from oci_helpers import (
    EXPECTED,
    archive_members,
    blob,
    copy_layout,
    file_member,
    index,
    link_member,
    manifest,
    put_blob,
    rewrite_manifest,
    sha,
    tar_of,
)

DIFF_ID = EXPECTED["layers"][0]["diff_id"]
LAYER = EXPECTED["layers"][0]["digest"]


def layer_sha(img: Image, i: int = 0) -> str:
    with img.layers[i].open() as f:
        return sha(f.read())


# -- what our builder and skopeo write reads back as the same image ------------------------------


def test_layout_from_our_builder_reads_back_with_the_locked_digests(hello: dict[str, Path]) -> None:
    img = read_layout(hello["oci"])
    assert img.manifest_digest == EXPECTED["manifest_digest"]
    assert img.config_digest == EXPECTED["config_digest"]
    assert [(b.digest, b.size, b.media_type) for b in img.layers] == [
        (LAYER, EXPECTED["layers"][0]["size"], MT_LAYER_GZIP)]
    assert (img.tag, img.platform) == ("1.0", "linux/amd64")
    assert layer_sha(img) == LAYER
    # A blob path is kept so a layout writer can hardlink it.
    assert img.layers[0].path == blob(hello["oci"], LAYER).resolve()


def test_layout_is_chosen_by_ref_name_and_platform(hello: dict[str, Path]) -> None:
    assert read_layout(hello["oci"], ref="1.0", platform="linux/amd64").manifest_digest == (
        EXPECTED["manifest_digest"])
    with pytest.raises(InputError, match="no image named '2.0'") as e:
        read_layout(hello["oci"], ref="2.0")
    assert e.value.hint is not None and "1.0" in e.value.hint
    with pytest.raises(InputError, match="is for linux/amd64, not linux/arm64"):
        read_layout(hello["oci"], platform="linux/arm64")


def test_our_docker_archive_exposes_layer_tars_by_diff_id(hello: dict[str, Path]) -> None:
    img = read_docker_archive(hello["archive"])
    assert img.config_digest == EXPECTED["config_digest"]
    assert [(b.digest, b.media_type) for b in img.layers] == [(DIFF_ID, MT_LAYER_TAR)]
    assert layer_sha(img) == DIFF_ID  # streamed from inside the archive, never extracted
    assert img.layers[0].path is None
    assert (img.name, img.tag) == ("imagelock/hello", "1.0")
    # The manifest is made up (an archive has none): canonical, over the tar layers.
    m = json.loads(img.manifest)
    assert img.manifest == canonical_json(m)
    assert m["config"] == {"mediaType": MT_CONFIG, "digest": EXPECTED["config_digest"],
                           "size": len(img.config)}
    assert m["layers"][0]["digest"] == DIFF_ID


def test_skopeo_docker_archive_with_layer_symlinks_reads_as_the_same_content(
    hello: dict[str, Path], skopeo_hello_archive: Path,
) -> None:
    img = read_docker_archive(skopeo_hello_archive, ref="imagelock/hello:1.0")
    ours = read_docker_archive(hello["archive"])
    assert img.config_digest == ours.config_digest == EXPECTED["config_digest"]
    assert [b.digest for b in img.layers] == [DIFF_ID]
    assert layer_sha(img) == DIFF_ID
    assert img.manifest == ours.manifest  # same content, same made-up manifest
    with pytest.raises(InputError, match="no image tagged"):
        read_docker_archive(skopeo_hello_archive, ref="other:1")


def docker25_archive(hello: dict[str, Path], dest: Path) -> tuple[Path, bytes]:
    """An archive as Docker 25+ saves it: an OCI layout with uncompressed layers, plus the
    classic manifest.json pointing into blobs/."""
    classic = read_docker_archive(hello["archive"])
    with classic.layers[0].open() as f:
        layer = f.read()
    m = canonical_json({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": classic.config_digest,
                   "size": len(classic.config)},
        "layers": [{"mediaType": MT_LAYER_TAR, "digest": DIFF_ID, "size": len(layer)}],
    })
    idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": sha(m), "size": len(m),
        "annotations": {"io.containerd.image.name": "docker.io/imagelock/hello:1.0",
                        "org.opencontainers.image.ref.name": "1.0"}}]}
    hexes = {d: d.split(":")[1] for d in (classic.config_digest, DIFF_ID, sha(m))}
    members = [
        file_member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        file_member("index.json", json.dumps(idx).encode()),
        file_member("manifest.json", json.dumps([{
            "Config": f"blobs/sha256/{hexes[classic.config_digest]}",
            "RepoTags": ["imagelock/hello:1.0"],
            "Layers": [f"blobs/sha256/{hexes[DIFF_ID]}"]}]).encode()),
        file_member(f"blobs/sha256/{hexes[classic.config_digest]}", classic.config),
        file_member(f"blobs/sha256/{hexes[DIFF_ID]}", layer),
        file_member(f"blobs/sha256/{hexes[sha(m)]}", m),
    ]
    return tar_of(members, dest), m  # type: ignore[arg-type]


def test_docker25_archive_is_read_through_its_embedded_layout(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    archive, m = docker25_archive(hello, tmp_path / "d25.tar")
    for ref in (None, "imagelock/hello:1.0", "docker.io/imagelock/hello:1.0", "1.0"):
        img = read_docker_archive(archive, ref=ref)
        assert img.manifest == m  # the real manifest, not a made-up one
        assert img.config_digest == EXPECTED["config_digest"]
        assert [(b.digest, b.media_type) for b in img.layers] == [(DIFF_ID, MT_LAYER_TAR)]
        assert layer_sha(img) == DIFF_ID


def test_read_image_takes_skopeo_style_locations(
    hello: dict[str, Path], skopeo_hello_archive: Path
) -> None:
    for loc in (f"oci:{hello['oci']}:1.0", f"oci:{hello['oci']}", str(hello["oci"])):
        assert read_image(loc).manifest_digest == EXPECTED["manifest_digest"]
    for loc in (f"docker-archive:{skopeo_hello_archive}:imagelock/hello:1.0",
                str(hello["archive"])):
        assert read_image(loc).config_digest == EXPECTED["config_digest"]
    with pytest.raises(InputError, match="neither an image path"):
        read_image("/nonexistent/image")


def test_an_image_index_is_followed_to_the_platform_asked_for(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "multi")
    amd64 = index(layout)["manifests"][0]
    cfg = json.loads(blob(layout, manifest(layout)["config"]["digest"]).read_bytes())
    cfg["architecture"] = "arm64"
    cfg["variant"] = "v8"
    arm_cfg = json.dumps(cfg).encode()
    arm_m = manifest(layout)
    arm_m["config"] = {"mediaType": MT_CONFIG, "digest": put_blob(layout, arm_cfg),
                       "size": len(arm_cfg)}
    arm_data = json.dumps(arm_m).encode()
    arm = {"mediaType": MT_MANIFEST, "digest": put_blob(layout, arm_data), "size": len(arm_data),
           "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    nested = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX,
                         "manifests": [{k: v for k, v in amd64.items() if k != "annotations"},
                                       arm]}).encode()
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{"mediaType": MT_INDEX, "digest": put_blob(layout, nested),
                                           "size": len(nested),
                                           "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]}))
    assert read_layout(layout).manifest_digest == EXPECTED["manifest_digest"]  # default amd64
    img = read_layout(layout, ref="1.0", platform="linux/arm64")
    assert (img.platform, img.manifest_digest) == ("linux/arm64/v8", sha(arm_data))
    with pytest.raises(InputError, match="no image for platform linux/s390x"):
        read_layout(layout, platform="linux/s390x")


# -- hostile layouts ------------------------------------------------------------------------------


def test_manifest_pointing_at_a_missing_blob_is_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    blob(layout, LAYER).unlink()
    with pytest.raises(InputError, match=f"layer 0 .{LAYER}. is missing") as e:
        read_layout(layout)
    assert e.value.hint and "copy it again" in e.value.hint


def test_blob_whose_digest_differs_is_refused_and_named(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    p = blob(layout, LAYER)
    data = bytearray(p.read_bytes())
    data[100] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"layer 0 .{LAYER}. .* has digest sha256:"):
        read_layout(layout)


def test_oversized_blob_is_refused_before_it_is_hashed(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    with open(blob(layout, LAYER), "ab") as f:
        f.write(b"\0" * 4096)
    with pytest.raises(IntegrityError, match="more than the 988 its descriptor says"):
        read_layout(layout)


def test_documents_above_the_size_limit_are_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")

    def huge_config(m: dict[str, Any]) -> None:
        cfg = blob(layout, m["config"]["digest"]).read_bytes()
        big = cfg[:-1] + b',"pad":"' + b"x" * MAX_DOCUMENT + b'"}'
        m["config"] = {"mediaType": MT_CONFIG, "digest": put_blob(layout, big), "size": len(big)}

    rewrite_manifest(layout, huge_config)
    with pytest.raises(UnsafeContentError, match="at most 4194304 bytes"):
        read_layout(layout)
    (layout / "index.json").write_bytes(b" " * (MAX_DOCUMENT + 1))
    with pytest.raises(UnsafeContentError, match="index.json .* larger than"):
        read_layout(layout)


def test_blob_name_that_climbs_out_of_the_layout_is_refused(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    (tmp_path / "secret").write_text("not yours")
    idx = index(layout)
    idx["manifests"][0]["digest"] = "sha256:../../../secret"
    (layout / "index.json").write_text(json.dumps(idx))
    with pytest.raises(UnsafeContentError, match="outside the blob store"):
        read_layout(layout)
    # A blob that is a symlink to a file outside the layout is refused the same way.
    layout2 = copy_layout(hello["oci"], tmp_path / "l2")
    outside = tmp_path / "outside"
    outside.write_bytes(blob(layout2, LAYER).read_bytes())
    blob(layout2, LAYER).unlink()
    os.symlink(outside, blob(layout2, LAYER))
    with pytest.raises(UnsafeContentError, match="leads outside the layout"):
        read_layout(layout2)


def test_unknown_media_types_are_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")

    def odd_layer(m: dict[str, Any]) -> None:
        m["layers"][0]["mediaType"] = "application/vnd.example.layer+rar"

    rewrite_manifest(layout, odd_layer)
    with pytest.raises(InputError, match="unknown media type 'application/vnd.example.layer\\+rar'"):
        read_layout(layout)
    idx = index(layout)
    idx["manifests"][0]["mediaType"] = "application/vnd.docker.distribution.manifest.v1+json"
    (layout / "index.json").write_text(json.dumps(idx))
    with pytest.raises(InputError, match="unknown media type"):
        read_layout(layout)


def test_ambiguous_documents_are_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    m = blob(layout, index(layout)["manifests"][0]["digest"]).read_bytes()
    dup = m[:-1] + b',"layers":[]}'  # a second "layers": two readers, two images
    idx = index(layout)
    idx["manifests"][0].update(digest=put_blob(layout, dup), size=len(dup))
    (layout / "index.json").write_text(json.dumps(idx))
    with pytest.raises(InputError, match="'layers' appears twice"):
        read_layout(layout)


def test_a_blob_changed_after_reading_fails_when_it_is_read(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    img = read_layout(layout)
    p = blob(layout, LAYER)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="has digest"), img.layers[0].open() as f:
        f.read()


def test_platform_lie_in_the_index_is_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    layout = copy_layout(hello["oci"], tmp_path / "l")
    idx = index(layout)
    idx["manifests"][0]["platform"] = {"os": "linux", "architecture": "arm64"}
    (layout / "index.json").write_text(json.dumps(idx))
    with pytest.raises(InputError, match="listed for linux/arm64 but its config is for linux/amd64"):
        read_layout(layout)


# -- hostile archives -----------------------------------------------------------------------------


def test_archive_member_names_that_climb_out_are_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    members = archive_members(hello["archive"])
    layer_name = DIFF_ID.split(":")[1] + ".tar"
    for bad in ("../" + layer_name, "/" + layer_name, "x/../../" + layer_name):
        renamed = []
        for info, data in members:
            copy = tarfile.TarInfo(bad if info.name == layer_name else info.name)
            copy.mode, copy.type = info.mode, info.type
            renamed.append((copy, data))
        archive = tar_of(renamed, tmp_path / "bad.tar")
        with pytest.raises(UnsafeContentError, match="leaves the archive"):
            read_docker_archive(archive)


def test_manifest_json_naming_a_path_outside_is_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    members = archive_members(hello["archive"])
    out = []
    for info, data in members:
        if info.name == "manifest.json":
            assert data is not None
            doc = json.loads(data)
            doc[0]["Layers"] = ["../../etc/passwd"]
            data = json.dumps(doc).encode()
        out.append((info, data))
    with pytest.raises(UnsafeContentError, match="manifest.json layer 0 .* leaves the archive"):
        read_docker_archive(tar_of(out, tmp_path / "bad.tar"))


def test_layer_links_leaving_the_archive_are_refused(
    skopeo_hello_archive: Path, tmp_path: Path
) -> None:
    members = archive_members(skopeo_hello_archive)
    for target in ("../../../etc/passwd", "/etc/passwd"):
        out: list[tuple[tarfile.TarInfo, bytes | None]] = []
        for info, data in members:
            if info.issym():
                out.append(link_member(info.name, target))
            else:
                out.append((info, data))
        with pytest.raises(UnsafeContentError, match="leaves the archive"):
            read_docker_archive(tar_of(out, tmp_path / "bad.tar"))


def test_archive_layer_that_differs_from_its_diff_id_is_refused(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    out = []
    for info, data in archive_members(hello["archive"]):
        if info.name.endswith(".tar"):
            assert data is not None
            data = data[:600] + b"X" + data[601:]
        out.append((info, data))
    with pytest.raises(IntegrityError, match=f"layer 0 .* has digest .* not the {DIFF_ID}"):
        read_docker_archive(tar_of(out, tmp_path / "bad.tar"))


def test_archive_with_a_member_twice_or_a_device_is_refused(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    members = archive_members(hello["archive"])
    twice = members + [members[0]]
    with pytest.raises(UnsafeContentError, match="twice"):
        read_docker_archive(tar_of(twice, tmp_path / "twice.tar"))
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(UnsafeContentError, match="device"):
        read_docker_archive(tar_of([*members, (dev, None)], tmp_path / "dev.tar"))


def test_compressed_archive_gets_a_hint(hello: dict[str, Path], tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "hello.tar.gz"
    gz.write_bytes(gzip.compress(hello["archive"].read_bytes()))
    with pytest.raises(InputError, match="gzip-compressed") as e:
        read_docker_archive(gz)
    assert e.value.hint and "decompress" in e.value.hint


def test_missing_layer_member_is_refused(hello: dict[str, Path], tmp_path: Path) -> None:
    members = [(i, d) for i, d in archive_members(hello["archive"]) if not i.name.endswith(".tar")]
    with pytest.raises(InputError, match="layer 0 .* is missing"):
        read_docker_archive(tar_of(members, tmp_path / "bad.tar"))


def test_reading_never_loads_a_layer_whole(hello: dict[str, Path]) -> None:
    # Layers are streamed in chunks: a blob's reader hands out at most what is asked.
    img = read_docker_archive(hello["archive"])
    with img.layers[0].open() as f:
        first = f.read(512)
        rest = f.read()
    assert len(first) == 512
    assert hashlib.sha256(first + rest).hexdigest() == DIFF_ID.split(":")[1]
