"""Downloading into the store: retries, timeouts, mirror fallback, and a hash check on every byte.

A pinned input is streamed into the store and only renamed into place when its sha256 matches;
a truncated or stalled transfer is retried, then the next mirror is tried, then the fetch fails
with exit code 3. `file://` URLs (local indexes and mirrors) are read the same way.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

import requests

from imagelock.core import progress
from imagelock.core.digest import CHUNK
from imagelock.core.errors import FetchError, IntegrityError
from imagelock.fetch.store import Store

ATTEMPTS = 3


def _timeout() -> float:
    return float(os.environ.get("IMAGELOCK_HTTP_TIMEOUT", "30"))


def _backoff(attempt: int) -> float:
    return float(os.environ.get("IMAGELOCK_HTTP_BACKOFF", "0.5")) * 2.0**attempt


_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = "imagelock"
    return _session


def _stream(url: str) -> Iterator[bytes]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        with open(urllib.parse.unquote(parsed.path), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        return
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme in {url!r}", hint="use http://, https:// or file://")
    t = _timeout()
    with session().get(url, stream=True, timeout=(t, t)) as r:
        if r.status_code != 200:
            raise _HttpStatus(r.status_code)
        expected = r.headers.get("Content-Length")
        n = 0
        for chunk in r.iter_content(CHUNK):
            n += len(chunk)
            yield chunk
        if expected is not None and r.headers.get("Content-Encoding") is None and n != int(expected):
            raise _Truncated(f"got {n} of {expected} bytes")


class _HttpStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Truncated(Exception):
    pass


def fetch_to_store(
    store: Store,
    urls: Sequence[str],
    *,
    sha256: str | None,
    size: int | None = None,
    what: str,
) -> tuple[str, int]:
    """Put the content behind the first working URL into the store; returns (sha256, size).

    With `sha256` given, an object already in the store is reused without any network access
    and every download is checked against it.
    """
    if sha256 is not None and store.has(sha256):
        return sha256, size if size is not None else store.path_for(sha256).stat().st_size
    if not urls:
        raise FetchError(f"no location to fetch {what} from", hint="configure a mirror (--mirror NAME=URL)")
    problems: list[str] = []
    integrity: IntegrityError | None = None
    for url in urls:
        src = progress.source_of(url)
        for attempt in range(ATTEMPTS):
            try:
                got = store.add_chunks(progress.counted(_stream(url), what, src), sha256=sha256,
                                       size=size, what=what)
                progress.item(what, "downloaded", got[1], src)
                return got
            except IntegrityError as e:
                integrity = e
                problems.append(f"{url}: {e.message}")
                break  # the same server will serve the same wrong bytes: next mirror
            except _HttpStatus as e:
                problems.append(f"{url}: {e}")
                if e.status in (404, 410, 401, 403):
                    break
            except (requests.RequestException, _Truncated, OSError) as e:
                problems.append(f"{url}: attempt {attempt + 1}: {type(e).__name__}: {e}")
            if attempt + 1 < ATTEMPTS:
                time.sleep(_backoff(attempt))
    if integrity is not None and len(urls) == 1:
        raise integrity
    raise FetchError(
        f"could not fetch {what}: " + "; ".join(problems[-6:]),
        hint="check the network and the mirrors (--mirror NAME=URL, IMAGELOCK_MIRROR_<NAME>)",
    )


def fetch_bytes(url: str, *, what: str, limit: int = 512 << 20) -> bytes:
    """A small document (an index, a Release file) fetched into memory with the same retries."""
    problems: list[str] = []
    for attempt in range(ATTEMPTS):
        try:
            buf = bytearray()
            for chunk in progress.counted(_stream(url), what, progress.source_of(url)):
                buf += chunk
                if len(buf) > limit:
                    raise FetchError(f"{what} at {url} is larger than {limit} bytes")
            progress.item(what, "downloaded", len(buf), progress.source_of(url))
            return bytes(buf)
        except _HttpStatus as e:
            problems.append(str(e))
            if e.status in (404, 410, 401, 403):
                break
        except (requests.RequestException, _Truncated, OSError) as e:
            problems.append(f"{type(e).__name__}: {e}")
        if attempt + 1 < ATTEMPTS:
            time.sleep(_backoff(attempt))
    raise FetchError(f"could not fetch {what} from {url}: " + "; ".join(problems))


def local_path(url: str) -> Path | None:
    p = urllib.parse.urlparse(url)
    return Path(urllib.parse.unquote(p.path)) if p.scheme == "file" else None
