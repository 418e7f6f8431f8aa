"""`imagelock lock` for Python with source builds: pin the sdist, its build stage and the wheel
it gives, then let pip resolve the rest with that wheel.

pip cannot resolve sdists for another interpreter (`--platform` needs `--only-binary :all:`), and
building metadata would run a project's code on the host. So resolution stays wheels-only, and a
project the spec consents to build (`source_builds`) that pip finds no wheel for is built first:
its sdist is chosen on the source's indexes (the newest that the requirement and the requirement
file's `-c` constraints allow), pinned by sha256, its build requirements resolved as wheels for
the image's Python, and the wheel built in the sandbox by `builder` (the build stage lives with
the Python input kind: `inputs.python.source_build`). The wheel goes into a private find-links
directory and pip runs again, so packages that depend on it resolve as if it were on an index.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from imagelock.core.errors import InputError, ToolUnavailable
from imagelock.fetch.debian import package_urls
from imagelock.fetch.http import fetch_to_store, local_path
from imagelock.fetch.python_index import Indexes, IndexFile, indexes_for, pip_config
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianPackagePin, DebianSource
from imagelock.formats.python import PLATFORM_MACHINE, PythonContents, WheelPin
from imagelock.formats.python_build import SdistPin, SourceBuildPin
from imagelock.lock.python_files import constraint_args, constraints_path
from imagelock.lock.python import (
    _NOT_FOUND,
    _PIP_MAIN,
    _pip_env,
    _pip_failure,
    explain_missing,
    pip_args,
    pins_from_report,
    requirements_path,
    target_markers,
    target_tags,
)

#: PEP 517's fallback for an sdist without pyproject.toml (or without `build-system`), as pip has it.
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
LEGACY_REQUIRES = ("setuptools>=40.8.0",)
_MAX_BUILDS = 50  # source builds in one resolution: a bound, never reached by a real spec
_PYPROJECT_LIMIT = 1 << 20


@dataclass
class BuildPlan:
    """What a build stage holds: the sdist (in the store), backend, and pinned build inputs."""

    name: str
    version: str
    sdist: SdistPin
    backend: str
    backend_path: list[str]
    requires: list[str]
    build_wheels: list[WheelPin]
    build_debian: list[DebianPackagePin]

    def pin(self, wheel: str, wheel_sha256: str) -> SourceBuildPin:
        return SourceBuildPin(name=self.name, version=self.version, sdist=self.sdist,
                              backend=self.backend, backend_path=self.backend_path,
                              requires=self.requires, build_wheels=self.build_wheels,
                              build_debian=self.build_debian, wheel=wheel,
                              wheel_sha256=wheel_sha256)


@dataclass
class BuildOutcome:
    """A build stage's answer: the requirements the backend asked for, and the wheel (None when
    some of those requirements are not among the plan's build wheels: pin them and build again)."""

    requires: list[str]
    wheel: Path | None = None
    log: list[str] = field(default_factory=list)


Builder = Callable[[BuildPlan], BuildOutcome]


class _Missing(Exception):
    def __init__(self, requirement: str, stderr: str) -> None:
        self.requirement, self.stderr = requirement, stderr


def _report(contents: PythonContents, context_dir: Path, indexes: Indexes, platform: str,
            find_links: Path | None, *, with_file: bool = True) -> dict[str, Any]:
    """pip's wheels-only report, with `find_links` searched too; _Missing when a project has no
    fitting wheel (the caller may build it)."""
    reqs = list(contents.requirements)
    req_file = requirements_path(contents, context_dir) if with_file else None
    if req_file is not None:
        reqs += ["-r", str(req_file)]
    # The spec's constraints file bounds the wheels here as in lock_python: without it a set's
    # image with source builds resolved every dependency to its newest release.
    reqs += constraint_args(contents, context_dir)
    with tempfile.TemporaryDirectory(prefix="imagelock-pip-") as tmp:
        report = Path(tmp) / "report.json"
        extra = []
        if find_links is not None:
            # A wheel built here is tagged `linux_ARCH` (it was built for this very image, by
            # its own Python and libraries): accepted from the private find-links directory.
            extra = ["--find-links", str(find_links)]
            machine = PLATFORM_MACHINE.get(platform)
            if machine is not None:
                extra += ["--platform", f"linux_{machine}"]
        # Not --quiet: pip explains a ResolutionImpossible (which dependency lacks a wheel)
        # only at its normal verbosity.
        args = [a for a in pip_args(contents, platform, report, Path(tmp) / "t") if a != "--quiet"]
        cmd = [sys.executable, "-c", _PIP_MAIN, *args, *extra, *reqs]
        try:
            r = subprocess.run(cmd, check=False, capture_output=True, text=True,
                               env=_pip_env(indexes, target_markers(contents, platform)),
                               cwd=context_dir, timeout=3600)
        except OSError as e:
            raise ToolUnavailable(f"could not run pip: {e}", hint="install pip") from None
        if r.returncode != 0:
            m = _NOT_FOUND.search(r.stderr)
            if m:
                raise _Missing(m.group(1), r.stderr)
            # pip explains the conflict on stdout, at its normal verbosity
            wheelless = _conflict_without_wheels(r.stdout + r.stderr, contents, platform, indexes)
            if wheelless is not None:
                raise _Missing(wheelless, r.stderr)
            raise _pip_failure(r.stderr, contents, platform, indexes)
        data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return data


