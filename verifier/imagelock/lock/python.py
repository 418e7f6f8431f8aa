"""`imagelock lock` for Python: pip resolves the requirements for the image's interpreter; we pin.

pip is the resolver (it knows markers, extras, Requires-Python, yanked files and the machine's
constraints better than anything we would write): `pip install --dry-run --report` for the
target's version, ABI and platform tags, wheels only. Each wheel in the report is fetched into
the store (its size is not in the report; its sha256 is, and is checked) and pinned by project
page and file name, so the lock holds no host: report URLs may be local `file://` paths of this
machine. When no wheel fits, the error lists what the indexes do have for that project.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from imagelock.core.errors import InputError, ToolUnavailable
from imagelock.fetch.http import fetch_to_store
from imagelock.fetch.python_index import Indexes, IndexFile, file_project, indexes_for, pip_config
from imagelock.fetch.store import Store
from imagelock.lock.python_conflict import explain_conflict
from imagelock.lock.python_files import constraint_args, keep_args, pip_files
from imagelock.formats.python import (
    PLATFORM_MACHINE,
    PythonContents,
    WheelPin,
    forbidden_file_option,
)

# pip evaluates environment markers (`; python_version < "3.12"`, `platform_machine == ...`) for
# the interpreter it runs in, even with --python-version; the image's may differ. So pip runs with
# the marker environment of the target laid over its own (the report's `environment` shows it).
_PIP_MAIN = r"""
import json, os, sys
try:
    import pip._vendor.packaging.markers as markers
    _host, _target = markers.default_environment, json.loads(os.environ["IMAGELOCK_PIP_MARKERS"])
    markers.default_environment = lambda: {**_host(), **_target}
except ImportError:
    pass
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+)")
_SHOWN_VERSIONS = 5
_SHOWN_TAGS = 4


def requirements_path(contents: PythonContents, context_dir: Path) -> Path | None:
    """The requirements file inside the context, checked: present, inside, no index options."""
    if contents.requirements_file is None:
        return None
    where = "contents.python.requirements_file"
    path = context_dir / contents.requirements_file
    if not path.resolve().is_relative_to(context_dir.resolve()):
        raise InputError(f"{contents.requirements_file!r} leads outside the context", field=where)
    if not path.is_file():
        raise InputError(f"requirements file {contents.requirements_file!r} is not in the context "
                         f"{context_dir}", field=where)
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        opt = forbidden_file_option(line.split(" #", 1)[0])
        if opt is not None:
            raise InputError(
                f"uses {opt}: the indexes a lock is fetched from are configuration, not input",
                path=path, line=n,
                hint="remove the line; configure indexes with pip config, a `python` source's "
                "mirrors, or --mirror NAME=URL",
            )
    return path


def requirements_file_sha256(contents: PythonContents, context_dir: Path) -> str | None:
    """sha256 of the requirements file, for the lock to notice when it changes."""
    path = requirements_path(contents, context_dir)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


def pip_args(contents: PythonContents, platform: str, report: Path, target: Path) -> list[str]:
    """`pip install` arguments that resolve for the image's interpreter, wheels only."""
    args = [
        "install", "--dry-run", "--ignore-installed", "--report", str(report),
        "--only-binary", ":all:", "--python-version", contents.version,
        "--implementation", contents.implementation, "--abi", contents.abi_tag(),
        # Not --quiet: pip says "The conflict is caused by" at info level, on stdout.
        "--target", str(target), "--no-input", "--disable-pip-version-check",
    ]
    for tag in contents.platform_tags(platform):
        args += ["--platform", tag]
    return args


def target_markers(contents: PythonContents, platform: str) -> dict[str, str]:
    """PEP 508 marker values of the image's interpreter that can differ from the build's."""
    out = {"python_version": contents.version, "os_name": "posix", "sys_platform": "linux",
           "platform_system": "Linux", "implementation_name": "cpython",
           "platform_python_implementation": "CPython"}
    if contents.version != f"{sys.version_info[0]}.{sys.version_info[1]}":
        # Only MAJOR.MINOR is known; the patch level of the image's Python is not.
        out["python_full_version"] = out["implementation_version"] = contents.version + ".0"
    if platform in PLATFORM_MACHINE:
        out["platform_machine"] = PLATFORM_MACHINE[platform]
    return out


