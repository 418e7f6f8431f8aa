"""Image references in a registry: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.

The host is always written out: imagelock has no default registry, so a reference names exactly
one place. Parsing follows the distribution reference grammar (lower-case repository path
components, tags of at most 128 characters, sha256 digests only).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from imagelock.core.digest import DIGEST
from imagelock.core.errors import InputError

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$"
)
_FORM = "HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:HEX"


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `tag` and `digest` may both be set (the digest then decides)."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        """HOST/REPO, without tag or digest."""
        return f"{self.host}/{self.repository}"

    @property
    def target(self) -> str:
        """What the manifest endpoint is asked for: the digest, else the tag, else `latest`."""
        return self.digest or self.tag or "latest"

    def at(self, digest: str) -> Reference:
        """The same repository, pinned to `digest`."""
        return replace(self, tag=None, digest=digest)

    @property
    def hostname(self) -> str:
        host = self.host
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def is_loopback(self) -> bool:
        """localhost, 127.0.0.0/8 or ::1: the only hosts spoken to over plain HTTP by default."""
        if self.hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.hostname).is_loopback
        except ValueError:
            return False


def parse_reference(text: str) -> Reference:
    """Parse `HOST[:PORT]/REPO[:TAG][@sha256:HEX]` (a `docker://` prefix is allowed)."""
    raw = text.removeprefix("docker://")
    rest, _, digest = raw.partition("@")
    if digest and not DIGEST.match(digest):
        raise InputError(f"{text!r} has the digest {digest!r}; imagelock takes sha256:<64 hex>",
                         hint=f"write {_FORM}")
    host, slash, path = rest.partition("/")
    if not slash or not _looks_like_host(host):
        raise InputError(f"{text!r} does not start with a registry host",
                         hint=f"write the registry's host first: {_FORM}")
    if not _HOST.match(host):
        raise InputError(f"{host!r} in {text!r} is not a host[:port]", hint=f"write {_FORM}")
    tag: str | None = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG.match(tag):
            raise InputError(f"{tag!r} in {text!r} is not a tag",
                             hint="a tag is up to 128 letters, digits, _ . and -, not starting "
                             "with . or -")
    components = path.split("/")
    if not path or not all(_COMPONENT.match(c) for c in components):
        raise InputError(f"{path!r} in {text!r} is not a repository name",
                         hint="a repository is lower-case path components of letters, digits "
                         "and single separators (. _ __ -), for example team/app")
    if len(host) + 1 + len(path) > 255:
        raise InputError(f"{text!r} is longer than 255 characters before its tag",
                         hint="use a shorter repository name")
    return Reference(host=host, repository=path, tag=tag, digest=digest or None)


def _looks_like_host(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")