_CONFLICT = re.compile(r"^\s+(?:\S+ \S+ depends on|The user requested(?: \(constraint\))?) (\S.*)$",
                       re.MULTILINE)


def _conflict_without_wheels(stderr: str, contents: PythonContents, platform: str,
                             indexes: Indexes) -> str | None:
    """The requirement behind pip's ResolutionImpossible that no wheel fits, if any.

    A dependency with no fitting wheel (WSME -> simplegeneric) makes pip backtrack through every
    version of its parent and report a conflict rather than the missing wheel."""
    if "The conflict is caused by:" not in stderr:
        return None
    accepted = target_tags(contents, platform)
    for m in _CONFLICT.finditer(stderr.split("The conflict is caused by:", 1)[1]):
        text = m.group(1).strip()
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        project = canonicalize_name(req.name)
        fits = False
        for f in indexes.files(project):
            if f.yanked or not f.filename.endswith(".whl"):
                continue
            try:
                _, version, _, tags = parse_wheel_filename(f.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if tags & accepted and req.specifier.contains(version, prereleases=True):
                fits = True
                break
        if not fits:
            return text
    return None


def constraints_for(project: str, contents: PythonContents, context_dir: Path,
                    markers: Mapping[str, str]) -> SpecifierSet:
    """The version constraints the spec's requirements, its constraints file and its
    requirement file (with the files it names by `-c`/`-r`, inside the context) put on `project`
    for this target."""
    spec = SpecifierSet()
    lines = list(contents.requirements)
    seen: set[Path] = set()
    todo = [p for p in (requirements_path(contents, context_dir),
                        constraints_path(contents, context_dir)) if p is not None]
    root = context_dir.resolve()
    while todo:
        path = todo.pop()
        if path in seen or not path.resolve().is_relative_to(root) or not path.is_file():
            continue
        seen.add(path)
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = raw.split(" #", 1)[0].strip()
            m = re.match(r"^(-c|--constraint|-r|--requirement)[\s=]+(\S+)$", line)
            if m:
                todo.append(path.parent / m.group(2))
            elif line and not line.startswith(("#", "-")):
                lines.append(line)
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) != project:
            continue
        try:
            if req.marker is not None and not req.marker.evaluate(dict(markers)):
                continue
        except (InvalidMarker, ValueError):
            pass
        spec &= req.specifier
    return spec


def choose_sdist(requirement: str, contents: PythonContents, context_dir: Path,
                 indexes: Indexes, platform: str) -> tuple[str, Version, IndexFile]:
    """(project, version, file) of the newest sdist the requirement and the constraints allow."""
    try:
        req = Requirement(requirement)
        project, spec = canonicalize_name(req.name), req.specifier
    except InvalidRequirement:
        project, spec = canonicalize_name(re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0]), SpecifierSet()
    spec &= constraints_for(project, contents, context_dir, target_markers(contents, platform))
    best: tuple[Version, int, IndexFile] | None = None
    for f in indexes.files(project):
        if f.yanked or f.filename.endswith(".whl"):
            continue
        if not f.filename.endswith((".tar.gz", ".zip")):
            continue
        try:
            name, version = parse_sdist_filename(f.filename)
        except (ValueError, InvalidVersion):
            continue
        if name != project or not spec.contains(version, prereleases=bool(spec) and any(
                s.operator in ("==", "===") for s in spec)):
            continue
        if f.requires_python:
            try:
                if not SpecifierSet(f.requires_python).contains(contents.version + ".0", True):
                    continue
            except ValueError:
                pass
        rank = (version, f.filename.endswith(".tar.gz"))  # a .tar.gz before a .zip of one version
        if best is None or rank > (best[0], best[1]):
            best = (version, int(rank[1]), f)
    if best is None:
        raise InputError(f"{requirement}: no wheel fits the image, and the indexes have no "
                         f"source distribution of {project} that {spec or 'any version'} allows",
                         field="contents.python.source_builds",
                         hint="check the constraints, or serve a wheel from an index")
    return project, best[0], best[2]


