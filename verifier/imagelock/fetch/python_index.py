"""Finding a pinned wheel on the configured Python indexes and fetching it into the store.

A wheel pin names a project page and a file name (`pypi:six/six-1.17.0-py2.py3-none-any.whl`),
never a host. At fetch time the file is looked up by name on each index of the source (PEP 503
HTML or PEP 691 JSON simple pages; `file://` index directories too) and then in pip's find-links
(local directories or HTML pages), in that order, and the first copy whose bytes hash to the pin
is taken. Which indexes: `--mirror NAME=URL` > IMAGELOCK_MIRROR_<NAME> > the spec's source >
pip's own configuration on this machine, read through pip itself so every place pip reads
(environment, user, site and global files) counts exactly as it does for pip.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from imagelock.core.errors import FetchError, InputError, ToolUnavailable
from imagelock.fetch.http import fetch_bytes, fetch_to_store, local_path
from imagelock.fetch.mirrors import env_name, join, mirrors_for, split_location
from imagelock.fetch.store import Store
from imagelock.formats.python import PythonIndexSource, WheelPin

# Read pip's effective options for `pip install` the way pip does (config files, sections, env).
_PIP_OPTIONS = """
import json
from pip._internal.commands import create_command
opts, _ = create_command("install").parse_args([])
print(json.dumps({"index_url": opts.index_url, "extra_index_urls": opts.extra_index_urls,
                  "find_links": opts.find_links, "no_index": opts.no_index}))
"""


@dataclass(frozen=True)
class PipConfig:
    """The indexes and find-links pip uses on this machine."""

    index_urls: tuple[str, ...]
    find_links: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def pip_config(python: str = sys.executable) -> PipConfig:
    """pip's configured index URLs (index-url, then extra-index-urls) and find-links."""
    try:
        r = subprocess.run([python, "-c", _PIP_OPTIONS], check=False, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise ToolUnavailable(
                f"could not read pip's configuration with {python}: {r.stderr.strip()[-500:]}",
                hint="install pip into the interpreter that runs imagelock",
            )
        data = json.loads(r.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        raise ToolUnavailable(f"could not read pip's configuration with {python}: {e}",
                              hint="install pip into the interpreter that runs imagelock") from None
    indexes = [] if data["no_index"] else [data["index_url"], *data["extra_index_urls"]]
    return PipConfig(tuple(u for u in indexes if u), tuple(data["find_links"] or ()))


@dataclass(frozen=True)
class IndexFile:
    """One file a simple page (or a find-links location) lists for a project."""

    filename: str
    url: str
    sha256: str | None = None
    requires_python: str | None = None
    yanked: bool = False


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            d = dict(attrs)
            if d.get("href"):
                self.found.append((d["href"] or "", d))


def parse_simple_page(data: bytes, base_url: str) -> list[IndexFile]:
    """Files listed on a PEP 503 (HTML) or PEP 691 (JSON) project page; URLs made absolute."""
    text = data.decode("utf-8", "replace")
    out: list[IndexFile] = []
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return []
        for f in doc.get("files", []):
            out.append(IndexFile(
                filename=f["filename"],
                url=urllib.parse.urljoin(base_url, f["url"]),
                sha256=(f.get("hashes") or {}).get("sha256"),
                requires_python=f.get("requires-python"),
                yanked=bool(f.get("yanked")),
            ))
        return out
    parser = _Anchors()
    parser.feed(text)
    for href, attrs in parser.found:
        url = urllib.parse.urljoin(base_url, href)
        parsed = urllib.parse.urlparse(url)
        name = urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])
        if not name:
            continue
        frag = urllib.parse.parse_qs(parsed.fragment)
        out.append(IndexFile(
            filename=name,
            url=parsed._replace(fragment="").geturl(),
            sha256=frag["sha256"][0] if frag.get("sha256") else None,
            requires_python=attrs.get("data-requires-python"),
            yanked="data-yanked" in attrs,
        ))
    return out


