"""A comparison report as one self-contained HTML page, for reviewers who would rather read a
page than scroll a terminal (`imagelock rebuild --report-html FILE`).

The page is built from hostile input: every name, value and line of text comes from an image
someone else made. Everything is escaped, control characters are shown as `\\xNN`, and the page
forbids every script and every fetch (a Content-Security-Policy of `default-src 'none'`), so a
slip in escaping still could not run anything. Styling is inline; nothing is loaded from
elsewhere. The same report and images give the same bytes: no clock, no host, no random.

Small text files whose content differs get an inline diff. Their bytes are read from the
layer blobs again, streamed, and used only once the blob's digest is proven; a file is shown
only when it is valid UTF-8 of at most TEXT_LIMIT bytes, and the diff is cut at DIFF_LINES.
"""

from __future__ import annotations

import difflib
import html
import os
import re
import tarfile
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from imagelock.compare.blobs import DECOMPRESSION_ERRORS, BlobStream, UnverifiableBlob, check_stored
from imagelock.compare.entries import normalise
from imagelock.compare.render import HEADLINES
from imagelock.core.atomic import atomic_file
from imagelock.formats.report import CATEGORIES, Difference, Report, SideIdentity
from imagelock.oci.image import Blob, Image

TEXT_LIMIT = 64 << 10  # bytes of one file that may be diffed inline
TEXT_FILES = 20  # files diffed inline at most, in report order
DIFF_LINES = 300  # lines of one diff shown at most
LINE_CHARS = 400  # characters of one shown line at most


@dataclass(frozen=True)
class TextDiff:
    """An inline diff of one file: unified diff lines, or why there is none."""

    layer: int
    path: str
    lines: tuple[str, ...] = ()
    why_not: str | None = None


def write_report_html(report: Report, out: Path, *, rebuilt: Image | None = None,
                      published: Image | None = None, title: str | None = None) -> Path:
    """Write the page for `report` to `out` (atomically); with both images, small text files
    that differ get inline diffs."""
    diffs = text_diffs(report, rebuilt, published) if rebuilt and published else []
    page = render_html(report, diffs=diffs, title=title, links_from=out.absolute().parent)
    with atomic_file(out) as tmp:
        tmp.write_bytes(page.encode("utf-8"))
    return out


# --- inline text diffs -----------------------------------------------------------------------

def text_diffs(report: Report, rebuilt: Image, published: Image) -> list[TextDiff]:
    """Diffs of the first TEXT_FILES files whose content changed, both sides read from their
    verified layer blobs (expected side first, as the report orients them)."""
    wanted: dict[int, list[str]] = defaultdict(list)
    count = 0
    for d in report.differences:
        if (d.scope == "layer" and d.field == "content" and d.change == "changed" and d.path
                and d.layer is not None and d.path not in wanted[d.layer] and count < TEXT_FILES):
            wanted[d.layer].append(d.path)
            count += 1
    sides = (rebuilt, published) if report.expected_side == "rebuilt" else (published, rebuilt)
    out: list[TextDiff] = []
    for layer, paths in sorted(wanted.items()):
        if layer >= len(sides[0].layers) or layer >= len(sides[1].layers):
            continue
        a = _small_files(sides[0].layers[layer], set(paths), report.expected_side)
        b = _small_files(sides[1].layers[layer], set(paths), report.got_side)
        for path in paths:
            out.append(_diff(layer, path, a, b, report.expected_side, report.got_side))
    return out


def _small_files(blob: Blob, paths: set[str], side: str) -> dict[str, bytes | str]:
    """The regular files of `blob` at `paths`: their bytes when small, else why not. Empty
    when the blob cannot be read or is not the bytes its digest names (nothing unchecked is
    ever shown)."""
    found: dict[str, bytes | str] = {}
    stream = BlobStream(blob)
    try:
        tf = tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]  # noqa: SIM115
                          errors="surrogateescape")
        while (m := tf.next()) is not None:
            path = normalise(m.name)
            if path in paths and path not in found:
                if not m.isreg():
                    found[path] = "not a regular file"
                elif m.size > TEXT_LIMIT:
                    found[path] = f"larger than {TEXT_LIMIT // 1024} KiB"
                else:
                    f = tf.extractfile(m)
                    found[path] = f.read(TEXT_LIMIT + 1) if f is not None else b""
            tf.members.clear()
        stream.finish()
        check_stored(stream, blob, side)
    except (*DECOMPRESSION_ERRORS, tarfile.TarError, UnverifiableBlob, OSError):
        return {}
    finally:
        stream.close()
    return found