def _sdist_member(path: Path, filename: str, member: str) -> bytes | None:
    """One top-level member of an sdist (`NAME-VER/pyproject.toml`), bounded, or None."""
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    parts = info.filename.split("/")
                    if len(parts) == 2 and parts[1] == member and info.file_size <= _PYPROJECT_LIMIT:
                        return z.read(info)
            return None
        with tarfile.open(path, "r:gz") as t:
            for m in t:
                parts = m.name.lstrip("./").split("/")
                if len(parts) == 2 and parts[1] == member and m.isreg() and m.size <= _PYPROJECT_LIMIT:
                    f = t.extractfile(m)
                    return f.read() if f is not None else None
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise InputError(f"source distribution {filename} is not a readable archive: {e}",
                         field="contents.python.source_builds") from None
    return None


def build_system(path: Path, filename: str) -> tuple[str, list[str], list[str]]:
    """(backend, backend-path, requires) of an sdist, with PEP 517's fallback when absent."""
    data = _sdist_member(path, filename, "pyproject.toml")
    if data is None:
        return LEGACY_BACKEND, [], list(LEGACY_REQUIRES)
    try:
        doc = tomllib.load(io.BytesIO(data))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{filename}: pyproject.toml is not valid TOML: {e}",
                         field="contents.python.source_builds") from None
    bs = doc.get("build-system")
    if not isinstance(bs, dict):
        return LEGACY_BACKEND, [], list(LEGACY_REQUIRES)
    requires = bs.get("requires", list(LEGACY_REQUIRES))
    backend = bs.get("build-backend") or LEGACY_BACKEND
    path_ = bs.get("backend-path", [])
    if not (isinstance(requires, list) and all(isinstance(r, str) for r in requires)
            and isinstance(backend, str) and isinstance(path_, list)):
        raise InputError(f"{filename}: pyproject.toml's [build-system] is malformed",
                         field="contents.python.source_builds")
    return backend, [str(p) for p in path_], [str(r) for r in requires]


def pin_sdist(f: IndexFile, project: str, store: Store, source: str) -> SdistPin:
    """Fetch the sdist into the store, checked against the sha256 its index lists."""
    digest, size = fetch_to_store(store, [f.url], sha256=f.sha256, what=f"sdist {f.filename}")
    return SdistPin(filename=f.filename, sha256=digest, size=size,
                    location=f"{source}:{project}/{f.filename}")


def build_wheel_pins(requires: Sequence[str], contents: PythonContents, context_dir: Path,
                     indexes: Indexes, platform: str, store: Store) -> list[WheelPin]:
    """The build requirements resolved as wheels for the image's Python (build stage only)."""
    if not requires:
        return []
    build_contents = contents.model_copy(update={
        # The build stage's own wheels, not the image's: the image's constraints do not bound them
        # (as a requirements file's `-c` lines never did).
        "requirements": list(requires), "requirements_file": None, "constraints": None,
        "source_builds": []})
    try:
        report = _report(build_contents, context_dir, indexes, platform, None, with_file=False)
    except _Missing as m:
        raise InputError(f"the build requirement {m.requirement} has no wheel for the image's "
                         "Python: a build backend must come as a wheel",
                         field="contents.python.source_builds",
                         hint="serve a wheel of it from an index or find-links") from None
    return _pins(report, store, contents.source, built={})


def _origin(url: str, built: Mapping[str, SourceBuildPin], filename: str,
            find_links: Sequence[str]) -> str | None:
    if filename in {b.wheel for b in built.values()}:
        return "source-build"
    path = local_path(url)
    if path is not None:
        for fl in find_links:
            base = local_path(fl) if "://" in fl else Path(fl)
            if base is not None and os.path.abspath(path).startswith(os.path.abspath(base) + os.sep):
                return "find-links"
    return None


def _pins(report: dict[str, Any], store: Store, source: str,
          built: Mapping[str, SourceBuildPin]) -> list[WheelPin]:
    find_links = pip_config().find_links
    return pins_from_report(report, store, source,
                            origin=lambda url, filename: _origin(url, built, filename, find_links))


