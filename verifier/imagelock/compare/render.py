"""A comparison report as text: the verdict and identities first, then each difference in a line a person can read."""

from __future__ import annotations

from imagelock.compare.diffoscope import render_diffoscope
from imagelock.formats.report import (
    Difference,
    Report,
)


def describe(d: Difference) -> str:
    """One difference in one line: `[category] where: what`."""
    if d.scope == "layer":
        where = f"layer {d.layer}" + (f" ({d.layer_name})" if d.layer_name else "")
        if d.path:
            where += f" {d.path}"
    else:
        where = d.scope
    fld = "" if d.field == "entry" else f"{d.field} "
    if d.change == "added":
        what = f"{fld}added: {d.got}"
    elif d.change == "removed":
        what = f"{fld}removed: {d.expected}"
    elif d.change == "moved":
        what = f"{fld}moved: {d.expected} -> {d.got}"
    else:
        what = f"{d.field}: {d.expected} -> {d.got}"
    return f"[{d.category}] {where}: {what}"


def render(report: Report, verbose: bool = False) -> str:
    """The report for a terminal: verdict and identities, a summary, then the detail
    (non-derived differences, the first HUMAN_DETAIL of them unless `verbose`)."""
    lines = [f"{HEADLINES[report.verdict]}: {report.reason}"]
    for side in (report.rebuilt, report.published, report.lock):
        if side is not None:
            lines.append(f"  {side.side:<9} manifest {side.manifest_digest}")
            lines.append(f"  {'':<9} config   {side.config_digest}")
    if report.error is not None:
        lines.append(f"error: {report.error.message}")
        if report.error.hint:
            lines.append(f"  hint: {report.error.hint}")
    s = report.summary
    if s.total:
        if report.verdict != "mismatch":  # a mismatch's reason already counts them
            lines.append(f"{s.total} difference{'s' if s.total != 1 else ''}: "
                         + ", ".join(f"{c} {n}" for c, n in s.by_category.items()))
        lines.append(f"differences ({report.expected_side} -> {report.got_side}):")
        shown = [d for d in report.differences if verbose or not d.derived]
        limit = len(shown) if verbose else HUMAN_DETAIL
        for d in shown[:limit]:
            lines.append("  " + describe(d) + (f"  {DERIVED}" if d.derived else ""))
        hidden = len(shown) - limit + (s.omitted if not verbose else 0)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more: use --verbose or --json to see them all")
        if verbose and s.omitted:
            lines.append(f"  ... and {s.omitted} more not kept in the report (size limit)")
    for note in report.notes:
        lines.append(f"note: {note}")
    if report.diffoscope is not None:
        lines += render_diffoscope(report.diffoscope)
    return "\n".join(lines)


HUMAN_DETAIL = 20  # differences printed without --verbose


DERIVED = "(follows from the differences below)"


HEADLINES = {"reproduced": "REPRODUCED", "reproduced-content": "REPRODUCED (content)",
             "mismatch": "MISMATCH", "error": "ERROR"}