def _text(data: bytes | str | None) -> str | None:
    """The file as text, or None when it is not a small UTF-8 text file."""
    if not isinstance(data, bytes) or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _diff(layer: int, path: str, a: Mapping[str, bytes | str], b: Mapping[str, bytes | str],
          a_side: str, b_side: str) -> TextDiff:
    for side, got in ((a_side, a.get(path)), (b_side, b.get(path))):
        if got is None:
            return TextDiff(layer, path, why_not=f"could not be read from the {side} image")
        if isinstance(got, str):
            return TextDiff(layer, path, why_not=f"{side}: {got}")
    ta, tb = _text(a[path]), _text(b[path])
    if ta is None or tb is None:
        return TextDiff(layer, path, why_not="not UTF-8 text (see diffoscope for binaries)")
    lines = list(difflib.unified_diff(ta.splitlines(), tb.splitlines(), a_side, b_side,
                                      lineterm="", n=3))
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... {len(lines) - DIFF_LINES} more lines"]
    return TextDiff(layer, path, tuple(lines))


# --- the page --------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def esc(value: object) -> str:
    """Text from the image, safe as HTML text or a quoted attribute value: markup escaped,
    control and bidirectional-override characters shown as escapes, length bounded."""
    text = "" if value is None else str(value)
    if len(text) > LINE_CHARS * 4:
        text = text[: LINE_CHARS * 4] + f"... ({len(text)} characters)"
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)
    return html.escape(text, quote=True)


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:16px 0 6px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
.v-reproduced,.v-reproduced-content{background:#1a7f37}.v-mismatch{background:#cf222e}
.v-error{background:#9a6700}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}table.narrow{width:auto}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right}
code,.mono,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
td.mono{overflow-wrap:anywhere}td.nw{white-space:nowrap}
details{margin:4px 0 12px}summary{color:#6e7781;cursor:pointer}
.cat{font-weight:600;text-transform:uppercase;font-size:12px;letter-spacing:.04em}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:8px;overflow-x:auto;margin:4px 0 12px}
.add,.del{display:inline-block;width:100%}.add{background:#dafbe1}.del{background:#ffebe9}
.hunk{color:#8250df}.muted{color:#6e7781}
"""


def render_html(report: Report, *, diffs: Iterable[TextDiff] = (), title: str | None = None,
                links_from: Path | None = None) -> str:
    """The page as text: summary first, then identities, document differences, one section
    per layer grouped by class, inline text diffs, and diffoscope's outputs."""
    headline = HEADLINES[report.verdict]
    name = f"{headline}: {title}" if title else headline
    p: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No script, frame, font, image or connection may load: the page is inert.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>imagelock rebuild: {esc(name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f'<h1>imagelock rebuild{": " + esc(title) if title else ""}</h1>',
        f'<p><span class="verdict v-{esc(report.verdict)}" id="verdict">{esc(headline)}</span> '
        f'<span id="reason">{esc(report.reason)}</span></p>',
    ]
    by_layer: dict[int | None, list[Difference]] = defaultdict(list)
    for d in report.differences:
        by_layer[d.layer if d.scope == "layer" else None].append(d)
    first_of: dict[str, str] = {}  # class -> the id of the first table that has it
    for key in sorted(by_layer, key=lambda k: -1 if k is None else k):
        for d in by_layer[key]:
            if not d.derived:
                first_of.setdefault(d.category, _anchor(key, d.category))
    p += _summary(report, first_of)
    p += _identities(report)
    diffs_by_layer: dict[int, list[TextDiff]] = defaultdict(list)
    for t in diffs:
        diffs_by_layer[t.layer].append(t)
    if by_layer.get(None):
        p.append("<h2>Image documents (index, manifest, config)</h2>")
        p += _grouped(by_layer[None], None)
    names = {li.index: li.name for li in report.rebuilt.layers}
    for layer in sorted(k for k in by_layer if k is not None):
        label = f"Layer {layer}" + (f" ({names[layer]})" if names.get(layer) else "")
        p.append(f'<h2 id="layer-{layer}">{esc(label)}</h2>')
        p += _grouped(by_layer[layer], layer)
        for t in diffs_by_layer.get(layer, []):
            p += _text_diff(t)
    if report.diffoscope is not None:
        p += _diffoscope(report, links_from)
    p.append('<p class="muted">Written by imagelock from the comparison report '
             "(<code>rebuild --json</code> has every field).</p>")
    p.append("</body></html>")
    return "\n".join(p) + "\n"


def _anchor(layer: int | None, category: str) -> str:
    return f"{'documents' if layer is None else f'layer-{layer}'}-{category}"


def _summary(report: Report, first_of: Mapping[str, str]) -> list[str]:
    s = report.summary
    p = ["<h2>Summary</h2>"]
    if report.error is not None:
        p.append(f"<p><b>error:</b> {esc(report.error.message)}</p>")
        if report.error.hint:
            p.append(f"<p><b>hint:</b> {esc(report.error.hint)}</p>")
    p.append(f"<p>{s.total} difference{'s' if s.total != 1 else ''} "
             f"({esc(report.expected_side)} &#8594; {esc(report.got_side)})"
             + (f"; {s.omitted} more not kept in the report (size limit)" if s.omitted else "")
             + "</p>")
    if s.by_category:
        p.append('<table class="narrow"><tr><th>class</th><th>differences</th></tr>')
        for cat in CATEGORIES:
            if cat in s.by_category:
                name = (f'<a href="#{esc(first_of[cat])}">{esc(cat)}</a>' if cat in first_of
                        else esc(cat))
                p.append(f'<tr><td>{name}</td><td class="num">{s.by_category[cat]}</td></tr>')
        p.append("</table>")
    for note in report.notes:
        p.append(f'<p class="muted">note: {esc(note)}</p>')
    return p


def _identities(report: Report) -> list[str]:
    p = ["<h2>Identities</h2>", "<table><tr><th>side</th><th>platform</th>"
         "<th>manifest digest (distribution)</th><th>config digest (content)</th></tr>"]
    sides: list[SideIdentity] = [s for s in (report.rebuilt, report.published, report.lock)
                                 if s is not None]
    for s in sides:
        p.append(f"<tr><td>{esc(s.side)}</td><td>{esc(s.platform or '')}</td>"
                 f'<td class="mono">{esc(s.manifest_digest)}</td>'
                 f'<td class="mono">{esc(s.config_digest)}</td></tr>')
    p.append("</table>")
    return p


def _grouped(diffs: list[Difference], layer: int | None) -> list[str]:
    """One table per class, in the report's class order, rows in walk order (a layer's rows
    with the path); differences that only follow from others fold away below them."""
    p: list[str] = []
    real = [d for d in diffs if not d.derived]
    for cat in CATEGORIES:
        rows = [d for d in real if d.category == cat]
        if rows:
            p.append(f'<h3 id="{esc(_anchor(layer, cat))}" class="cat">{esc(cat)} ({len(rows)})'
                     "</h3>")
            p += _table(rows, layer is not None)
    derived = [d for d in diffs if d.derived]
    if derived:
        p.append(f"<details><summary>{len(derived)} derived difference"
                 f"{'s' if len(derived) != 1 else ''} (they follow from the others)</summary>")
        p += _table(derived, layer is not None, with_class=True)
        p.append("</details>")
    return p


def _table(rows: list[Difference], with_path: bool, with_class: bool = False) -> list[str]:
    p = ["<table><tr>" + ("<th>class</th>" if with_class else "")
         + ("<th>path</th>" if with_path else "")
         + "<th>field</th><th>change</th><th>expected</th><th>got</th></tr>"]
    for d in rows:
        p.append("<tr>" + (f"<td>{esc(d.category)}</td>" if with_class else "")
                  + (f'<td class="mono">{esc(d.path)}</td>' if with_path else "")
                  + f'<td class="mono nw">{esc(_short(d.field))}</td><td class="nw">{esc(d.change)}</td>'
                  f'<td class="mono">{esc(d.expected)}</td>'
                  f'<td class="mono">{esc(d.got)}</td></tr>')
    p.append("</table>")
    return p


def _short(text: str, limit: int = 60) -> str:
    """A field name kept on one line (a PAX key can be anything): cut, saying so."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text_diff(t: TextDiff) -> list[str]:
    head = f'<h3>diff of <span class="mono">{esc(t.path)}</span></h3>'
    if t.why_not is not None:
        return [head, f'<p class="muted">no inline diff: {esc(t.why_not)}</p>']
    body = []
    for line in t.lines:
        shown = esc(line[:LINE_CHARS] + ("..." if len(line) > LINE_CHARS else ""))
        if line.startswith(("+++", "---")):
            body.append(f"<b>{shown}</b>")
        elif line.startswith("@@"):
            body.append(f'<span class="hunk">{shown}</span>')
        elif line.startswith("+"):
            body.append(f'<span class="add">{shown}</span>')
        elif line.startswith("-"):
            body.append(f'<span class="del">{shown}</span>')
        else:
            body.append(shown)
    return [head, "<pre>" + "\n".join(body) + "</pre>"]


def _diffoscope(report: Report, links_from: Path | None) -> list[str]:
    res = report.diffoscope
    assert res is not None
    p = ["<h2>diffoscope</h2>"]
    if not res.available or res.note:
        return [*p, f"<p>{esc(res.note)}</p>"]
    p.append(f"<p>{len(res.pairs)} file(s) compared; outputs in "
             f'<span class="mono">{esc(res.out_dir)}</span></p>')
    for pair in res.pairs:
        link = esc(pair.output)
        if pair.output is not None:
            href = _href(Path(pair.output), links_from)
            link = f'<a href="{esc(href)}">{esc(pair.output)}</a>'
        p.append(f'<h3>layer {pair.layer} <span class="mono">{esc(pair.path)}</span></h3>')
        p.append(f"<p>{link} (diffoscope exit code {esc(pair.exit_code)})</p>")
        if pair.excerpt:
            p.append(f"<pre>{esc(pair.excerpt)}</pre>")
    return p


def _href(target: Path, links_from: Path | None) -> str:
    """A relative link from the page to `target`, every character that could start a scheme
    or leave the attribute percent-encoded."""
    rel = os.path.relpath(target.absolute(), links_from) if links_from else str(target)
    return urllib.parse.quote(Path(rel).as_posix(), safe="/._-")
