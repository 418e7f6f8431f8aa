"""`inspect --package 'NAME<VERSION'`: which images hold a package at a version that matches.

A condition is a package name, optionally followed by an operator and a version. Debian
packages compare by Debian's rules (python-debian's `Version`: epochs, `~`, revisions), wheels
by PEP 440 (`packaging`). The operators mean what they say: `<` is strictly less (Debian's own
`<<`, also accepted; Debian's deprecated `<`, meaning `<=`, is not used here).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from debian.debian_support import Version as DebVersion
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version as PyVersion

from imagelock.core.errors import InputError
from imagelock.sbom.items import Item

_CONDITION = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9+._-]*)\s*"
    r"(?:(?P<op><<|>>|<=|>=|==|!=|<|>|=)\s*(?P<version>[A-Za-z0-9.+~:_-]+))?\s*$")
_DEB_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
_OPS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0, "<<": lambda c: c < 0, "<=": lambda c: c <= 0,
    "=": lambda c: c == 0, "==": lambda c: c == 0, "!=": lambda c: c != 0,
    ">=": lambda c: c >= 0, ">": lambda c: c > 0, ">>": lambda c: c > 0,
}


@dataclass(frozen=True)
class Condition:
    """A parsed `--package` condition."""

    text: str
    name: str
    op: str | None
    version: str | None

    def matches(self, item: Item) -> bool:
        if item.kind == "debian":
            if item.name != self.name:
                return False
            return self._holds(_cmp_debian(item.version or "", self.version))
        if item.kind == "python":
            if canonicalize_name(item.name) != canonicalize_name(self.name):
                return False
            return self._holds(_cmp_python(item.version or "", self.version))
        return False

    def _holds(self, cmp: int | None) -> bool:
        if self.op is None:
            return True
        return cmp is not None and _OPS[self.op](cmp)


def _cmp_debian(have: str, want: str | None) -> int | None:
    if want is None:
        return 0
    a, b = DebVersion(have), DebVersion(want)
    return (a > b) - (a < b)


def _cmp_python(have: str, want: str | None) -> int | None:
    if want is None:
        return 0
    try:
        a, b = PyVersion(have), PyVersion(want)
    except InvalidVersion:
        return None  # not comparable by PEP 440: never matches a version condition
    return (a > b) - (a < b)


def parse_condition(text: str) -> Condition:
    """`NAME`, or `NAME OP VERSION` with OP one of < <= = == != >= > (and Debian's << >>)."""
    m = _CONDITION.match(text)
    hint = ("write NAME or NAME<VERSION, e.g. --package 'libssl3<3.0.22' (operators: < <= = != "
            ">= >, and Debian's << >>); quote it so the shell leaves < and > alone")
    if m is None:
        raise InputError(f"--package {text!r} is not a package condition", hint=hint)
    version = m.group("version")
    if version is not None and not _DEB_VERSION.match(version):
        try:
            PyVersion(version)
        except InvalidVersion:
            raise InputError(f"--package {text!r}: {version!r} is not a Debian or Python version",
                             hint=hint) from None
    return Condition(text.strip(), m.group("name"), m.group("op"), version)
