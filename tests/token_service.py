"""A small registry token service for tests: the bearer-token half of registry authentication.

It answers `GET /token?service=...&scope=...` with a JWT signed by a key whose self-signed
certificate the registry trusts (`auth.token.rootcertbundle`), granting the scopes asked for to
the users it knows (by basic auth) and nothing to anyone else, the way real token services do.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVICE = "imagelock-test-registry"
ISSUER = "imagelock-test-token-service"


@dataclass
class TokenService:
    realm: str
    cert: Path
    service: str = SERVICE
    issuer: str = ISSUER
    requests: list[str] = field(default_factory=list)  # "user scope scope..." per token asked


def _key_and_cert() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagelock test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


@contextmanager
def token_service(workdir: Path, users: dict[str, str]) -> Iterator[TokenService]:
    key, cert = _key_and_cert()
    cert_path = workdir / "token-signer.pem"
    workdir.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    log: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            return user if users.get(user) == pw else ""

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            user = self._user()
            scopes = query.get("scope", [])
            log.append(f"{user} {' '.join(scopes)}")
            if user == "" or url.path != "/token":  # wrong password
                self.send_response(401)
                self.end_headers()
                return
            access = []
            for scope in scopes if user else []:
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            claims = {"iss": ISSUER, "sub": user or "", "aud": query.get("service", [""])[0],
                      "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": secrets.token_hex(8), "access": access}
            token = jwt.encode(claims, pem, algorithm="ES256", headers={"x5c": [x5c]})
            body = json.dumps({"token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield TokenService(f"http://127.0.0.1:{srv.server_address[1]}/token", cert_path,
                           requests=log)
    finally:
        srv.shutdown()
        srv.server_close()
