"""The machine's apt sources, read to find default mirrors: a suite's mirrors are its entry's URIs.

Both formats apt reads are understood: deb822 `*.sources` files (`Types:`, `URIs:`, `Suites:`,
`Components:`, `Enabled:`) and one-line `*.list` files (`deb [options] URI SUITE COMPONENT...`).
Files are read in apt's order: `sources.list`, then `sources.list.d/` sorted by name. Only binary
(`deb`) entries with http, https or file URIs count: a mirror is somewhere we can download from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

APT_ETC = Path("/etc/apt")
_SCHEMES = ("http://", "https://", "file:")


@dataclass(frozen=True)
class AptEntry:
    """One `deb` entry: mirror base URIs serving some suites and components."""

    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None
    origin: str  # file the entry came from, for messages


def _deb822_paragraphs(text: str) -> list[dict[str, str]]:
    paras: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                paras.append(cur)
            cur, key = {}, None
            continue
        if line[0] in " \t" and key is not None:
            cur[key] += "\n" + line.strip()
            continue
        k, sep, v = line.partition(":")
        if sep:
            key = k.strip().lower()
            cur[key] = v.strip()
    if cur:
        paras.append(cur)
    return paras


def parse_sources_file(text: str, origin: str = "") -> list[AptEntry]:
    """Entries of a deb822 `.sources` file."""
    out: list[AptEntry] = []
    for p in _deb822_paragraphs(text):
        if p.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in p.get("types", "").split():
            continue
        uris = tuple(u for u in p.get("uris", "").split() if u.startswith(_SCHEMES))
        suites = tuple(p.get("suites", "").split())
        if uris and suites:
            out.append(
                AptEntry(uris, suites, tuple(p.get("components", "").split()),
                         p.get("signed-by") or None, origin)
            )
    return out


_OPTIONS = re.compile(r"^\[([^\]]*)\]\s*")


def parse_list_file(text: str, origin: str = "") -> list[AptEntry]:
    """Entries of a one-line `.list` file."""
    out: list[AptEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind != "deb":
            continue
        rest = rest.strip()
        signed_by = None
        m = _OPTIONS.match(rest)
        if m:
            for opt in m.group(1).split():
                k, _, v = opt.partition("=")
                if k == "signed-by":
                    signed_by = v
            rest = rest[m.end():]
        words = rest.split()
        if len(words) < 2 or not words[0].startswith(_SCHEMES):
            continue
        out.append(AptEntry((words[0],), (words[1],), tuple(words[2:]), signed_by, origin))
    return out


def machine_entries(etc: Path = APT_ETC) -> list[AptEntry]:
    """Every binary entry of the machine's apt sources, in the order apt reads them."""
    files: list[Path] = []
    if (etc / "sources.list").is_file():
        files.append(etc / "sources.list")
    parts = etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    out: list[AptEntry] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        out += parse_sources_file(text, str(f)) if f.suffix == ".sources" else parse_list_file(text, str(f))
    return out


def machine_mirrors(suite: str, etc: Path = APT_ETC) -> list[str]:
    """Mirror base URIs of the entries listing `suite`, in order, without duplicates."""
    out: list[str] = []
    for e in machine_entries(etc):
        if suite in e.suites:
            out += [u.rstrip("/") for u in e.uris if u.rstrip("/") not in out]
    return out
