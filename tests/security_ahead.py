"""The CVE day's input: a package whose security-suite version is ahead of the main suite's.

Which package that is changes with every security update and point release, so it is found at
run time, never written into a test:

- `find_live` (`find_ahead` on the machine's archive) reads the main and security suites'
  Packages indexes with imagelock's own index code and picks, deterministically, the two
  packages with the smallest dependency closures (fewest bytes to download and build) whose
  security version can replace the main one without moving anything else: its Depends and
  Pre-Depends are met by the main closure's versions, and nothing in that closure Breaks or
  Conflicts with it. The closures only rank by cost; whether a new version can stand in is
  checked with python-debian's relations and version comparison, not imagelock's resolver, so
  the behaviour under test does not choose the examples it is tested on. The first package is
  the one upgraded; the second (also newer in the security suite) must stay where it was.
- When the live archive has no such package (a security suite can legitimately be empty or
  behind main right after a point release), that is not a defect of imagelock, and neither a
  red test nor a skip would be honest: the CVE day then runs on `generated_archive`, a signed
  archive made at test time where the security suite is ahead by construction.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from deb_archive import Pkg, make_key, serve, stop_agent, write_suite
from debian.deb822 import PkgRelation
from debian.debian_support import Version
from imagelock.formats.debian import DEFAULT_KEYRING, DebianSource
from imagelock.lock.debian.lock import load_universe
from imagelock.lock.debian.resolver import Candidate, Universe, resolve
from imagelock.fetch.store import Store

__all__ = ["CveDay", "find_ahead", "find_live", "generated_archive"]


@dataclass(frozen=True)
class CveDay:
    """An archive whose security suite is ahead of main, and what a CVE day on it moves."""

    where: str  # said in assertion messages: "the live archive" or "the generated archive"
    main: DebianSource
    security: DebianSource
    packages: tuple[str, ...]  # what the spec asks for
    target: str  # the package the CVE day upgrades (newer in the security suite)
    bystanders: tuple[str, ...]  # in the image and newer in the security suite: must not move
    adds: tuple[str, ...] = ()  # what the target's new version newly needs, sorted

    def sources(self, *, with_security: bool) -> dict[str, DebianSource]:
        out = {"debian": self.main}
        if with_security:
            out["security"] = self.security
        return out

    def spec(self, *, with_security: bool) -> str:
        """imagelock.yaml asking for `packages` from main (and the security suite)."""
        def src(s: DebianSource) -> dict[str, Any]:
            d: dict[str, Any] = {"kind": "debian", "suites": list(s.suites)}
            if s.mirrors:
                d["mirrors"] = list(s.mirrors)
            if s.keyring != DEFAULT_KEYRING:
                d["keyring"] = s.keyring
            return d

        doc = {
            "version": 1,
            "image": {"name": "cve/day"},
            "source_date_epoch": 1767225600,
            "sources": {n: src(s) for n, s in self.sources(with_security=with_security).items()},
            "contents": {"debian": {"packages": list(self.packages)}},
        }
        return yaml.safe_dump(doc, sort_keys=False)


# -- the live archive ---------------------------------------------------------------------------

def _groups(text: str) -> list[list[dict[str, Any]]]:
    return PkgRelation.parse_relations(text) if text.strip() else []  # type: ignore[return-value]


def _holds(rel: dict[str, Any], version: str) -> bool:
    if rel.get("version") is None:
        return True
    op, want = rel["version"]
    have, want_v = Version(version), Version(want)
    return {"<<": have < want_v, "<": have <= want_v, "<=": have <= want_v, "=": have == want_v,
            ">=": have >= want_v, ">": have >= want_v, ">>": have > want_v}[op]


def _replaceable(new: Candidate, closure: dict[str, Candidate]) -> bool:
    """Can `new` stand in for its name in `closure` with every other member unchanged?"""
    after = {**closure, new.name: new}
    # Its own dependencies are met by what is already there (by name: a virtual counts as no).
    for group in _groups(new.pre_depends) + _groups(new.depends):
        if not any(r["name"] in after and _holds(r, after[r["name"]].version) for r in group):
            return False
    # What depends on it still accepts the new version.
    for c in closure.values():
        if c.name == new.name:
            continue
        for group in _groups(c.pre_depends) + _groups(c.depends):
            names = {r["name"] for r in group}
            if new.name in names and not any(
                    r["name"] in after and _holds(r, after[r["name"]].version) for r in group):
                return False
        for r in (x for g in _groups(c.breaks) + _groups(c.conflicts) for x in g):
            if r["name"] == new.name and _holds(r, new.version):
                return False
    for r in (x for g in _groups(new.breaks) + _groups(new.conflicts) for x in g):
        if r["name"] in after and r["name"] != new.name and _holds(r, after[r["name"]].version):
            return False
    return True


def _source_package(c: Candidate) -> str:
    """The source package, from the pool path `pool/COMPONENT/PREFIX/SOURCE/file.deb`."""
    parts = c.filename.split("/")
    return parts[3] if len(parts) > 4 else c.name


def find_live(store: Store, main_suite: str = "bookworm",
              security_suite: str = "bookworm-security") -> CveDay | None:
    """A CVE day on the machine's archive (mirrors: its apt sources), or None if it has none."""
    return find_ahead(store, DebianSource(kind="debian", suites=[main_suite]),
                      DebianSource(kind="debian", suites=[security_suite]), "the live archive")


