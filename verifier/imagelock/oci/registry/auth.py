"""Registry credentials and authentication challenges.

Credentials come from the files podman, skopeo and docker already use, in their order:
`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
`$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config`), `$DOCKER_CONFIG/config.json`
(default `~/.docker/config.json`). An entry is `auths.<host>.auth`, base64 of `user:password`
(or `username` and `password` fields); a key may also be `host/namespace`, and the longest one
that prefixes the repository wins, as in containers-auth.json(5).

Credential helpers are run as docker, skopeo and crane run them: a file whose `credHelpers`
names a helper for the host (`{"credHelpers": {"HOST": "NAME"}}`), or whose `credsStore` names
one for every host, gets its credentials from `docker-credential-NAME get` (the host on stdin,
`{"Username", "Secret"}` on stdout) instead of from its `auths`, in that order. A helper that
has nothing for the host ("credentials not found") means anonymous access.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.errors import FetchError, InputError

HELPER_TIMEOUT = 60  # seconds a credential helper may take (some ask a keychain)
HELPER_OUTPUT = 1 << 20  # bytes of a helper's answer read at most


@dataclass(frozen=True)
class Credentials:
    """A user name and password, and where they came from (named in errors, never printed)."""

    username: str
    password: str
    source: str = "the caller"

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def auth_files() -> list[Path]:
    """The auth files to look in, first match wins."""
    env = os.environ
    files: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    files.append(Path(config_home) / "containers" / "auth.json")
    docker = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    files.append(Path(docker) / "config.json")
    return files


def find_credentials(host: str, repository: str) -> Credentials | None:
    """The credentials the auth files hold for `host/repository`, or None."""
    for path in auth_files():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"cannot read the auth file {path}: {e}", path=path,
                             hint="fix or remove it (it is JSON: {\"auths\": {HOST: {\"auth\": "
                             "base64(user:password)}}})") from e
        if not isinstance(doc, dict):
            continue
        helper = _helper_for(doc, host, path)
        if helper is not None:
            return run_helper(helper, host, path)
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            continue
        entry = _best_entry(auths, host, repository)
        if entry is not None:
            return _decode(entry, path, host)
    return None


def _helper_for(doc: dict[str, object], host: str, path: Path) -> str | None:
    """The credential helper a docker-style config names for `host`: its `credHelpers` entry,
    else its `credsStore` (docker's order)."""
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _normalise_key(key) == host:
                return _helper_name(name, path, f"credHelpers.{key}")
    store = doc.get("credsStore")
    if store is not None and store != "":
        return _helper_name(store, path, "credsStore")
    return None


def _helper_name(name: object, path: Path, field: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise InputError(f"{field} is not a credential helper name", path=path,
                         field=field, hint="a helper name like `pass`, `secretservice` or "
                         "`ecr-login` (run as docker-credential-NAME)")
    return name


def run_helper(name: str, host: str, path: Path) -> Credentials | None:
    """`docker-credential-NAME get` for `host`: its credentials, or None when it has none."""
    program = f"docker-credential-{name}"
    exe = shutil.which(program)
    if exe is None:
        raise InputError(f"{path} names the credential helper {name!r}, but {program} is not on "
                         "PATH", path=path, hint=f"install {program}, or log in with `podman "
                         "login --authfile FILE HOST` and point $REGISTRY_AUTH_FILE at FILE")
    try:
        r = subprocess.run([exe, "get"], input=host.encode(), capture_output=True,
                           timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"the credential helper {program} did not answer for {host} within "
                         f"{HELPER_TIMEOUT} s", hint="is it waiting for a keychain to unlock?") from None
    except OSError as e:
        raise FetchError(f"the credential helper {program} could not run: {e}") from None
    said = (r.stdout[:HELPER_OUTPUT] + r.stderr[:HELPER_OUTPUT]).decode("utf-8", "replace")
    if r.returncode != 0:
        if "credentials not found" in said.lower():
            return None
        first = said.strip().splitlines()[0][:200] if said.strip() else f"exit {r.returncode}"
        raise FetchError(f"the credential helper {program} failed for {host}: {first}",
                         hint=f"run `echo {host} | {program} get` to see why")
    source = f"{program} (named in {path})"
    try:
        answer = json.loads(r.stdout[:HELPER_OUTPUT])
        user, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise FetchError(f"the credential helper {program} answered for {host} with something "
                         "other than {\"Username\", \"Secret\"}",
                         hint="check the helper's version") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise FetchError(f"the credential helper {program} answered for {host} with a "
                         "non-text Username or Secret")
    if user == "<token>":
        raise FetchError(f"the credential helper {program} gives an identity token for {host}, "
                         "which imagelock does not use (it speaks user and password)",
                         hint="log in with a user and password or an access token "
                         "(`podman login --authfile FILE HOST`)")
    return Credentials(user, secret, source)


def _normalise_key(key: str) -> str:
    key = re.sub(r"^[a-z]+://", "", key)
    return re.sub(r"/v[12]/?$", "", key).rstrip("/")


def _best_entry(auths: dict[str, object], host: str, repository: str) -> dict[str, object] | None:
    full = f"{host}/{repository}"
    best: tuple[int, dict[str, object]] | None = None
    for key, value in auths.items():
        k = _normalise_key(key)
        if not isinstance(value, dict):
            continue
        applies = k == host or full == k or full.startswith(k + "/")
        if applies and (best is None or len(k) > best[0]):
            best = (len(k), value)
    return best[1] if best else None


def _decode(entry: dict[str, object], path: Path, host: str) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise InputError(f"the entry for {host} in {path} is not base64 of user:password",
                             path=path, hint="log in again (podman login --authfile FILE HOST)") from e
        if not sep:
            raise InputError(f"the entry for {host} in {path} has no ':' between user and password",
                             path=path, hint="log in again (podman login --authfile FILE HOST)")
        return Credentials(user, password, str(path))
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str):
        return Credentials(name, secret, str(path))
    return None


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
    return scheme.lower(), params