def lock_python_with_builds(
    contents: PythonContents,
    context_dir: Path,
    store: Store,
    mirrors_cli: Mapping[str, list[str]] | None = None,
    *,
    sources: Mapping[str, object] | None = None,
    platform: str = "linux/amd64",
    build_debian: Mapping[str, list[DebianPackagePin]] | None = None,
    image_debian: Sequence[DebianPackagePin] = (),
    builder: Builder,
) -> tuple[list[WheelPin], list[SourceBuildPin]]:
    """Resolve the spec's requirements into wheel pins, building consented sdists on the way.

    `image_debian`: the image's Debian pins, which every build stage holds (fetched here, with
    each stage's `build_debian`, before it is built)."""
    indexes = indexes_for(contents.source, sources, mirrors_cli)
    deb_sources = {k: v for k, v in (sources or {}).items() if isinstance(v, DebianSource)}

    def fetched(plan: BuildPlan) -> BuildOutcome:
        for deb in [*image_debian, *plan.build_debian]:
            fetch_to_store(store, package_urls(deb, deb_sources, mirrors_cli), sha256=deb.sha256,
                           size=deb.size, what=f"package {deb.name} {deb.version}")
        return builder(plan)

    built: dict[str, SourceBuildPin] = {}
    find = Path(tempfile.mkdtemp(prefix="imagelock-built-"))
    try:
        for _ in range(_MAX_BUILDS):
            try:
                report = _report(contents, context_dir, indexes, platform, find)
                break
            except _Missing as m:
                project = canonicalize_name(re.split(r"[^A-Za-z0-9._-]", m.requirement, maxsplit=1)[0])
                if not contents.may_build(project):
                    raise _refused(m.requirement, contents, platform, indexes) from None
                if project in built:
                    raise InputError(
                        f"{m.requirement}: the wheel built from {built[project].sdist.filename} "
                        "does not satisfy it", field="contents.python.source_builds",
                        hint="relax the constraints on it") from None
                pin = _build_one(m.requirement, contents, context_dir, indexes, platform, store,
                                 (build_debian or {}).get(project, []), fetched, find)
                built[project] = pin
        else:
            raise InputError(f"more than {_MAX_BUILDS} source builds in one resolution",
                             field="contents.python.source_builds")
        wheels = _pins(report, store, contents.source, built)
    finally:
        shutil.rmtree(find, ignore_errors=True)
    used = {w.name for w in wheels}
    return wheels, [b for n, b in sorted(built.items()) if n in used]


def _refused(requirement: str, contents: PythonContents, platform: str,
             indexes: Indexes) -> InputError:
    err = explain_missing(requirement, contents, platform, indexes)
    if "only source distributions" in err.message:
        err.hint = (f"consent to building it from source: contents.python.source_builds: "
                    f"[{canonicalize_name(re.split(r'[^A-Za-z0-9._-]', requirement, maxsplit=1)[0])}]")
    return err


def _build_one(requirement: str, contents: PythonContents, context_dir: Path, indexes: Indexes,
               platform: str, store: Store, debian: list[DebianPackagePin], builder: Builder,
               find: Path) -> SourceBuildPin:
    project, version, f = choose_sdist(requirement, contents, context_dir, indexes, platform)
    sdist = pin_sdist(f, project, store, contents.source)
    backend, backend_path, requires = build_system(store.path_for(sdist.sha256), sdist.filename)
    asked = list(requires)
    for _ in range(4):  # the backend may ask for more (get_requires_for_build_wheel)
        plan = BuildPlan(name=project, version=str(version), sdist=sdist, backend=backend,
                         backend_path=backend_path, requires=asked,
                         build_wheels=build_wheel_pins(asked, contents, context_dir, indexes,
                                                       platform, store),
                         build_debian=debian)
        outcome = builder(plan)
        if outcome.wheel is not None:
            digest, _ = store.add_file(outcome.wheel, what=f"wheel built from {sdist.filename}")
            shutil.copyfile(outcome.wheel, find / outcome.wheel.name)
            return plan.pin(outcome.wheel.name, digest)
        more = [r for r in outcome.requires if r not in asked]
        if not more:
            break
        asked += more
    raise InputError(f"the build backend of {sdist.filename} keeps asking for requirements "
                     f"the pins lack: {', '.join(outcome.requires)}",
                     field="contents.python.source_builds")

