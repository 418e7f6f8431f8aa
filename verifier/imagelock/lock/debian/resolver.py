"""The dependency closure of requested Debian packages: a small greedy resolver that mimics apt.

Pure (no I/O), so it is tested on synthetic Packages texts. What it does, and why:

- Every requested package is marked first, then dependencies are followed depth-first in
  field order (Pre-Depends, then Depends), as `apt-get install` does; an or-group already
  satisfied by a marked package is left alone, so alternatives prefer what is already chosen.
- Otherwise the first satisfiable alternative wins: the real package of that name when its
  candidate satisfies the relation, else a provider (versioned Provides only satisfy
  versioned relations), ordered as apt orders them (Essential, then Priority, then name).
- Each name has one candidate: an exact pin (`name=version` in the spec), else the version in
  the previous lock (`prefer`), else the highest version across all indexes, earlier indexes
  winning ties. When the preferred version of a not-yet-chosen name does not satisfy a
  versioned relation, the highest version that does is taken (apt would give up here).
- Recommends and Suggests are never followed; Essential packages are added only when asked
  (apt never adds them to an empty root either). Excluded packages are never chosen: an
  or-group only they satisfy is dropped and reported in `Resolution.dropped`.
- Multi-Arch in a single-architecture root: `pkg:any` needs `Multi-Arch: allowed`, `pkg:ARCH`
  needs the native architecture; `Architecture: all` counts as native.
- Conflicts and Breaks between chosen packages are refused rather than ignored.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from debian.deb822 import PkgRelation
from debian.debian_support import Version

from imagelock.core.errors import InputError

_PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}
_PROVIDE = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?\s*(?:\(\s*=\s*([^)\s]+)\s*\))?\s*$")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One version of a binary package as an index lists it, and which index that was."""

    name: str
    version: str
    architecture: str
    source: str  # the spec's source name
    suite: str
    filename: str = ""
    size: int = 0
    sha256: str = ""
    multi_arch: str = "no"
    essential: bool = False
    priority: str = "optional"
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    conflicts: str = ""
    breaks: str = ""
    source_package: str = ""  # the index's Source (name only); the package's own name if absent
    order: int = 0  # position of its index in preference order (ties between equal versions)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def candidate_from_record(rec: Mapping[str, str], *, source: str, suite: str, order: int) -> Candidate:
    """A Candidate from a parsed Packages stanza (see index.parse_packages)."""
    return Candidate(
        name=rec["Package"],
        version=rec.get("Version", ""),
        architecture=rec.get("Architecture", ""),
        source=source,
        suite=suite,
        filename=rec.get("Filename", ""),
        size=int(rec.get("Size", "0") or 0),
        sha256=rec.get("SHA256", ""),
        multi_arch=rec.get("Multi-Arch", "no").lower(),
        essential=rec.get("Essential", "no").lower() == "yes",
        priority=rec.get("Priority", "optional").lower(),
        depends=rec.get("Depends", ""),
        pre_depends=rec.get("Pre-Depends", ""),
        provides=rec.get("Provides", ""),
        conflicts=rec.get("Conflicts", ""),
        breaks=rec.get("Breaks", ""),
        source_package=source_name(rec),
        order=order,
    )


def source_name(rec: Mapping[str, str]) -> str:
    """The source package a Packages stanza was built from: `Source` without its version (`openssl
    (3.0.11-1)` -> `openssl`), or the binary's own name when the field is absent (as Debian policy
    5.6.1 says)."""
    words = rec.get("Source", "").split()
    return words[0] if words else rec["Package"]


@functools.cache
def V(s: str) -> Version:
    return Version(s)


@functools.lru_cache(maxsize=65536)
def _relations(text: str) -> list[list[dict[str, Any]]]:
    if not text.strip():
        return []
    # python-debian's TypedDict is only visible to type checkers; a plain dict is what we read.
    return cast("list[list[dict[str, Any]]]", PkgRelation.parse_relations(text))


def version_satisfies(have: str, op: str, want: str) -> bool:
    """Debian relation `have OP want` (`<<`, `<=`, `=`, `>=`, `>>`; legacy `<` and `>`)."""
    a, b = V(have), V(want)
    if op == "=":
        return a == b
    if op in (">=", ">"):
        return a >= b
    if op in ("<=", "<"):
        return a <= b
    if op == ">>":
        return a > b
    if op == "<<":
        return a < b
    raise ValueError(f"unknown version relation {op!r}")


