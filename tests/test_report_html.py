"""The HTML page of a comparison, without a browser: what it escapes and what it never links.
(tests/test_rebuild.py renders real pages in Chromium.)"""

from __future__ import annotations

import re
from pathlib import Path

from imagelock.compare.html import render_html, write_report_html
from imagelock.formats.report import (
    Difference,
    DiffoscopePair,
    DiffoscopeResult,
    Report,
    SideIdentity,
    Summary,
)

DIGEST = "sha256:" + "ab" * 32


def _report(path: str, output: str) -> Report:
    side = SideIdentity(side="rebuilt", platform="linux/amd64", manifest_digest=DIGEST,
                        config_digest=DIGEST, layers=[])
    return Report(
        verdict="mismatch", reason="the published image differs", expected_side="rebuilt",
        got_side="published", rebuilt=side, published=side.model_copy(update={"side": "published"}),
        summary=Summary(total=1, by_category={"content": 1}, first=[path]),
        differences=[Difference(category="content", scope="layer", layer=0, path=path,
                                field="entry", change="added", got="file, 2 bytes")],
        diffoscope=DiffoscopeResult(available=True, out_dir="d", pairs=[DiffoscopePair(
            layer=0, path=path, expected_file="a", got_file="b", output=output,
            excerpt=f"--- a{path}\n+++ b{path}")]),
    )


def test_names_from_the_image_cannot_make_markup_escapes_or_links(tmp_path: Path) -> None:
    hostile = "/x/<b onmouseover=alert(1)>\x1b[2J\u202eevil\"'&"
    page = render_html(_report(hostile, str(tmp_path / "javascript:alert(1)")),
                       links_from=tmp_path)
    body = page.split("</style>", 1)[1]
    assert "<b onmouseover" not in body and "&lt;b onmouseover=alert(1)&gt;" in body
    assert "\x1b" not in page and "\\x1b[2J" in body  # a terminal escape is shown, not sent
    assert "\u202e" not in page and "\\u202e" in body  # no right-to-left override of the text
    assert "&quot;&#x27;&amp;" in body
    hrefs = re.findall(r'href="([^"]*)"', body)
    links = [h for h in hrefs if not h.startswith("#")]
    assert links == ["javascript%3Aalert%281%29"], links  # a relative file name, not a scheme
    # No script, and nothing may load: the page says so to the browser too.
    assert "<script" not in page.lower()
    assert "default-src 'none'" in page


def test_the_same_report_writes_the_same_bytes(tmp_path: Path) -> None:
    report = _report("/etc/os-release", str(tmp_path / "d" / "x.txt"))
    a = write_report_html(report, tmp_path / "a.html", title="app:1 (linux/amd64)")
    b = write_report_html(report, tmp_path / "b.html", title="app:1 (linux/amd64)")
    assert a.read_bytes() == b.read_bytes()
    assert 'href="d/x.txt"' in a.read_text()  # relative to the page, so the pair can move