def find_ahead(store: Store, main: DebianSource, security: DebianSource,
               where: str) -> CveDay | None:
    """The two smallest packages newer in `security` that can move alone, or None."""
    _, mu = load_universe({"debian": main}, ["debian"], store, None, "amd64")
    _, su = load_universe({"security": security}, ["security"], store, None, "amd64")
    ahead = {n: su.by_name[n][0] for n, cands in mu.by_name.items()
             if n in su.by_name and Version(su.by_name[n][0].version) > Version(cands[0].version)}
    # Smallest closure first. A closure weighs at least the package itself, so walking the
    # packages by their own size can stop once that exceeds the second-best closure found.
    closures: list[tuple[int, str]] = []
    for name in sorted(ahead, key=lambda n: (mu.by_name[n][0].size, n)):
        if len(closures) >= 2 and mu.by_name[name][0].size > closures[1][0]:
            break
        closure = _closure(mu, [name])
        if closure is None or not _replaceable(ahead[name], closure):
            continue
        closures.append((sum(c.size for c in closure.values()), name))
        closures.sort()
    for _, target in closures:
        for _, bystander in closures:
            if bystander == target or (_source_package(ahead[bystander])
                                       == _source_package(ahead[target])):
                continue
            both = _closure(mu, [target, bystander])
            if both is not None and _replaceable(ahead[target], both):
                return CveDay(where, main, security, tuple(sorted({target, bystander})),
                              target, (bystander,))
    return None


def _closure(universe: Universe, names: list[str]) -> dict[str, Candidate] | None:
    try:
        return {c.name: c for c in resolve(universe, sorted(names)).packages}
    except Exception:  # noqa: BLE001 (not installable alone: not a candidate)
        return None


# -- the generated archive ------------------------------------------------------------------------

LIB = "usr/lib/x86_64-linux-gnu/"
MAIN = [
    Pkg("libcve1", "1.0-1", {LIB + "libcve.so.1": b"libcve 1.0-1\n"}, source="cve",
        fields={"Multi-Arch": "same"}),
    Pkg("cve-tool", "1.0-1", {"usr/bin/cve-tool": b"cve-tool 1.0-1\n"}, source="cve",
        fields={"Depends": "libcve1 (>= 1.0)"}),
    Pkg("libother1", "2.0-1", {LIB + "libother.so.1": b"libother 2.0-1\n"}, source="other"),
    Pkg("libcve-data", "1.0-1", {"usr/share/cve/data": b"data 1.0-1\n"}, arch="all", source="cve-data"),
    Pkg("libfixed1", "1.0-1", {LIB + "libfixed.so.1": b"libfixed 1.0-1\n"}, source="fixed"),
    Pkg("unrelated", "3.0-1", {"usr/bin/unrelated": b"unrelated\n"}),
]
SECURITY = [
    # The fix: a new libcve1 that newly needs libcve-data (from main); the rest of its source
    # (cve-tool) and another library (libother1) are also newer, and must not move with it.
    Pkg("libcve1", "1.0-1+deb1u1", {LIB + "libcve.so.1": b"libcve 1.0-1+deb1u1\n"}, source="cve",
        fields={"Multi-Arch": "same", "Depends": "libcve-data"}),
    Pkg("cve-tool", "1.0-1+deb1u1", {"usr/bin/cve-tool": b"cve-tool 1.0-1+deb1u1\n"}, source="cve",
        fields={"Depends": "libcve1 (>= 1.0-1+deb1u1)"}),
    Pkg("libother1", "2.0-1+deb1u1", {LIB + "libother.so.1": b"libother 2.0-1+deb1u1\n"},
        source="other"),
    Pkg("libfixed1", "1.0-1+deb1u1", {LIB + "libfixed.so.1": b"libfixed 1.0-1+deb1u1\n"},
        source="fixed"),
]


@contextmanager
def generated_archive(tmp: Path) -> Iterator[CveDay]:
    """A signed main and security archive on loopback, the security suite ahead by design."""
    key = make_key(tmp / "gnupg")
    try:
        write_suite(tmp / "www/debian", "cvetest", MAIN, key)
        write_suite(tmp / "www/debian-security", "cvetest-security", SECURITY, key)
    finally:
        stop_agent(key)
    shutil.rmtree(key.home)  # the secret key is not needed any more
    with serve(tmp / "www") as base:
        yield CveDay(
            "the generated archive",
            DebianSource(kind="debian", suites=["cvetest"], mirrors=[f"{base}/debian"],
                         keyring=str(key.keyring)),
            DebianSource(kind="debian", suites=["cvetest-security"],
                         mirrors=[f"{base}/debian-security"], keyring=str(key.keyring)),
            packages=("cve-tool", "libother1"), target="libcve1", bystanders=("cve-tool", "libother1"),
            adds=("libcve-data",),
        )
