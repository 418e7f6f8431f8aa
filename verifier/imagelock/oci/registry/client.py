"""The OCI distribution API over HTTP: one client per registry host, with its authentication.

This module speaks the protocol (manifests, blobs, uploads, referrers) and nothing else; pulling
and pushing images is `registry.py`'s job. Every request that can carry a large body streams it;
every blob downloaded is hashed on its way into a temporary file and renamed into place only
when it matches (the store does that); a manifest larger than a fixed limit is refused before it
reaches memory.

Plain HTTP is used only for loopback hosts or when the caller says `insecure`; then HTTPS is
tried first and HTTP after it fails. Authentication follows the registry's challenge: anonymous,
bearer tokens (`WWW-Authenticate: Bearer realm=...,service=...,scope=...`, with the user's
credentials when there are some) or basic.

A request that fails with a connection error, 429 or a 5xx is tried again after a pause
(doubling from $IMAGELOCK_HTTP_BACKOFF, 0.5 s, or what the registry's Retry-After asks), at most
ATTEMPTS times and only while the pauses stay within $IMAGELOCK_HTTP_RETRY_SECONDS (60 s). A
chunk of an upload (PATCH) is not resent: the registry may have kept part of it.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Self

import requests
import urllib3

from imagelock import __version__
from imagelock.core import progress
from imagelock.core.digest import CHUNK
from imagelock.core.errors import (
    FetchError,
    ImagelockError,
    InputError,
    IntegrityError,
    UnsafeContentError,
)
from imagelock.fetch.store import Store
from imagelock.formats.oci import MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST
from imagelock.oci.blobio import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_DOCUMENT,
    check_document_size,
    digest_hex,
    hash_digest,
    parse_json,
)
from imagelock.oci.reference import Reference, parse_reference
from imagelock.oci.registry.auth import Credentials, find_credentials, parse_challenge

ACCEPT_MANIFESTS = f"{MT_MANIFEST}, {MT_INDEX}, {MT_DOCKER_MANIFEST}, {MT_DOCKER_LIST}"
LOGIN_HINT = ("log in with `podman login --authfile FILE HOST` (or skopeo login) and point "
              "$REGISTRY_AUTH_FILE at FILE")

Body = bytes | Callable[[], Any] | None
MAX_TAGS = 10_000
"""Most tags read from one repository (`imagelock watch REPO`): more is a repository to split
into several sources, or to watch through a file of references."""
TAGS_PAGE = 1000


def _timeout() -> float:
    return float(os.environ.get("IMAGELOCK_HTTP_TIMEOUT", "30"))


ATTEMPTS = 6  # tries of one request at most
RETRY_STATUSES = (429, 500, 502, 503, 504)


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Retry:
    """When to try a request again: after a pause, while attempts and the time budget last."""

    def __init__(self) -> None:
        self.budget = float(os.environ.get("IMAGELOCK_HTTP_RETRY_SECONDS", "60"))
        self.base = float(os.environ.get("IMAGELOCK_HTTP_BACKOFF", "0.5"))
        self.start = time.monotonic()
        self.attempts = 1
        self.why_not = ""

    def again(self, asked: str | None = None) -> bool:
        """Pause before the next attempt and return True; False (with `why_not` set) when no
        attempt is left or the pause would pass the budget."""
        if self.attempts >= ATTEMPTS:
            self.why_not = f"after {self.attempts} attempts"
            return False
        pause = self.base * 2.0 ** (self.attempts - 1)
        wanted = retry_after(asked)
        if wanted is not None:
            pause = max(pause, wanted)
        spent = time.monotonic() - self.start
        if spent + pause > self.budget:
            self.why_not = (f"after {self.attempts} attempts in {spent:.1f} s" +
                            (f" (the registry asks to wait {wanted:.0f} s more)" if wanted else "")
                            + f"; the retry budget is {self.budget:.0f} s "
                            "($IMAGELOCK_HTTP_RETRY_SECONDS)")
            return False
        time.sleep(pause)
        self.attempts += 1
        return True


def registry_errors(r: requests.Response) -> str:
    """The registry's own explanation (`{"errors": [{code, message}]}`), or the start of the body."""
    try:
        body = next(r.iter_content(65536), b"")
    except (requests.RequestException, RuntimeError):
        body = b""
    try:
        errs = json.loads(body)["errors"]
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) or f"HTTP {r.status_code}"
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body.decode("utf-8", "replace").strip().replace("\n", " ")[:200]
        return f"HTTP {r.status_code}" + (f": {text}" if text else "")