def rel_text(rel: Mapping[str, Any]) -> str:
    """A relation written back the way Debian writes it: `name:any (>= 1.0)`."""
    s = str(rel["name"]) + (f":{rel['archqual']}" if rel.get("archqual") else "")
    if rel.get("version"):
        s += f" ({rel['version'][0]} {rel['version'][1]})"
    return s


@dataclass
class Resolution:
    """The closure: chosen candidates sorted by name, why each is there, and what was dropped."""

    packages: list[Candidate]
    needed_by: dict[str, str | None]  # name -> the package that pulled it in (None: requested)
    dropped: list[str] = field(default_factory=list)  # "pkg: dep" only excluded packages satisfy


class _Restart(Exception):
    """A preferred (previous-lock) version proved too old after it was chosen: release it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Universe:
    """Every candidate of the target architecture, by name and by what it provides."""

    def __init__(self, candidates: Iterable[Candidate], architecture: str,
                 security: Iterable[tuple[str, str]] = ()) -> None:
        self.architecture = architecture
        # (source, suite) pairs whose Release says it is a security suite (Release.security).
        self.security = frozenset(security)
        by_name: dict[str, list[Candidate]] = {}
        for c in candidates:
            if c.architecture in (architecture, "all"):
                by_name.setdefault(c.name, []).append(c)
        for lst in by_name.values():
            if len(lst) > 1:
                # Highest version first; among equal versions the earlier index wins.
                lst.sort(key=lambda c: c.order)
                lst.sort(key=lambda c: V(c.version), reverse=True)
        self.by_name = by_name
        self.providers: dict[str, list[tuple[Candidate, str | None]]] = {}
        for lst in by_name.values():
            for c in lst:
                for virtual, version in self.provided(c):
                    self.providers.setdefault(virtual, []).append((c, version))

    def provided(self, c: Candidate) -> list[tuple[str, str | None]]:
        """(name, version or None) of each Provides entry of `c` for this architecture."""
        out: list[tuple[str, str | None]] = []
        for item in c.provides.split(",") if c.provides else ():
            m = _PROVIDE.match(item)
            if m and m.group(2) in (None, self.architecture, "all"):
                out.append((m.group(1), m.group(3)))
        return out

    def is_security(self, c: Candidate) -> bool:
        """Whether `c` comes from a security suite."""
        return (c.source, c.suite) in self.security

    def candidate(self, name: str, version: str) -> Candidate | None:
        """The candidate of `name` at exactly `version` (the best-placed index's), if listed."""
        want = V(version)
        return next((c for c in self.by_name.get(name, []) if V(c.version) == want), None)

    def names(self) -> list[str]:
        return sorted(set(self.by_name) | set(self.providers))

    def arch_ok(self, c: Candidate, archqual: str | None) -> bool:
        """A single-architecture root: `:any` needs Multi-Arch allowed, `:ARCH` the native one."""
        if archqual is None:
            return True
        if archqual == "any":
            return c.multi_arch == "allowed"
        return archqual == self.architecture

    def satisfies(self, c: Candidate, rel: Mapping[str, Any]) -> bool:
        """Does candidate `c` itself (not its Provides) satisfy `rel`?"""
        if c.name != rel["name"] or not self.arch_ok(c, rel.get("archqual")):
            return False
        v = rel.get("version")
        return v is None or version_satisfies(c.version, v[0], v[1])

    def provides_satisfy(self, c: Candidate, provided: str | None, rel: Mapping[str, Any]) -> bool:
        """Does `c`, providing `rel`'s name at version `provided`, satisfy `rel`?"""
        if not self.arch_ok(c, rel.get("archqual")):
            return False
        v = rel.get("version")
        if v is None:
            return True
        return provided is not None and version_satisfies(provided, v[0], v[1])


def _provider_key(c: Candidate) -> tuple[int, int, str]:
    return (0 if c.essential else 1, _PRIORITY.get(c.priority, 3), c.name)


class Resolver:
    """One resolution run; `resolve()` below is the entry point."""

    def __init__(
        self,
        universe: Universe,
        *,
        pins: Mapping[str, str],
        prefer: Mapping[str, str],
        exclude: Iterable[str],
        released: set[str],
    ) -> None:
        self.u = universe
        self.pins = dict(pins)
        self.prefer = {k: v for k, v in prefer.items() if k not in released and k not in pins}
        self.exclude = set(exclude)
        self.chosen: dict[str, Candidate] = {}
        self.needed_by: dict[str, str | None] = {}
        self.chosen_provides: dict[str, list[tuple[Candidate, str | None]]] = {}
        self.dropped: list[str] = []

    # -- candidates -------------------------------------------------------------------------

    def preferred(self, name: str) -> Candidate | None:
        """The candidate for `name`: exact pin, else previous lock's version, else highest."""
        cands = self.u.by_name.get(name, [])
        want = self.pins.get(name) or self.prefer.get(name)
        if want is None:
            return cands[0] if cands else None
        for c in cands:
            if V(c.version) == V(want):
                return c
        if name in self.pins:
            have = ", ".join(c.version for c in cands) or "none"
            raise InputError(
                f"{name}={want} is not in the indexes (available: {have})",
                hint=f"pin one of the available versions, or drop the pin on {name}",
            )
        raise InputError(
            f"{name} {want}, kept from the previous lock, is no longer in any index",
            hint=f"re-lock with --upgrade {name} to move it to an available version",
        )

    def _mark(self, c: Candidate, parent: str | None) -> None:
        self.chosen[c.name] = c
        self.needed_by[c.name] = parent
        for virtual, version in self.u.provided(c):
            self.chosen_provides.setdefault(virtual, []).append((c, version))

    def _satisfied(self, rel: Mapping[str, Any]) -> bool:
        c = self.chosen.get(rel["name"])
        if c is not None and self.u.satisfies(c, rel):
            return True
        return any(self.u.provides_satisfy(p, v, rel) for p, v in self.chosen_provides.get(rel["name"], []))

    def _options(self, rel: Mapping[str, Any]) -> tuple[list[Candidate], bool, str | None]:
        """Candidates that would satisfy `rel`, best first; whether exclusion removed some;
        and why the real package of that name could not be used."""
        name = rel["name"]
        out: list[Candidate] = []
        excluded = False
        why: str | None = None
        if name in self.exclude:
            excluded = True
        elif name in self.chosen:
            why = f"{self.chosen[name].label} is already chosen"
            if self.prefer.get(name) == self.chosen[name].version and name not in self.pins:
                raise _Restart(name)
        elif name in self.u.by_name:
            best = self.preferred(name)
            if best is not None and self.u.satisfies(best, rel):
                out.append(best)
            elif name not in self.pins:
                ok = [c for c in self.u.by_name[name] if self.u.satisfies(c, rel)]
                if ok:
                    out.append(ok[0])
                else:
                    have = ", ".join(c.version for c in self.u.by_name[name])
                    why = f"available: {name} {have}"
            else:
                why = f"{name} is pinned to {self.pins[name]}"
        provs: list[Candidate] = []
        for p, pv in self.u.providers.get(name, []):
            if p.name in self.exclude:
                excluded = True
                continue
            if p.name in self.chosen and self.chosen[p.name] is not p:
                continue
            pref = self.preferred(p.name) if p.name not in self.chosen else p
            if p is pref and self.u.provides_satisfy(p, pv, rel) and p not in provs:
                provs.append(p)
        provs.sort(key=_provider_key)
        out += [p for p in provs if p not in out]
        return out, excluded, why

    # -- closure ----------------------------------------------------------------------------

    def chain(self, name: str) -> list[str]:
        out = [name]
        seen = {name}
        while (parent := self.needed_by.get(out[-1])) is not None and parent not in seen:
            out.append(parent)
            seen.add(parent)
        return list(reversed(out))

    def _follow(self, root: Candidate) -> None:
        stack: list[tuple[Candidate, Iterator[list[dict[str, Any]]]]] = [(root, self._groups(root))]
        while stack:
            pkg, groups = stack[-1]
            group = next(groups, None)
            if group is None:
                stack.pop()
                continue
            group = [r for r in group if not r.get("arch")]  # arch lists only in source pkgs
            if not group or any(self._satisfied(r) for r in group):
                continue
            chosen: Candidate | None = None
            excluded_any = False
            reasons: list[str] = []
            for rel in group:
                opts, excluded, why = self._options(rel)
                excluded_any = excluded_any or excluded
                if why:
                    reasons.append(why)
                if opts:
                    chosen = opts[0]
                    break
            dep = " | ".join(rel_text(r) for r in group)
            if chosen is None:
                if excluded_any:
                    self.dropped.append(f"{pkg.name}: {dep}")
                    continue
                raise self._unsatisfiable(pkg, dep, reasons)
            self._mark(chosen, pkg.name)
            stack.append((chosen, self._groups(chosen)))

    def _groups(self, c: Candidate) -> Iterator[list[dict[str, Any]]]:
        return iter(_relations(c.pre_depends) + _relations(c.depends))

    def _unsatisfiable(self, pkg: Candidate, dep: str, reasons: list[str]) -> InputError:
        chain = " -> ".join(self.chain(pkg.name)) + f" -> {dep}"
        return InputError(
            f"cannot satisfy {chain} ({pkg.label} from {pkg.source}/{pkg.suite})",
            hint=("; ".join(reasons) + ". " if reasons else "no index provides it. ")
            + "Add the suite that has it, pin another version, or exclude the package "
            "that needs it",
        )

    def run(self, requested: Sequence[str], essential: bool) -> Resolution:
        roots: list[Candidate] = []
        names = list(requested)
        if essential:
            names += sorted(n for n, cs in self.u.by_name.items()
                            if n not in requested and n not in self.exclude
                            and (c := self.preferred(n)) is not None and c.essential)
        for name in names:
            if name in self.exclude:
                raise InputError(f"{name} is both requested and excluded",
                                 hint=f"remove {name} from `packages` or from `exclude`")
            c = self.preferred(name) if name in self.u.by_name else None
            if c is None:
                c = self._only_provider(name)
            if c.name not in self.chosen:
                self._mark(c, None)
                roots.append(c)
        for c in roots:
            self._follow(c)
        self._check_conflicts()
        return Resolution(sorted(self.chosen.values(), key=lambda c: c.name), dict(self.needed_by),
                          self.dropped)

    def _only_provider(self, name: str) -> Candidate:
        provs = sorted({p.name for p, _ in self.u.providers.get(name, [])})
        if len(provs) == 1:
            c = self.preferred(provs[0])
            assert c is not None
            return c
        if provs:
            raise InputError(f"{name} is a virtual package provided by {', '.join(provs)}",
                             hint="request one of them by name")
        close = difflib.get_close_matches(name, self.u.names(), n=4, cutoff=0.7)
        raise InputError(
            f"no package named {name!r} in the indexes",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "check the spelling, the suites and the components of the debian sources",
        )

    def _check_conflicts(self) -> None:
        for c in sorted(self.chosen.values(), key=lambda c: c.name):
            for field_name, text in (("Conflicts", c.conflicts), ("Breaks", c.breaks)):
                for group in _relations(text):
                    for rel in group:
                        if rel.get("arch"):
                            continue
                        other = self.chosen.get(rel["name"])
                        hit = other is not None and other is not c and self.u.satisfies(other, rel)
                        if not hit:
                            hit_p = [p for p, v in self.chosen_provides.get(rel["name"], [])
                                     if p is not c and rel.get("version") is None]
                            other = hit_p[0] if hit_p else None
                            hit = bool(hit_p)
                        if hit and other is not None:
                            raise InputError(
                                f"{c.label} {field_name} {rel_text(rel)}, but {other.label} is "
                                f"also chosen (needed by {' -> '.join(self.chain(other.name))})",
                                hint="exclude one of them or pin versions that go together",
                            )


def resolve(
    universe: Universe,
    requested: Sequence[str],
    *,
    pins: Mapping[str, str] | None = None,
    prefer: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
    essential: bool = False,
) -> Resolution:
    """The closure of `requested` (names, in order) over `universe`.

    `pins`: exact versions from the spec. `prefer`: versions kept from a previous lock; a
    preferred version is given up only when a newly needed relation requires a newer one.
    """
    released: set[str] = set()
    exclude = list(exclude)
    while True:
        r = Resolver(universe, pins=pins or {}, prefer=prefer or {}, exclude=exclude, released=released)
        try:
            return r.run(requested, essential)
        except _Restart as e:
            released.add(e.name)