def _pip_env(indexes: Indexes, markers: dict[str, str]) -> dict[str, str]:
    """The caller's environment, with the source's indexes when they are not pip's own.

    pip ignores an empty PIP_EXTRA_INDEX_URL (the configured extra indexes would come back), so
    a single mirror is given as the extra index too: the same index twice lists the same files.
    """
    env = {**os.environ, "IMAGELOCK_PIP_MARKERS": json.dumps(markers)}
    if tuple(indexes.index_urls) == pip_config().index_urls:
        return env
    if indexes.index_urls:
        env["PIP_INDEX_URL"] = indexes.index_urls[0]
        env["PIP_EXTRA_INDEX_URL"] = " ".join(indexes.index_urls[1:] or indexes.index_urls[:1])
        env.pop("PIP_NO_INDEX", None)
    else:
        env["PIP_NO_INDEX"] = "1"
    return env


def run_pip_report(
    contents: PythonContents,
    context_dir: Path,
    indexes: Indexes,
    platform: str,
    keep: Sequence[str] = (),
) -> dict[str, Any]:
    """pip's installation report for the requirements (raises InputError when none resolves).
    `keep`: `NAME==VERSION` constraints (the previous lock's pins, to move only what must)."""
    reqs = list(contents.requirements)
    req_file = requirements_path(contents, context_dir)
    if req_file is not None:
        reqs += ["-r", str(req_file.absolute())]  # pip runs in the context directory
    reqs += constraint_args(contents, context_dir)
    with tempfile.TemporaryDirectory(prefix="imagelock-pip-") as tmp:
        reqs += keep_args(keep, Path(tmp))
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-c", _PIP_MAIN,
               *pip_args(contents, platform, report, Path(tmp) / "t"), *reqs]
        markers = target_markers(contents, platform)
        try:
            r = subprocess.run(cmd, check=False, capture_output=True, text=True,
                               env=_pip_env(indexes, markers),
                               cwd=context_dir, timeout=3600)
        except OSError as e:
            raise ToolUnavailable(f"could not run pip: {e}", hint="install pip") from None
        if r.returncode != 0:
            raise _pip_failure(r.stderr, contents, platform, indexes, stdout=r.stdout)
        data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    seen = data.get("environment", {})
    wrong = {k: seen.get(k) for k, v in markers.items() if seen.get(k) != v}
    if wrong:
        raise ToolUnavailable(
            f"pip evaluated environment markers for {wrong}, not for the image's {markers}",
            hint=f"run imagelock with Python {contents.version}, or a pip whose vendored "
            "packaging can be told the target (pip >= 22.2)")
    return data


def _pip_failure(stderr: str, contents: PythonContents, platform: str, indexes: Indexes,
                 stdout: str = "") -> InputError:
    m = _NOT_FOUND.search(stderr)
    conflict = explain_conflict(stderr + "\n" + stdout, contents)
    if conflict is not None:
        return conflict
    if m:
        return explain_missing(m.group(1), contents, platform, indexes)
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    return InputError(
        "pip could not resolve the Python requirements:\n  " + "\n  ".join(lines[-15:]),
        field="contents.python",
        hint="relax or pin the conflicting requirements",
    )


def target_tags(contents: PythonContents, platform: str) -> set[Tag]:
    """Every wheel tag the image's interpreter accepts (what pip was asked for)."""
    version = tuple(int(x) for x in contents.version.split("."))
    plats = contents.platform_tags(platform)
    interp = f"{contents.implementation}{contents.nodot}"
    return set(cpython_tags(version, [contents.abi_tag()], plats)) | set(
        compatible_tags(version, interp, plats))


def _fits_python(f: IndexFile, python_version: str) -> bool:
    if not f.requires_python:
        return True
    try:
        return SpecifierSet(f.requires_python).contains(python_version + ".0", prereleases=True)
    except InvalidSpecifier:
        return True


