"""A published image whose layer is a decompression or tar bomb: `rebuild` reports a mismatch
that names the limit it hit, within 200 MB of memory and 30 s, never a crash (exit 70) and never
unbounded memory. Bombs are generated here (tests/bombs.py); each rebuild runs in a child process
whose peak RSS the kernel reports (tests/measure.py's run_measured)."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import bombs
import pytest
from helpers import IMAGELOCK, copy_example, run
from imagelock.formats.oci import MT_LAYER_GZIP
from imagelock.tar.compress import gunzip_chunks
from measure import Measured, run_measured
from oci_helpers import rewrite_manifest

MEMORY_MB = 200
SECONDS = 30


def summary(m: Measured) -> str:
    return (f"exit {m.returncode}, peak RSS {m.peak_rss_mb:.0f} MiB, {m.seconds:.1f} s"
            + (", killed: ran too long" if m.timed_out else ""))


def rebuild_measured(hello: dict[str, Path], layout: Path) -> Measured:
    """`imagelock rebuild` of hello against the published `layout`, in a measured child."""
    return run_measured([IMAGELOCK, "rebuild", str(hello["example"]), "--image", f"oci:{layout}",
                         "--no-sandbox", "--json"],
                        env={**os.environ, "IMAGELOCK_STORE": str(hello["store"])},
                        timeout=2 * SECONDS)


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The hello example and its image as `imagelock build` writes it."""
    tmp = tmp_path_factory.mktemp("bombs")
    ex = copy_example("hello", tmp / "hello")
    store = tmp / "store"
    r = run(["build", str(ex), "-o", str(tmp / "oci")], env={"IMAGELOCK_STORE": str(store)})
    assert r.returncode == 0, r.stdout + r.stderr
    return {"example": ex, "oci": tmp / "oci", "store": store}


def published_with_layer(hello: dict[str, Path], pieces: Iterable[bytes], dest: Path) -> Path:
    """hello's layout with its layer replaced by the bomb; the config still claims the real
    layer's diff_id (so the comparison first tries to prove it, then lists the entries)."""
    shutil.copytree(hello["oci"], dest)
    digest, size, _ = bombs.write_blob(pieces, dest / "blobs" / "sha256")

    def edit(m: dict) -> None:  # type: ignore[type-arg]
        m["layers"][0] = {"mediaType": MT_LAYER_GZIP, "digest": digest, "size": size}

    rewrite_manifest(dest, edit)
    return dest


def rebuild_against(hello: dict[str, Path], layout: Path) -> tuple[dict, str]:  # type: ignore[type-arg]
    m = rebuild_measured(hello, layout)
    assert not m.timed_out and m.returncode == 1, summary(m) + "\n" + m.stderr[-3000:]
    assert m.peak_rss_mb < MEMORY_MB, summary(m)
    assert m.seconds < SECONDS, summary(m)
    print(summary(m))
    report = json.loads(m.stdout)
    assert report["verdict"] == "mismatch"
    assert "limit" in report["reason"], report["reason"]
    return report, summary(m)


def stopped_because(report: dict) -> str:  # type: ignore[type-arg]
    hits = [d for d in report["differences"] if d["field"] == "blob" and d["layer"] == 0]
    assert len(hits) == 1, report["differences"]
    assert hits[0]["got"].startswith("reading stopped at a limit: ")
    return hits[0]["got"]  # type: ignore[no-any-return]


def test_one_gunzip_call_never_yields_more_than_a_chunk() -> None:
    """1 MiB of compressed zeros is about 1 GiB: one call must not hand it over at once."""
    blob = b"".join(bombs.single_member_zeros(b"", 64 * bombs.MIB, b""))
    assert len(blob) < 128 << 10
    sizes = [len(c) for c in gunzip_chunks(io.BytesIO(blob))]
    assert max(sizes) <= 1 << 20
    assert sum(sizes) == 64 * bombs.MIB


BOMBS = {
    # 16 GiB of file content in 16 MB of blob: only the comparison's byte budget stops it.
    "content: 16 GiB of zeros in gzip members": (lambda: bombs.content_bomb(16),
                                                  "decompress to more than"),
    # ONE gzip member of 1 GiB: a single unbounded decompression call would hold all of it.
    "content: one gzip member of 1 GiB": (
        lambda: bombs.single_member_zeros(bombs.header("zeros", 1 << 30), 1 << 30,
                                          bombs.END_OF_ARCHIVE),
        "decompress to more than"),
    # A 128 MiB GNU long name, or PAX path record: tarfile reads either whole into memory.
    "header: 128 MiB GNU long name": (lambda: bombs.long_name_bomb(128 * bombs.MIB, "L"),
                                      "header records"),
    "header: 128 MiB PAX record": (lambda: bombs.long_name_bomb(128 * bombs.MIB, "x"),
                                   "header records"),
    # 10,000 extended headers in a row: tarfile recurses once per header.
    "header: 10,000 chained PAX headers": (lambda: bombs.header_chain_bomb(10_000),
                                           "extended headers"),
    # 400,000 entries (the rebuilt layer has a handful): the index would keep every one.
    "entries: 400,000 empty files": (lambda: bombs.entries_bomb(400_000), "entries"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_layer_is_a_mismatch_that_names_the_limit(
    hello: dict[str, Path], tmp_path: Path, name: str
) -> None:
    make, phrase = BOMBS[name]
    layout = published_with_layer(hello, make(), tmp_path / "bomb")
    report, _ = rebuild_against(hello, layout)
    assert phrase in stopped_because(report), stopped_because(report)
    assert any("reading stopped at a limit" in n for n in report["notes"])


def test_a_name_of_half_a_million_dot_slashes_is_read_in_linear_time(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    """PAX paths of `./` repeated, each just under the header bound: stripping one `./` at a
    time copies the rest each time (quadratic: about 20 s per entry here); they must take a
    moment, and be listed."""
    layout = published_with_layer(
        hello, bombs.dot_slash_bomb(bombs.MIB - 4096, 3), tmp_path / "bomb")
    m = rebuild_measured(hello, layout)
    assert not m.timed_out and m.returncode == 1, summary(m) + "\n" + m.stderr[-3000:]
    assert m.peak_rss_mb < MEMORY_MB and m.seconds < SECONDS, summary(m)
    report = json.loads(m.stdout)
    assert report["verdict"] == "mismatch"
    added = [d for d in report["differences"] if d["change"] == "added" and d["field"] == "entry"]
    assert {d["path"] for d in added} == {"/victim0", "/victim1", "/victim2"}, added