def file_project(filename: str) -> str | None:
    """The normalised project a wheel or sdist file name belongs to (None if it is neither)."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


@dataclass
class Indexes:
    """The indexes and find-links one Python source is read from, with pages cached per run."""

    index_urls: list[str]
    find_links: list[str]
    problems: list[str] = field(default_factory=list)
    _pages: dict[str, list[IndexFile]] = field(default_factory=dict)

    def _read(self, url: str, what: str) -> list[IndexFile]:
        """A page's files; a page that is not there lists nothing (a project may live elsewhere)."""
        if url in self._pages:
            return self._pages[url]
        files: list[IndexFile] = []
        local = local_path(url)
        try:
            if local is not None:
                page = local / "index.html" if local.is_dir() else local
                if page.is_file():
                    files = parse_simple_page(page.read_bytes(), url)
            else:
                files = parse_simple_page(fetch_bytes(url, what=what, limit=64 << 20), url)
        except FetchError as e:
            if "HTTP 404" not in e.message:
                self.problems.append(e.message)
        except OSError as e:
            self.problems.append(f"{what}: {e}")
        self._pages[url] = files
        return files

    def _find_links(self, project: str, filename: str | None) -> list[IndexFile]:
        out: list[IndexFile] = []
        for fl in self.find_links:
            local = local_path(fl) if "://" in fl else Path(fl)
            if local is not None and local.is_dir():
                names = [filename] if filename else sorted(os.listdir(local))
                for n in names:
                    p = local / n
                    if p.is_file() and file_project(n) == project:
                        out.append(IndexFile(n, p.absolute().as_uri()))
            elif local is None:
                out += [f for f in self._read(fl, f"find-links page {fl}")
                        if file_project(f.filename) == project
                        and (filename is None or f.filename == filename)]
        return out

    def files(self, project: str) -> list[IndexFile]:
        """Every file of a project on the indexes, then in find-links, in configuration order."""
        project = canonicalize_name(project)
        out: list[IndexFile] = []
        for base in self.index_urls:
            out += self._read(join(base, project) + "/", f"index page of {project}")
        return out + self._find_links(project, None)

    def wheel_urls(self, pin: WheelPin) -> list[str]:
        """URLs that list the pinned file; copies whose listed sha256 differs are left out."""
        _, rel = split_location(pin.location)
        project, filename = rel.split("/", 1)
        urls: list[str] = []
        for base in self.index_urls:
            for f in self._read(join(base, project) + "/", f"index page of {project}"):
                if f.filename == filename and f.sha256 in (None, pin.sha256) and f.url not in urls:
                    urls.append(f.url)
        urls += [f.url for f in self._find_links(project, filename) if f.url not in urls]
        return urls


def indexes_for(
    source: str,
    sources: Mapping[str, object] | None = None,
    mirrors_cli: Mapping[str, list[str]] | None = None,
) -> Indexes:
    """The indexes of a named Python source: CLI > env > spec > pip's configuration."""
    src = (sources or {}).get(source)
    if src is not None and not isinstance(src, PythonIndexSource):
        raise InputError(f"source {source!r} is not a `python` source", field="contents.python.source",
                         hint="name a source with kind: python, or leave `source` out for pip's "
                         "configuration")
    cfg = pip_config()
    spec = src.mirrors if isinstance(src, PythonIndexSource) else []
    return Indexes(mirrors_for(source, cli=mirrors_cli, spec=spec, machine=cfg.index_urls),
                   list(cfg.find_links))


def wheel_urls(pin: WheelPin, indexes: Indexes) -> list[str]:
    """Candidate URLs of a pinned wheel, in configuration order (see `Indexes.wheel_urls`)."""
    return indexes.wheel_urls(pin)


def wheel_sources(pin: WheelPin, indexes: Indexes) -> list[str]:
    """Where a pinned wheel can be downloaded from; FetchError (exit 3) when nowhere."""
    urls = indexes.wheel_urls(pin)
    if not urls:
        where = len(indexes.index_urls) + len(indexes.find_links)
        raise FetchError(
            f"wheel {pin.filename} ({pin.location}) is on none of the {where} configured indexes "
            "and find-links"
            + ("; " + "; ".join(indexes.problems[-3:]) if indexes.problems else ""),
            hint=f"configure an index that holds it (pip config, --mirror {pin.source}=URL, "
            f"{env_name(pin.source)}) or put the file in a find-links directory",
        )
    return urls


def fetch_wheel(pin: WheelPin, store: Store, indexes: Indexes) -> Path:
    """The store path of a pinned wheel, downloaded if needed; every byte is hash-checked."""
    what = f"wheel {pin.filename}"
    if store.has(pin.sha256):
        return store.verify(pin.sha256, pin.size, what)
    fetch_to_store(store, wheel_sources(pin, indexes), sha256=pin.sha256, size=pin.size, what=what)
    return store.path_for(pin.sha256)
