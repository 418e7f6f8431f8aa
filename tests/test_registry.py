"""Pushing to and pulling from a real registry (docker-registry 2.8 on loopback): digests kept
end to end, tampering refused, attestations attached as referrers, credentials from the usual
auth files, basic and bearer-token authentication."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from helpers import IMAGELOCK, need
from imagelock.core.errors import FetchError, InputError, IntegrityError, UnsafeContentError
from imagelock.formats.oci import MT_INDEX, MT_LAYER_TAR, MT_MANIFEST
from imagelock.oci.image import Blob, Image
from imagelock.oci.layout_read import read_layout
from imagelock.oci.locations import read_image
from imagelock.oci.reference import parse_reference
from imagelock.oci.registry.auth import find_credentials, parse_challenge
from imagelock.oci.registry.client import RegistryClient
from imagelock.oci.registry.transfer import (
    Artifact,
    Credentials,
    fetch_referrer,
    list_referrers,
    pull,
    push,
    push_referrer,
    resolve,
)
from oci_helpers import (
    EXPECTED,
)
from registry_fixture import (
    Registry,
    start_registry,
)

DIGEST = EXPECTED["manifest_digest"]
LAYER = EXPECTED["layers"][0]["digest"]
DSSE = "application/vnd.dsse.envelope.v1+json"
INTOTO = "application/vnd.in-toto+json"


@pytest.fixture(autouse=True)
def no_real_auth_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every auth file location into the test's directory: the machine's own logins
    must neither help nor hurt."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


def auth_file(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def skopeo_digest(ref: str) -> str:
    need("skopeo")
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["Digest"]  # type: ignore[no-any-return]


# -- push and pull keep every digest --------------------------------------------------------------


def test_push_then_pull_by_tag_and_by_digest_gives_the_same_manifest(
    registry: Registry, hello: dict[str, Path], tmp_path: Path
) -> None:
    ref = f"{registry.host}/hello:1.0"
    assert push(read_image(hello["oci"]), ref) == DIGEST
    by_tag = pull(ref, tmp_path / "by-tag")
    by_digest = pull(f"{registry.host}/hello@{DIGEST}", tmp_path / "by-digest")
    for img in (by_tag, by_digest):
        assert img.manifest_digest == DIGEST
        assert img.config_digest == EXPECTED["config_digest"]
        assert [b.digest for b in img.layers] == [LAYER]
    assert by_tag.tag == "1.0"
    # What pull wrote is a layout any reader takes, with the same digest.
    need("skopeo")
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'by-digest'}"],
                         capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == DIGEST
    assert read_layout(tmp_path / "by-tag").manifest_digest == DIGEST


def test_skopeo_sees_the_digest_we_pushed(registry: Registry, hello: dict[str, Path]) -> None:
    push(read_image(hello["oci"]), f"{registry.host}/seen:1.0")
    assert skopeo_digest(f"{registry.host}/seen:1.0") == DIGEST
    assert resolve(f"{registry.host}/seen:1.0").digest == DIGEST


def test_docker_archive_pushed_in_chunks_pulls_back_with_the_same_content(
    registry: Registry, hello: dict[str, Path], tmp_path: Path
) -> None:
    ref = f"{registry.host}/archived:1.0"
    digest = push(read_image(hello["archive"]), ref, chunk_size=4096)  # the 18 KiB layer goes in 5 PATCHes
    assert push(read_image(hello["archive"]), ref) == digest  # again: every blob is there already
    img = pull(ref, tmp_path / "out")
    assert img.config_digest == EXPECTED["config_digest"]
    assert [(b.digest, b.media_type) for b in img.layers] == [
        (EXPECTED["layers"][0]["diff_id"], MT_LAYER_TAR)]
    assert skopeo_digest(ref) == digest


def test_pull_follows_an_index_to_the_platform(
    registry: Registry, hello: dict[str, Path], tmp_path: Path
) -> None:
    repo = parse_reference(f"{registry.host}/multi:1.0")
    push(read_image(hello["oci"]), repo)
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": DIGEST, "size": len(read_layout(hello["oci"]).manifest),
        "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    with RegistryClient(registry.host) as client:
        client.put_manifest("multi", "all", index, MT_INDEX)
    assert pull(f"{registry.host}/multi:all", tmp_path / "a").manifest_digest == DIGEST
    with pytest.raises(InputError, match="no image for platform linux/arm64"):
        pull(f"{registry.host}/multi:all", tmp_path / "b", platform="linux/arm64")
    assert not (tmp_path / "b").exists()


def test_pull_of_a_missing_tag_names_it(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="manifest nope is not in .*/hello .*MANIFEST_UNKNOWN"):
        pull(f"{registry.host}/hello:nope", tmp_path / "x")


# -- a registry that serves other bytes is refused ------------------------------------------------


@pytest.mark.tools  # docker-registry
def test_tampered_blob_or_manifest_in_the_registry_is_refused(
    hello: dict[str, Path], tmp_path: Path
) -> None:
    with start_registry(tmp_path / "reg") as reg:  # its own storage: we damage it
        ref = f"{reg.host}/hello:1.0"
        push(read_image(hello["oci"]), ref)
        layer_file = reg.blob_file(LAYER)
        good = layer_file.read_bytes()
        layer_file.write_bytes(bytes(b ^ 0x55 for b in good))  # same size, other bytes
        cache = tmp_path / "cache"
        with pytest.raises(IntegrityError, match=f"layer 0 .{LAYER}. from .* does not have the pinned sha256") as e:
            pull(ref, tmp_path / "out", cache=cache)
        assert e.value.hint and "tampered" in e.value.hint
        assert not (tmp_path / "out").exists()
        assert not list((cache / "sha256").glob(LAYER.split(":")[1]))  # nothing kept
        layer_file.write_bytes(good + b"trailing")
        with pytest.raises(IntegrityError, match="more than the 988"):
            pull(ref, tmp_path / "out", cache=cache)
        layer_file.write_bytes(good)
        manifest_file = reg.blob_file(DIGEST)
        manifest_file.write_bytes(manifest_file.read_bytes().replace(b'"size":988', b'"size":989'))
        for r in (ref, f"{reg.host}/hello@{DIGEST}"):
            with pytest.raises(IntegrityError, match=f"has digest sha256:.*, not {DIGEST}"):
                pull(r, tmp_path / "out")


class _HugeManifest(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/v2/":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Type", MT_MANIFEST)
        self.send_header("Content-Length", str(64 << 20))
        self.end_headers()


@pytest.fixture
def huge_manifest_server() -> Iterator[str]:
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), _HugeManifest)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_manifest_larger_than_the_limit_is_refused_unread(
    huge_manifest_server: str, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeContentError, match="at most 4194304 bytes"):
        pull(f"{huge_manifest_server}/x:1", tmp_path / "x")


# -- attestations as referrers, through the tag fallback ------------------------------------------


def test_referrers_are_pushed_and_listed_through_the_tag_fallback(
    registry: Registry, hello: dict[str, Path]
) -> None:
    ref = f"{registry.host}/attested:1.0"
    push(read_image(hello["oci"]), ref)
    # docker-registry 2.8 has no referrers API: the client must fall back to the tag scheme.
    api = requests.get(f"http://{registry.host}/v2/attested/referrers/{DIGEST}", timeout=10)
    assert api.status_code == 404
    provenance = Artifact(INTOTO, DSSE, b'{"payloadType":"application/vnd.in-toto+json"}',
                          {"org.opencontainers.image.title": "provenance"})
    first = push_referrer(ref, provenance)
    assert push_referrer(ref, provenance) == first  # same attestation, same artifact, listed once
    listed = list_referrers(ref)
    assert [(r.digest, r.artifact_type) for r in listed] == [(first, INTOTO)]
    assert listed[0].annotations == {"org.opencontainers.image.title": "provenance"}
    vsa = Artifact("application/vnd.example.vsa+json", DSSE, b'{"vsa":1}')
    second = push_referrer(f"{registry.host}/attested@{DIGEST}", vsa)
    assert [r.digest for r in list_referrers(ref)] == [first, second]
    assert [r.digest for r in list_referrers(ref, INTOTO)] == [first]
    assert list_referrers(ref, "application/vnd.example.none") == []
    got = fetch_referrer(ref, listed[0])
    assert (got.artifact_type, got.media_type, got.data) == (INTOTO, DSSE, provenance.data)
    fallback = resolve(f"{registry.host}/attested:sha256-{DIGEST.split(':')[1]}")
    assert fallback.media_type == MT_INDEX
    # The attached artifact's subject is our image, as another client would see it.
    m = json.loads(resolve(f"{registry.host}/attested@{first}").data)
    assert (m["subject"]["digest"], m["artifactType"]) == (DIGEST, INTOTO)


def test_a_referrer_of_another_image_is_refused(
    registry: Registry, hello: dict[str, Path]
) -> None:
    a, b = f"{registry.host}/pair:a", f"{registry.host}/pair:b"
    push(read_image(hello["oci"]), a)
    other = push(read_image(hello["archive"]), b)
    foreign = push_referrer(b, Artifact(INTOTO, DSSE, b'{"for":"b"}'))
    assert list_referrers(a) == []
    # Someone slips b's attestation into a's fallback index.
    entry = {"mediaType": MT_MANIFEST, "digest": foreign,
             "size": resolve(f"{registry.host}/pair@{foreign}").size, "artifactType": INTOTO}
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry]}).encode()
    with RegistryClient(registry.host) as client:
        client.put_manifest("pair", "sha256-" + DIGEST.split(":")[1], index, MT_INDEX)
    [listed] = list_referrers(a)
    with pytest.raises(InputError, match=f"attached to {other}, not to {DIGEST}"):
        fetch_referrer(a, listed)


# -- credentials and authentication ---------------------------------------------------------------


@pytest.mark.tools  # docker-registry
def test_basic_auth_uses_the_auth_file_and_names_a_wrong_password(
    hello: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_registry(tmp_path / "reg", users={"alice": "wonderland"}) as reg:
        ref = f"{reg.host}/private:1.0"
        with pytest.raises(FetchError, match=f"{reg.host} needs credentials for private") as e:
            push(read_image(hello["oci"]), ref)
        assert e.value.hint and "REGISTRY_AUTH_FILE" in e.value.hint
        good = auth_file(tmp_path / "auth.json", reg.host, "alice", "wonderland")
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(good))
        assert push(read_image(hello["oci"]), ref) == DIGEST
        assert pull(ref, tmp_path / "out").manifest_digest == DIGEST
        bad = auth_file(tmp_path / "bad.json", reg.host, "alice", "looking-glass")
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(bad))
        with pytest.raises(FetchError, match=f"refused the credentials of user 'alice' from {bad}"):
            pull(ref, tmp_path / "out2")
        assert "looking-glass" not in repr(find_credentials(reg.host, "private"))


@pytest.mark.tools  # docker-registry
def test_bearer_tokens_are_fetched_with_credentials_from_the_docker_config(
    hello: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    no_real_auth_files: Path,
) -> None:
    with start_registry(tmp_path / "reg", token_users={"bob": "builder"}) as reg:
        ref = f"{reg.host}/tokened:1.0"
        with pytest.raises(FetchError, match="refused anonymous access"):
            push(read_image(hello["oci"]), ref)
        auth_file(no_real_auth_files / ".docker/config.json", reg.host, "bob", "builder")
        assert push(read_image(hello["oci"]), ref) == DIGEST
        assert pull(ref, tmp_path / "out").manifest_digest == DIGEST
        assert any(r.startswith("bob repository:tokened:pull,push") for r in reg.token_requests)
        with pytest.raises(FetchError, match="refused the credentials of user 'bob'"):
            pull(ref, tmp_path / "out2", credentials=Credentials("bob", "wrong"))


def test_auth_files_are_searched_in_the_usual_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_real_auth_files: Path
) -> None:
    host = "registry.test:5000"
    docker = auth_file(no_real_auth_files / ".docker/config.json", host, "d", "1")
    assert find_credentials(host, "x") == Credentials("d", "1", str(docker))
    runtime = auth_file(tmp_path / "run/containers/auth.json", host, "r", "2")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert find_credentials(host, "x") == Credentials("r", "2", str(runtime))
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"auths": {
        f"{host}/team": {"username": "t", "password": "3"},
        f"https://{host}/v2/": {"auth": base64.b64encode(b"e:4").decode()}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(explicit))
    assert find_credentials(host, "team/app") == Credentials("t", "3", str(explicit))
    assert find_credentials(host, "other") == Credentials("e", "4", str(explicit))
    assert find_credentials("elsewhere.test", "x") is None


def test_challenges_with_quoted_commas_parse() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.test/token",service="reg",scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.test/token", "service": "reg",
                      "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


# -- references and plain HTTP -------------------------------------------------------------------


def test_references_parse_with_host_port_tag_and_digest() -> None:
    r = parse_reference(f"127.0.0.1:5000/team/app@{DIGEST}")
    assert (r.host, r.repository, r.tag, r.digest, r.target) == (
        "127.0.0.1:5000", "team/app", None, DIGEST, DIGEST)
    r = parse_reference("docker://localhost/app:v1.2")
    assert (r.host, r.repository, r.tag, r.target, str(r)) == (
        "localhost", "app", "v1.2", "v1.2", "localhost/app:v1.2")
    assert parse_reference("[::1]:5000/app").hostname == "::1"
    assert parse_reference("registry.test/app").target == "latest"
    for bad, why in (("app:1.0", "registry host"), ("team/app", "registry host"),
                     ("registry.test/App", "repository name"),
                     ("registry.test/app:-x", "not a tag"),
                     ("registry.test/app@sha256:abc", "digest")):
        with pytest.raises(InputError, match=why):
            parse_reference(bad)


def test_plain_http_only_for_loopback_or_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("localhost:5000", "127.0.0.1:5000", "127.3.2.1", "[::1]:5000"):
        assert RegistryClient(host).plain_http
    assert not RegistryClient("registry.test:5000").plain_http
    assert RegistryClient("registry.test:5000", insecure=True).plain_http
    tried: list[str] = []

    def refuse(self: object, url: str, **kw: object) -> None:
        tried.append(url)
        raise requests.ConnectionError("no route")

    monkeypatch.setattr(requests.Session, "get", refuse)
    monkeypatch.setenv("IMAGELOCK_HTTP_BACKOFF", "0.01")
    with pytest.raises(FetchError, match="cannot reach a registry") as e:
        RegistryClient("registry.test:5000").base_url()
    assert set(tried) == {"https://registry.test:5000/v2/"}  # tried again, never over HTTP
    assert e.value.hint and "--insecure" in e.value.hint


def test_a_local_blob_damaged_after_reading_is_not_pushed(
    registry: Registry, hello: dict[str, Path], tmp_path: Path
) -> None:
    layout = tmp_path / "l"
    shutil.copytree(hello["oci"], layout)
    image = read_layout(layout)
    layer = layout / "blobs/sha256" / LAYER.split(":")[1]
    layer.chmod(0o644)
    data = bytearray(layer.read_bytes())
    data[10] ^= 1
    layer.write_bytes(bytes(data))
    for chunk_size in (None, 256):
        with pytest.raises(IntegrityError, match=f"layer 0 .{LAYER}. .* has digest"):
            push(image, f"{registry.host}/damaged:1.0", chunk_size=chunk_size)
    # A blob that does not check itself (a plain file) is caught by the registry, and said so.
    plain = Image(manifest=image.manifest, config=image.config,
                  layers=[Blob(LAYER, len(data), image.layers[0].media_type, path=layer)])
    with pytest.raises(IntegrityError, match="does not match its digest .*DIGEST_INVALID"):
        push(plain, f"{registry.host}/damaged:1.0")
    with RegistryClient(registry.host) as client:
        assert client.find_manifest("damaged", "1.0", missing_ok=True) is None


def test_a_registry_with_the_referrers_api_is_asked_directly(
    registry: Registry, hello: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"{registry.host}/api:1.0"
    push(read_image(hello["oci"]), ref)
    put = RegistryClient.put_manifest

    def put_with_subject(self: RegistryClient, repo: str, target: str, data: bytes,
                         media_type: str) -> dict[str, str]:
        headers = dict(put(self, repo, target, data, media_type))
        subject = json.loads(data).get("subject")
        if subject:  # as a registry that indexes referrers itself answers
            headers["OCI-Subject"] = subject["digest"]
        return headers

    monkeypatch.setattr(RegistryClient, "put_manifest", put_with_subject)
    pushed = push_referrer(ref, Artifact(INTOTO, DSSE, b'{"api":1}'))
    with RegistryClient(registry.host) as client:  # no fallback index was written
        assert client.find_manifest("api", "sha256-" + DIGEST.split(":")[1], missing_ok=True) is None
    answer = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": pushed, "size": 1, "artifactType": INTOTO},
        {"mediaType": MT_MANIFEST, "digest": DIGEST, "size": 1, "artifactType": "other/x"}]})
    asked: list[tuple[str, str | None]] = []

    def api(self: RegistryClient, repo: str, digest: str, artifact_type: str | None) -> bytes:
        asked.append((digest, artifact_type))
        return answer.encode()

    monkeypatch.setattr(RegistryClient, "get_referrers", api)
    assert [r.digest for r in list_referrers(ref, INTOTO)] == [pushed]  # filtered here too
    assert asked == [(DIGEST, INTOTO)]


# -- a registry that fails for a while: retries within a bounded time -----------------------------


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Forwards to a real registry, except that the first `fail_first` requests (of
    `fail_methods`, if set) fail: with `statuses` in turn, each with its Retry-After, or by
    dropping the connection without an answer."""

    protocol_version = "HTTP/1.1"
    server: _FlakyServer

    def log_message(self, *a: object) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        srv = self.server
        with srv.lock:
            counted = not srv.fail_methods or self.command in srv.fail_methods
            n = srv.counted = srv.counted + counted
            failing = counted and n <= srv.fail_first
            srv.log.append((self.command, self.path.split("?")[0], failing))
        if failing:
            if srv.drop:
                self.close_connection = True  # no answer at all: a broken connection
                return
            status, after = srv.statuses[(n - 1) % len(srv.statuses)]
            self.send_response(status)
            if after is not None:
                self.send_header("Retry-After", after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        up = http.client.HTTPConnection(*srv.upstream, timeout=30)
        hop = ("connection", "keep-alive", "transfer-encoding")
        up.request(self.command, self.path, body=body or None,
                   headers={k: v for k, v in self.headers.items() if k.lower() not in hop})
        resp = up.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in (*hop, "content-length"):
                self.send_header(k, v)
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        up.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


class _FlakyServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    upstream: tuple[str, int]
    fail_first: int
    fail_methods: tuple[str, ...]
    statuses: list[tuple[int, str | None]]
    drop: bool
    counted: int
    log: list[tuple[str, str, bool]]
    lock: threading.Lock


@contextmanager
def flaky_registry(upstream: str, fail_first: int, *, statuses: list[tuple[int, str | None]]
                   | None = None, drop: bool = False,
                   fail_methods: tuple[str, ...] = ()) -> Iterator[_FlakyServer]:
    srv = _FlakyServer(("127.0.0.1", 0), _Flaky)
    host, port = upstream.rsplit(":", 1)
    srv.upstream, srv.fail_first, srv.fail_methods = (host, int(port)), fail_first, fail_methods
    srv.statuses, srv.drop = statuses or [(503, None)], drop
    srv.counted, srv.log, srv.lock = 0, [], threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _host(srv: _FlakyServer) -> str:
    return f"127.0.0.1:{srv.server_address[1]}"


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGELOCK_HTTP_BACKOFF", "0.05")


def test_a_registry_answering_503_and_429_for_a_while_is_waited_for_as_it_asks(
    registry: Registry, hello: dict[str, Path], tmp_path: Path, quick_backoff: None
) -> None:
    push(read_image(hello["oci"]), f"{registry.host}/flaky:1.0")
    # An HTTP date has whole seconds: 4 s from now is at least 3 s from now once written.
    soon = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    statuses = [(503, "1"), (429, soon), (502, None)]
    with flaky_registry(registry.host, 3, statuses=statuses) as srv:
        start = time.monotonic()
        img = pull(f"{_host(srv)}/flaky:1.0", tmp_path / "out")
        took = time.monotonic() - start
    assert img.manifest_digest == DIGEST
    assert [f for _, _, f in srv.log[:4]] == [True, True, True, False]
    assert took >= 2.5  # Retry-After honoured (1 s, then until the date), not 0.05 s backoffs


def test_broken_connections_and_failed_uploads_are_tried_again(
    registry: Registry, hello: dict[str, Path], tmp_path: Path, quick_backoff: None
) -> None:
    push(read_image(hello["oci"]), f"{registry.host}/dropped:1.0")
    with flaky_registry(registry.host, 3, drop=True) as srv:  # no answer, three times
        assert pull(f"{_host(srv)}/dropped:1.0", tmp_path / "out").manifest_digest == DIGEST
    assert [f for _, _, f in srv.log[:4]] == [True, True, True, False]
    # Uploads: the first three PUTs (blobs, then the manifest) fail with 500; the push lands.
    with flaky_registry(registry.host, 3, statuses=[(500, None)], fail_methods=("PUT",)) as srv:
        assert push(read_image(hello["oci"]), f"{_host(srv)}/retried-push:1.0") == DIGEST
    puts = [(p.split("/")[-2], f) for m, p, f in srv.log if m == "PUT"]
    assert [f for _, f in puts].count(True) == 3 and puts[-1] == ("manifests", False), puts
    assert resolve(f"{registry.host}/retried-push:1.0").digest == DIGEST


def test_retries_stop_within_the_time_budget(
    registry: Registry, tmp_path: Path, quick_backoff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry that keeps failing, or asks to come back in an hour, gets a clear error
    within the budget ($IMAGELOCK_HTTP_RETRY_SECONDS), not a hang."""
    monkeypatch.setenv("IMAGELOCK_HTTP_RETRY_SECONDS", "3")
    with flaky_registry(registry.host, 10**6, statuses=[(503, "3600")]) as srv:
        start = time.monotonic()
        with pytest.raises(FetchError, match="asks to wait 3600 s more.*retry budget is 3 s"):
            pull(f"{_host(srv)}/hello:1.0", tmp_path / "a")
        assert time.monotonic() - start < 2
    with flaky_registry(registry.host, 10**6, statuses=[(503, None)]) as srv:
        start = time.monotonic()
        with pytest.raises(FetchError, match=r"HTTP 503 after 6 attempts") as e:
            pull(f"{_host(srv)}/hello:1.0", tmp_path / "b")
        assert time.monotonic() - start < 3
    assert e.value.exit_code == 3


# -- credential helpers ---------------------------------------------------------------------------


def credential_helper(bin_dir: Path, name: str, host: str, user: str, password: str) -> Path:
    """A `docker-credential-NAME` that knows one host (the protocol: `get`, the server on stdin,
    JSON on stdout; "credentials not found" and exit 1 for any other), logging each call."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / f"{name}.log"
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 2\n'
        "read -r server\n"
        f'echo "$server" >> {log}\n'
        f'if [ "$server" = "{host}" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}\\n\' '
        '"$server"\n'
        "else\n"
        "  echo 'credentials not found in native keychain'; exit 1\n"
        "fi\n")
    script.chmod(0o755)
    return log


def test_credentials_come_from_the_helper_the_auth_file_names(
    hello: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    no_real_auth_files: Path,
) -> None:
    with start_registry(tmp_path / "reg", users={"carol": "s3cret"}) as reg:
        bin_dir = tmp_path / "bin"
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        per_host = credential_helper(bin_dir, "perhost", reg.host, "carol", "s3cret")
        store = credential_helper(bin_dir, "store", reg.host, "carol", "s3cret")
        config = no_real_auth_files / ".docker/config.json"
        config.parent.mkdir(parents=True)
        ref = f"{reg.host}/helped:1.0"
        # credHelpers for this host wins over credsStore and over the auths entry.
        config.write_text(json.dumps({"credHelpers": {reg.host: "perhost"}, "credsStore": "store",
                                      "auths": {reg.host: {"auth": "bm9ib2R5Om5vdGhpbmc="}}}))
        assert push(read_image(hello["oci"]), ref) == DIGEST
        assert per_host.read_text().split() == [reg.host]  # asked once, for this host
        assert not store.exists()
        # credsStore serves every host that has no credHelpers entry.
        config.write_text(json.dumps({"credsStore": "store", "auths": {reg.host: {}}}))
        assert pull(ref, tmp_path / "out").manifest_digest == DIGEST
        assert store.read_text().split() == [reg.host]
        found = find_credentials(reg.host, "helped")
        assert found is not None and found.source.startswith("docker-credential-store")
        assert "s3cret" not in repr(found)
        # A helper that has nothing for the host: anonymous, refused by this registry.
        config.write_text(json.dumps({"credHelpers": {reg.host: "perhost"}}))
        credential_helper(bin_dir, "perhost", "elsewhere.test", "x", "y")
        with pytest.raises(FetchError, match=f"{reg.host} needs credentials for helped"):
            pull(ref, tmp_path / "out2")
        # A helper that is not installed is named, with the file that names it.
        config.write_text(json.dumps({"credsStore": "missing"}))
        with pytest.raises(InputError, match="docker-credential-missing is not on PATH") as e:
            pull(ref, tmp_path / "out3")
        assert e.value.path == str(config) or str(e.value.path) == str(config)


# -- two pushers at once ------------------------------------------------------------------------


def test_two_concurrent_attach_runs_lose_no_attestation(
    registry: Registry, hello: dict[str, Path], tmp_path: Path
) -> None:
    """docker-registry 2.8 has no referrers API, so each attach updates the fallback index
    (read, add, write back). Two `imagelock attach` runs at once, 12 attestations each, against
    one image: every one of the 24 is listed afterwards."""
    from imagelock.trust.dsse import envelope_json, sign_envelope
    from imagelock.trust.keys import generate
    from imagelock.trust.statement import statement_bytes
    from trust_helpers import vsa

    ref = f"{registry.host}/raced:1.0"
    push(read_image(hello["oci"]), ref)
    files = []
    for who in ("alice", "bob"):
        key = generate("ed25519")
        lines = [envelope_json(sign_envelope(statement_bytes(vsa(
            manifest=DIGEST, verifier_id=f"https://rebuilders.test/{who}/{n}")), [key]))
            for n in range(12)]
        files.append(tmp_path / f"{who}.intoto.jsonl")
        files[-1].write_bytes(b"\n".join(lines) + b"\n")
    by_digest = f"{registry.host}/raced@{DIGEST}"
    procs = [subprocess.Popen([IMAGELOCK, "attach", by_digest, str(f), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in files]
    pushed: set[str] = set()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        pushed |= set(json.loads(out)["referrers"])
    assert len(pushed) == 24
    assert {r.digest for r in list_referrers(ref)} == pushed