def explain_missing(
    requirement: str, contents: PythonContents, platform: str, indexes: Indexes
) -> InputError:
    """The error for a requirement no wheel satisfies, listing what the indexes do have."""
    try:
        req = Requirement(requirement)
        name, spec = req.name, req.specifier
    except InvalidRequirement:
        name, spec = re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0], SpecifierSet()
    project = canonicalize_name(name)
    target = f"{contents.implementation}{contents.nodot}/{contents.abi_tag()}/{platform}"
    field = "contents.python"
    files = [f for f in indexes.files(project) if not f.yanked and file_project(f.filename) == project]
    if not files:
        where = f"{len(indexes.index_urls)} indexes and {len(indexes.find_links)} find-links"
        problems = ("; " + "; ".join(indexes.problems[-3:])) if indexes.problems else ""
        return InputError(f"{requirement}: no project {project!r} on the configured {where}"
                          f"{problems}", field=field,
                          hint="check the name, and pip's index configuration (pip config list)")
    accepted = target_tags(contents, platform)
    wheels: dict[Version, list[tuple[IndexFile, frozenset[Tag]]]] = {}
    sdists: set[Version] = set()
    for f in files:
        try:
            if f.filename.endswith(".whl"):
                _, ver, _, tags = parse_wheel_filename(f.filename)
                wheels.setdefault(ver, []).append((f, tags))
            else:
                sdists.add(parse_sdist_filename(f.filename)[1])
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
    in_spec = sorted((v for v in set(wheels) | sdists if spec.contains(v, prereleases=True)),
                     reverse=True)
    fitting = sorted((v for v, ws in wheels.items()
                      if any(tags & accepted and _fits_python(f, contents.version)
                             for f, tags in ws)), reverse=True)
    if fitting and not any(v in fitting for v in in_spec):
        return InputError(
            f"{requirement}: wheels for {target} exist only for versions "
            f"{_versions(fitting)}, none of which the requirement allows",
            field=field, hint="relax the version requirement (for a dependency: pin its parent "
            "to a version that accepts these)")
    shown = [v for v in in_spec if v in wheels][:3]
    if shown:
        lines = []
        for v in shown:
            near = _closest_first(wheels[v], accepted)
            more = f" (+{len(near) - _SHOWN_TAGS} more)" if len(near) > _SHOWN_TAGS else ""
            lines.append(f"{v}: {', '.join(near[:_SHOWN_TAGS])}{more}")
        src = f"; source distributions only: {_versions([v for v in in_spec if v not in wheels])}" \
            if any(v not in wheels for v in in_spec) else ""
        return InputError(
            f"{requirement}: no wheel fits {target} "
            f"(platform tags up to {contents.platform_tags(platform)[0]}). The indexes have:\n  "
            + "\n  ".join(lines) + src,
            field=field,
            hint="pick a version with a wheel for this target, change `python_version` or "
            "`platforms`, or build the wheel in a build step and serve it from a find-links "
            "directory")
    return InputError(
        f"{requirement}: {project} has only source distributions"
        + (f" (versions {_versions(in_spec)})" if in_spec else "")
        + "; imagelock installs wheels only, so nothing runs a build at install time",
        field=field,
        hint=f"let imagelock build it from source, pinned and in the sandbox: "
        f"contents.python.source_builds: [{project}] (docs/python.md)")


def _closest_first(wheels: list[tuple[IndexFile, frozenset[Tag]]], accepted: set[Tag]) -> list[str]:
    """Wheel tag strings of one version, those nearest the target (same interpreter and ABI,
    then same machine) first, so the few shown are the telling ones."""
    interpreters = {(t.interpreter, t.abi) for t in accepted}
    platforms = {t.platform for t in accepted}
    machines = {p.rsplit("_", 1)[-1] for p in platforms if p != "any"}
    ranked: dict[str, int] = {}
    for f, tags in wheels:
        text = f.filename[:-4].split("-", 2)[2] if f.filename.count("-") >= 4 else f.filename
        score = 4 * any((t.interpreter, t.abi) in interpreters for t in tags)
        score += max(2 if t.platform in platforms else int(
            t.platform.startswith(("manylinux", "musllinux", "linux"))
            and t.platform.rsplit("_", 1)[-1] in machines) for t in tags)
        ranked[text] = max(ranked.get(text, 0), score)
    return sorted(ranked, key=lambda t: (-ranked[t], t))