class UploadBody:
    """A blob as a request body: streamed from its opener, with a length so no chunked encoding
    is needed."""

    def __init__(self, opener: Callable[[], BinaryIO], size: int) -> None:
        self._f = opener()
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(CHUNK if n is None or n < 0 else max(n, CHUNK))
        if not data:
            self._f.read()  # reach the end, so a verifying stream checks its digest
        return data

    def close(self) -> None:
        self._f.close()

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data


class RegistryClient:
    """A registry host: base URL, session and credentials shared by every request to it."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        plain_http: bool | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.host = host
        self.insecure = insecure
        probe = Reference(host, "x")
        self.plain_http = plain_http if plain_http is not None else (insecure or probe.is_loopback)
        self._explicit = credentials
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"imagelock/{__version__}"
        self._base: str | None = None
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic: Credentials | None = None
        self._found: dict[str, Credentials | None] = {}

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection and authentication ------------------------------------------------------

    def base_url(self) -> str:
        """`https://HOST`, or `http://HOST` where plain HTTP is allowed and HTTPS does not answer."""
        if self._base is not None:
            return self._base
        problems = []
        schemes = ("https", "http") if self.plain_http else ("https",)
        for scheme in schemes:
            url = f"{scheme}://{self.host}/v2/"
            retry = Retry()
            while True:
                try:
                    r = self._session.get(url, timeout=_timeout(), verify=not self.insecure,
                                          allow_redirects=False)
                except requests.RequestException as e:
                    # No TLS where plain HTTP is allowed: try HTTP at once, not again.
                    if scheme != schemes[-1] or not retry.again():
                        problems.append(f"{url}: {type(e).__name__}" + (
                            f" {retry.why_not}" if retry.why_not else ""))
                        break
                    continue
                r.close()
                if r.status_code in RETRY_STATUSES and retry.again(r.headers.get("Retry-After")):
                    continue
                if r.status_code in (200, 401):
                    self._base = f"{scheme}://{self.host}"
                    return self._base
                problems.append(f"{url}: HTTP {r.status_code}" + (
                    f" {retry.why_not}" if retry.why_not else ""))
                break
        hint = "check the host and port, and that a registry (OCI distribution API) runs there"
        if not self.plain_http:
            hint += "; plain HTTP is used only for loopback hosts or with --insecure"
        raise FetchError(f"cannot reach a registry at {self.host}: " + "; ".join(problems), hint=hint)

    def _credentials(self, repository: str) -> Credentials | None:
        if self._explicit is not None:
            return self._explicit
        if repository not in self._found:  # a credential helper runs once per repository
            self._found[repository] = find_credentials(self.host, repository)
        return self._found[repository]

    def _auth_headers(self, url: str, scope: str) -> dict[str, str]:
        if urllib.parse.urlsplit(url).netloc != self.host:
            return {}  # never hand our credentials to a host we were redirected to
        token = self._tokens.get(scope) or self._tokens.get(scope.replace(":pull", ":pull,push"))
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic is not None:
            return {"Authorization": _basic_header(self._basic)}
        return {}

    def _authenticate(self, challenge: str, repository: str, scope: str) -> Credentials | None:
        """Answer a 401's challenge; returns the credentials used (None for anonymous)."""
        scheme, params = parse_challenge(challenge)
        creds = self._credentials(repository)
        if scheme == "bearer":
            self._tokens[scope] = self._token(params, scope, creds)
            return creds
        if scheme == "basic":
            if creds is None:
                raise FetchError(f"the registry {self.host} needs credentials for {repository}",
                                 hint=LOGIN_HINT)
            self._basic = creds
            return creds
        raise FetchError(f"the registry {self.host} asks for {scheme or 'an unnamed'} "
                         "authentication, which imagelock does not speak",
                         hint="imagelock speaks anonymous, bearer token and basic authentication")

    def _token(self, params: Mapping[str, str], scope: str, creds: Credentials | None) -> str:
        realm = params.get("realm", "")
        parsed = urllib.parse.urlsplit(realm)
        realm_host = Reference(parsed.netloc or "x", "x")
        if parsed.scheme not in ("https", "http") or (
            parsed.scheme == "http" and not (self.insecure or realm_host.is_loopback)
        ):
            raise FetchError(f"the registry {self.host} sends us for a token to {realm!r}",
                             hint="a token service must be https (or loopback, or --insecure)")
        scopes = [scope]
        if params.get("scope") and params["scope"] != scope:
            scopes.append(params["scope"])
        query = {"scope": scopes, **({"service": params["service"]} if "service" in params else {})}
        auth = (creds.username, creds.password) if creds else None
        retry = Retry()
        while True:
            try:
                r = self._session.get(realm, params=query, auth=auth, timeout=_timeout(),
                                      verify=not self.insecure)
            except requests.RequestException as e:
                if retry.again():
                    continue
                raise FetchError(f"cannot get a token for {self.host} from {realm} "
                                 f"{retry.why_not}: {e}", hint="check the network") from e
            if r.status_code in RETRY_STATUSES and retry.again(r.headers.get("Retry-After")):
                r.close()
                continue
            break
        if r.status_code in (401, 403):
            raise self._refused(creds, registry_errors(r))
        if r.status_code != 200:
            raise FetchError(f"the token service {realm} answered {registry_errors(r)}",
                             hint="try again later; check the registry's status")
        try:
            doc = r.json()
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise FetchError(f"the token service {realm} sent no token",
                             hint="is the realm in the registry's challenge a token service?")
        return token

    def _refused(self, creds: Credentials | None, detail: str) -> FetchError:
        if creds is None:
            return FetchError(f"the registry {self.host} refused anonymous access ({detail})",
                              hint=LOGIN_HINT)
        return FetchError(
            f"the registry {self.host} refused the credentials of user {creds.username!r} from "
            f"{creds.source} ({detail})",
            hint=f"check the user name and password in {creds.source}, or {LOGIN_HINT}",
        )

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        repository: str,
        path: str,
        *,
        what: str,
        push: bool = False,
        ok: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
    ) -> requests.Response:
        """One API call, authenticated as the registry's challenge asks, retried once after a
        401. `path` is relative to /v2/REPO/, or an absolute URL the registry gave us. A status
        outside `ok` raises an error naming `what`."""
        base = self.base_url()
        url = path if "://" in path else f"{base}/v2/{repository}/{path}"
        if "://" in path and not path.startswith(base):
            raise FetchError(f"the registry {self.host} sent us to {path!r} for {what}",
                             hint="a registry that redirects uploads to another host is not supported")
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        creds: Credentials | None = None
        authenticated = False
        retry = Retry()
        resend = method != "PATCH"  # the registry may have kept part of a chunk
        while True:
            data = body() if callable(body) else body
            try:
                r = self._session.request(
                    method, url, headers={**(headers or {}), **self._auth_headers(url, scope)},
                    params=params, data=data, stream=stream, timeout=_timeout(),
                    verify=not self.insecure,
                )
            except requests.RequestException as e:
                if resend and retry.again():
                    continue
                raise FetchError(f"{method} {what} at {self.host}/{repository} failed"
                                 f"{' ' + retry.why_not if retry.why_not else ''}: {e}",
                                 hint="check the network and the registry") from e
            finally:
                if isinstance(data, UploadBody):
                    data.close()
            if (r.status_code in RETRY_STATUSES and r.status_code not in ok and resend
                    and retry.again(r.headers.get("Retry-After"))):
                r.close()
                continue
            if r.status_code != 401:
                break
            detail = registry_errors(r)
            r.close()
            if authenticated:
                raise self._refused(creds, detail)
            creds = self._authenticate(r.headers.get("WWW-Authenticate", ""), repository, scope)
            authenticated = True
        if r.status_code in ok:
            return r
        error = self._status_error(r, method, what, repository)
        if retry.why_not:
            error.message += f" ({retry.why_not})"
        raise error

    def _status_error(
        self, r: requests.Response, method: str, what: str, repository: str
    ) -> ImagelockError:
        detail = registry_errors(r)
        r.close()
        where = f"{self.host}/{repository}"
        if r.status_code == 404:
            return FetchError(f"{what} is not in {where} ({detail})",
                              hint="check the repository, tag or digest")
        if r.status_code == 403:
            return FetchError(f"the registry denied {method} {what} in {where} ({detail})",
                              hint="the account lacks permission for this repository")
        if "DIGEST_INVALID" in detail or "SIZE_INVALID" in detail:
            return IntegrityError(f"{where} says {what} does not match its digest ({detail})",
                                  hint="the local copy of the image is damaged: rebuild or re-read it")
        return FetchError(f"{method} {what} in {where} failed: {detail}",
                          hint="see the registry's message; try again later")

    # -- the API ----------------------------------------------------------------------------

    def get_manifest(self, repository: str, target: str) -> tuple[bytes, str, str | None]:
        """A manifest or index by tag or digest: (bytes, media type, Docker-Content-Digest)."""
        got = self.find_manifest(repository, target)
        if got is None:  # pragma: no cover - find_manifest raises for a required manifest
            raise FetchError(f"manifest {target} is not in {self.host}/{repository}")
        return got

    def find_manifest(
        self, repository: str, target: str, *, missing_ok: bool = False
    ) -> tuple[bytes, str, str | None] | None:
        """`get_manifest`, or None for a manifest that is not there when `missing_ok`."""
        what = f"manifest {target}"
        r = self.request("GET", repository, f"manifests/{target}", what=what,
                         headers={"Accept": ACCEPT_MANIFESTS}, stream=True,
                         ok=(200, 404) if missing_ok else (200,))
        with r:
            if r.status_code == 404:
                return None
            data = _read_limited(r, what, f"{self.host}/{repository}")
            media_type = r.headers.get("Content-Type", "").split(";")[0].strip()
            return data, media_type, r.headers.get("Docker-Content-Digest")

    def put_manifest(
        self, repository: str, target: str, data: bytes, media_type: str
    ) -> Mapping[str, str]:
        """Store a manifest under a tag or its digest; returns the response headers."""
        r = self.request("PUT", repository, f"manifests/{target}", what=f"manifest {target}",
                         push=True, ok=(200, 201), headers={"Content-Type": media_type}, body=data)
        r.close()
        return r.headers

    def blob_exists(self, repository: str, digest: str, *, push: bool = False) -> bool:
        r = self.request("HEAD", repository, f"blobs/{digest}", what=f"blob {digest}",
                         push=push, ok=(200, 404))
        r.close()
        return r.status_code == 200

    def download_blob(
        self, repository: str, digest: str, size: int, store: Store, what: str
    ) -> None:
        """Stream a blob into `store`, refusing it unless it is exactly `size` bytes of `digest`."""
        hex_ = digest_hex(digest, what)
        if store.has(hex_):
            try:
                store.verify(hex_, size, what)
                progress.item(what, "present", size, self.host)
                return
            except IntegrityError:
                pass  # the cached copy was bad and is gone: download again
        where = f"{self.host}/{repository}"
        retry = Retry()
        while True:
            r = self.request("GET", repository, f"blobs/{digest}", what=what, stream=True)
            with r:
                length = r.headers.get("Content-Length")
                if (length is not None and not r.headers.get("Content-Encoding")
                        and int(length) > size):
                    raise IntegrityError(
                        f"{where} serves {what} with {length} bytes, more than the {size} its "
                        "descriptor says", hint="the registry serves altered content: do not "
                        "use it")
                try:
                    store.add_chunks(progress.counted(r.raw.stream(CHUNK, decode_content=False),
                                                      what, self.host),
                                     sha256=hex_, size=size, what=f"{what} from {where}")
                    progress.item(what, "downloaded", size, self.host)
                    return
                except IntegrityError as e:
                    raise IntegrityError(
                        e.message, hint="the registry served bytes that are not the image's "
                        "(corrupt or tampered with); nothing was kept") from e
                except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
                    # The connection broke mid-blob: download it again from the start.
                    if not retry.again():
                        raise FetchError(f"GET {what} at {where} broke off {retry.why_not}: "
                                         f"{type(e).__name__}: {e}",
                                         hint="check the network and the registry") from e

    def read_blob(self, repository: str, digest: str, size: int, what: str) -> bytes:
        """A small blob (an attestation) into memory, checked against its digest and size."""
        where = f"{self.host}/{repository}"
        check_document_size(size, what, where)
        r = self.request("GET", repository, f"blobs/{digest}", what=what, stream=True)
        with r:
            data = _read_limited(r, what, where)
        if len(data) != size or hash_digest(data) != digest:
            raise IntegrityError(
                f"{where} serves {what} as {len(data)} bytes with digest {hash_digest(data)}, "
                f"not {size} bytes of {digest}",
                hint="the registry served bytes that are not the artifact's: do not use them")
        return data

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        opener: Callable[[], BinaryIO],
        *,
        chunk_size: int | None = None,
    ) -> bool:
        """Upload a blob unless the registry has it; True when it was uploaded.

        One PUT for the whole blob, or with `chunk_size` set and the blob larger, PATCHes of that
        many bytes and a closing PUT (the memory used is one chunk).
        """
        what = f"blob {digest}"
        if self.blob_exists(repository, digest, push=True):
            return False
        r = self.request("POST", repository, "blobs/uploads/", what=f"an upload of {what}",
                         push=True, ok=(202,))
        r.close()
        location = self._location(r, what)
        octet = {"Content-Type": "application/octet-stream"}
        if chunk_size is None or size <= chunk_size:
            r = self.request("PUT", repository, location, what=what, push=True, ok=(201,),
                             params={"digest": digest}, headers=octet,
                             body=(lambda: UploadBody(opener, size)) if size else b"")
            r.close()
            return True
        with opener() as f:
            offset = 0
            while offset < size:
                chunk = f.read(chunk_size)
                if not chunk:
                    break
                headers = {**octet, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                r = self.request("PATCH", repository, location, what=f"a chunk of {what}",
                                 push=True, ok=(202,), headers=headers, body=chunk)
                r.close()
                location = self._location(r, what)
                offset += len(chunk)
            f.read()  # the end of a verifying stream checks the digest before we commit
        r = self.request("PUT", repository, location, what=what, push=True, ok=(201,),
                         params={"digest": digest}, headers=octet, body=b"")
        r.close()
        return True

    def _location(self, r: requests.Response, what: str) -> str:
        loc = r.headers.get("Location")
        if not loc:
            raise FetchError(f"the registry {self.host} gave no upload location for {what}",
                             hint="the registry does not follow the OCI distribution API")
        return urllib.parse.urljoin(self.base_url() + "/", loc)

    def tags(self, repository: str, *, limit: int = MAX_TAGS) -> tuple[list[str], bool]:
        """The repository's tags from the tags list API, page by page (`Link: <...>;
        rel="next"`); at most `limit` of them, and whether there were more."""
        what = f"the tags of {self.host}/{repository}"
        out: list[str] = []
        path, params = "tags/list", {"n": str(min(TAGS_PAGE, limit + 1))}
        for _ in range(limit // TAGS_PAGE + 2):
            r = self.request("GET", repository, path, what=what, stream=True, params=params)
            with r:
                data = _read_limited(r, what, f"{self.host}/{repository}")
                link = r.headers.get("Link", "")
            doc = parse_json(data, what, f"{self.host}/{repository}")
            listed = doc.get("tags") if isinstance(doc, dict) else None
            if listed is None:
                listed = []  # distribution answers `"tags": null` for an empty repository
            if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
                raise InputError(f"{what} is not a list of tags",
                                 hint="the registry does not follow the OCI distribution API")
            out += listed
            if len(out) > limit:
                return out[:limit], True
            nxt = _next_link(link)
            if nxt is None:
                return out, False
            path, params = urllib.parse.urljoin(self.base_url() + "/", nxt), {}
        return out[:limit], True

    def get_referrers(self, repository: str, digest: str, artifact_type: str | None) -> bytes | None:
        """The referrers API's index for `digest`, or None when the registry lacks the API."""
        r = self.request("GET", repository, f"referrers/{digest}", what=f"referrers of {digest}",
                         ok=(200, 404, 405), stream=True,
                         params={"artifactType": artifact_type} if artifact_type else None,
                         headers={"Accept": MT_INDEX})
        with r:
            if r.status_code != 200:
                return None
            return _read_limited(r, f"referrers of {digest}", f"{self.host}/{repository}")


def _next_link(header: str) -> str | None:
    """The `rel="next"` target of a Link header (RFC 8288), as the tags list API pages."""
    for part in header.split(","):
        target, _, rest = part.strip().partition(";")
        if 'rel="next"' in rest.replace(" ", "") and target.startswith("<") and target.endswith(">"):
            return target[1:-1]
    return None


def _read_limited(r: requests.Response, what: str, where: str) -> bytes:
    length = r.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > MAX_DOCUMENT:
        raise UnsafeContentError(f"{where} serves {what} with {length} bytes; imagelock reads "
                                 f"documents of at most {MAX_DOCUMENT} bytes",
                                 hint="no real manifest is this large: do not use this image")
    buf = bytearray()
    for chunk in r.iter_content(CHUNK):
        buf += chunk
        if len(buf) > MAX_DOCUMENT:
            raise UnsafeContentError(f"{where} serves {what} larger than {MAX_DOCUMENT} bytes",
                                     hint="no real manifest is this large: do not use this image")
    return bytes(buf)


def _basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class ManifestRef:
    """What a reference points at: the manifest or index's bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def size(self) -> int:
        return len(self.data)


def as_reference(ref: str | Reference) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


def client_for(
    ref: Reference, *, insecure: bool = False, credentials: Credentials | None = None
) -> RegistryClient:
    return RegistryClient(ref.host, insecure=insecure, credentials=credentials)


def get_checked(client: RegistryClient, ref: Reference, *, size: int | None = None) -> ManifestRef:
    """GET a manifest; it must hash to the digest asked for (or, by tag, to the one the registry
    names in Docker-Content-Digest) and be a manifest or index."""
    data, content_type, said = client.get_manifest(ref.repository, ref.target)
    digest = hash_digest(data)
    what = f"manifest {ref.target} from {ref.name}"
    expected = ref.digest or (said if said and said.startswith("sha256:") else None)
    if expected is not None and digest != expected:
        raise IntegrityError(f"{what} has digest {digest}, not {expected}",
                             hint="the registry (or something between us) altered the manifest: "
                             "do not use it")
    if size is not None and len(data) != size:
        raise IntegrityError(f"{what} has {len(data)} bytes, not the {size} its index says",
                             hint="the registry serves altered content: do not use it")
    return ManifestRef(data, _media_type(data, content_type, what, ref.name), digest)


def _media_type(data: bytes, content_type: str, what: str, where: str) -> str:
    doc = parse_json(data, what, where)
    if not isinstance(doc, dict):
        raise InputError(f"{what} is not a JSON object", hint="the registry serves something else")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        if content_type in MANIFEST_TYPES | INDEX_TYPES and content_type != declared:
            raise InputError(f"{what} says it is {declared} but was served as {content_type}",
                             hint="the manifest was crafted to be read two ways: do not use it")
        return declared
    if content_type in MANIFEST_TYPES | INDEX_TYPES:
        return content_type
    # OCI allows a manifest without mediaType; its shape decides.
    return MT_INDEX if "manifests" in doc else MT_MANIFEST