def _versions(vs: list[Version]) -> str:
    head = ", ".join(str(v) for v in vs[:_SHOWN_VERSIONS])
    return head + (f" (+{len(vs) - _SHOWN_VERSIONS} older)" if len(vs) > _SHOWN_VERSIONS else "")


def _report_wheel(item: dict[str, Any]) -> tuple[str, str, str, str, str | None, bool]:
    """(name, version, filename, url, sha256 or None, requested) of one report entry."""
    meta = item.get("metadata", {})
    name = canonicalize_name(meta.get("name", ""))
    info = item.get("download_info", {})
    url = info.get("url", "")
    if item.get("is_direct"):
        raise InputError(f"{name} comes from a direct URL or path, not an index",
                         field="contents.python",
                         hint="serve the wheel from an index or find-links directory and name "
                         "the project instead")
    filename = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    if not filename.endswith(".whl"):
        raise InputError(f"{name}: pip chose {filename}, which is not a wheel",
                         field="contents.python", hint="imagelock installs wheels only")
    archive = info.get("archive_info") or {}
    sha = (archive.get("hashes") or {}).get("sha256")
    if sha is None and str(archive.get("hash", "")).startswith("sha256="):
        sha = archive["hash"].split("=", 1)[1]
    return name, str(meta.get("version", "")), filename, url, sha, bool(item.get("requested"))


def pins_from_report(report: dict[str, Any], store: Store, source: str,
                     origin: Callable[[str, str], str | None] | None = None) -> list[WheelPin]:
    """Pin every wheel of a pip report, fetching each into the store to learn (and keep) it.
    `origin(url, filename)` says where a wheel came from when not an index (source builds)."""
    pins: list[WheelPin] = []
    for item in report.get("install", []):
        name, version, filename, url, sha, requested = _report_wheel(item)
        digest, size = fetch_to_store(store, [url], sha256=sha, what=f"wheel {filename}")
        pins.append(WheelPin(name=name, version=version, filename=filename, sha256=digest,
                             size=size, location=f"{source}:{name}/{filename}", requested=requested,
                             origin=origin(url, filename) if origin is not None else None))  # type: ignore[arg-type]
    return sorted(pins, key=lambda p: (p.name, p.filename))


def lock_python(
    contents: PythonContents,
    context_dir: Path,
    store: Store,
    mirrors_cli: Mapping[str, list[str]] | None = None,
    *,
    sources: Mapping[str, object] | None = None,
    platform: str = "linux/amd64",
    keep: Sequence[str] = (),
    notes: list[str] | None = None,
) -> list[WheelPin]:
    """Resolve the spec's Python requirements for one image platform into wheel pins. `keep`
    (`NAME==VERSION`, a previous lock's pins) holds versions unless the spec now needs others:
    then they are resolved afresh, and `notes` says so."""
    indexes = indexes_for(contents.source, sources, mirrors_cli)
    try:
        report = run_pip_report(contents, context_dir, indexes, platform, keep)
    except InputError:
        if not keep:
            raise
        report = run_pip_report(contents, context_dir, indexes, platform)
        if notes is not None:
            notes.append(f"the previous wheel pins do not fit the spec any more ({platform}): "
                         "resolved afresh")
    pins = pins_from_report(report, store, contents.source)
    if notes is not None:
        notes += held_back_notes(pins, contents, context_dir, indexes, platform, keep)
    return pins


def held_back_notes(pins: list[WheelPin], contents: PythonContents, context_dir: Path,
                    indexes: Indexes, platform: str, keep: Sequence[str]) -> list[str]:
    """`lock`'s warnings about pins held at an old version for want of a wheel."""
    # lazy: reading every pinned project's index page is for `lock` with notes only
    from imagelock.lock.python_old import exact_pins, old_version_notes

    files = [p for p in pip_files(contents, context_dir).values()]
    fixed = exact_pins(files) | {canonicalize_name(k.split("==", 1)[0]) for k in keep}
    target = f"{contents.implementation}{contents.nodot}/{contents.abi_tag()}/{platform}"
    return [f"warning: {n}" for n in old_version_notes(
        pins, indexes, target_tags(contents, platform), contents.version, target, fixed)]
