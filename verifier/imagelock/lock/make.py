"""The `lock` stage and the lock file itself: spec -> pins -> expected digests -> imagelock.lock.

Also the staleness check every later stage runs first: a lock whose spec changed (by meaning,
not formatting) or whose context gained or lost files is refused with what changed, never
silently re-resolved.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from imagelock import __version__
from imagelock.core import progress
from imagelock.core.errors import InputError
from imagelock.core.names import LOCK_FILENAME, SPEC_FILENAME  # noqa: F401  (re-exported)
from imagelock.fetch.store import Store
from imagelock.formats.common import MAX_EPOCH
from imagelock.formats.debian import DebianLayout, DebianPackagePin, DebianPlatformLock, DebianSource
from imagelock.formats.files import load_spec
from imagelock.formats.lock import (
    LOCK_VERSION,
    CompressionInfo,
    ImageInfo,
    Lock,
    PathPin,
    ToolInfo,
)

from imagelock.formats.python import PythonInstall, WheelPin
from imagelock.formats.python_build import SourceBuildPin
from imagelock.formats.spec import HttpSource, ImageConfig, Spec
from imagelock.lock.context import context_dir, pin_context
from imagelock.lock.debian import debian_arch, lock_debian
from imagelock.lock.downloads import pin_download
from imagelock.lock.python import lock_python, requirements_file_sha256
from imagelock.lock.python_sources import Builder, lock_python_with_builds
from imagelock.lock.python_files import pip_files_sha256
from imagelock.lock.staleness import spec_digests
from imagelock.tar.compress import current as current_compression

DEFAULT_ORDER = ("debian", "python", "files")
STEP_STAGE = "step:"  # build stages of steps among the Debian build requests (never a project)
#: Makes the builder of source builds for one platform: (the image's Debian pins, interpreter,
#: Python version, SOURCE_DATE_EPOCH) -> builder.
SourceBuilderFactory = Callable[[Sequence[DebianPackagePin], str, str, int], Builder]
# Every Debian image gets these unless `contents.debian.exclude` names them: base-passwd's
# accounts give uid 0 a name and the system users services run as (docs/debian.md).
DEFAULT_DEBIAN_PACKAGES = ("base-passwd",)











# The PATH an image gets when its spec sets none (the one Docker and Debian images use).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def layer_order(spec: Spec) -> list[str]:
    """The spec's layer order, checking that every input names a declared layer."""
    used: list[tuple[str, str]] = []
    for i, f in enumerate(spec.contents.files):
        used.append((f.layer or "files", f"contents.files[{i}].layer"))
    for i, d in enumerate(spec.contents.downloads):
        used.append((d.layer or "files", f"contents.downloads[{i}].layer"))
    for i, p in enumerate(spec.paths):
        used.append((p.layer or "files", f"paths[{i}].layer"))
    if spec.contents.python is not None:
        used.insert(0, (spec.contents.python.layer or "python", "contents.python.layer"))
    deb = spec.contents.debian
    if deb is not None:
        used.insert(0, (deb.layer or "debian", "contents.debian.layer"))
        for i, g in enumerate(deb.groups):
            used.insert(i, (g.layer, f"contents.debian.groups[{i}].layer"))
    steps = [(st.layer or st.name, f"steps[{i}].layer") for i, st in enumerate(spec.steps)]
    used += steps
    if spec.image.layers is not None:
        declared = spec.image.layers
        if len(set(declared)) != len(declared):
            raise InputError("a layer name is listed twice", field="image.layers")
        for name, field in used:
            if name not in declared:
                raise InputError(f"layer {name!r} is not declared in image.layers", field=field,
                                 hint=f"add it to image.layers (declared: {declared})")
        unused = [n for n in declared if n not in {u for u, _ in used}]
        if unused:
            raise InputError(f"layers {unused} are declared but no input uses them",
                             field="image.layers", hint="remove them or put inputs in them")
        names = list(declared)
    else:
        # Debian group layers first (they sit under the layer holding the package database).
        names = [g.layer for g in deb.groups if g.layer] if deb is not None else []
        for n in DEFAULT_ORDER:
            if any(u == n for u, _ in used) and n not in names:
                names.append(n)
        for u, _ in used:
            if u not in names:
                names.append(u)
    step_layers = [n for n, _ in steps]
    if steps:
        last_content = max((names.index(u) for u, _ in used if u not in step_layers), default=-1)
        first_step = min(names.index(n) for n in step_layers)
        if first_step < last_content or names[-len(step_layers):] != step_layers:
            raise InputError("step layers must come last, in the order of `steps`",
                             field="image.layers",
                             hint="steps run on the assembled image: list their layers after "
                             "every other layer")
    if deb is not None:
        db_layer = names.index(deb.layer or "debian")
        for i, g in enumerate(deb.groups):
            if names.index(g.layer) > db_layer:
                raise InputError(
                    f"Debian group layer {g.layer!r} comes after the package database's layer "
                    f"{deb.layer or 'debian'!r}", field=f"contents.debian.groups[{i}].layer",
                    hint="order image.layers so the contents' `layer` comes last among Debian layers",
                )
    return names


def source_date_epoch(spec: Spec) -> int:
    if spec.source_date_epoch is not None:
        return spec.source_date_epoch
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not re.fullmatch(r"[0-9]{1,12}", env.strip()):
            raise InputError(f"SOURCE_DATE_EPOCH={env[:20]!r} is not a number of seconds",
                             hint=f"give an integer from 0 to {MAX_EPOCH}")
        value = int(env)
        if value > MAX_EPOCH:
            raise InputError(f"SOURCE_DATE_EPOCH={value} is after the last time a tar header "
                             f"holds ({MAX_EPOCH})", hint=f"give an integer from 0 to {MAX_EPOCH}")
        return value
    return 0






@progress.phase("resolve")
def resolve_lock(
    spec_path: Path,
    *,
    store: Store,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool = False,
    lock_dir: Path | None = None,
    previous: Lock | None = None,
    upgrade: Sequence[str] = (),
    upgrade_security: bool = False,
    notes: list[str] | None = None,
    source_builder: SourceBuilderFactory | None = None,
    spec: Spec | None = None,
    parent: Lock | None = None,
) -> Lock:
    """Resolve the spec at `spec_path` into a lock whose every input is pinned by sha256.

    The lock's `expected` section is empty: recording the digests its build produces is the build
    stage's job (`imagelock.build.expected.record_expected`; `imagelock.api.resolve` does both).

    `lock_dir` is where the lock will be written (default: beside the spec); the lock names the
    spec and the context relative to it. With `previous` (the current lock), Debian pins are kept
    unless named in `upgrade` or no longer needed: re-locking moves only what it must.
    `upgrade_security` also moves every pin a security suite has a newer version of. What an
    upgrade moved besides the names, or left behind and why, is appended to `notes`.
    `source_builder` makes the builder of the spec's consented source builds (the sandboxed
    build stage belongs to a later stage: `imagelock.api.resolve` passes it).
    """
    spec = spec if spec is not None else load_spec(spec_path)
    digest, sections = spec_digests(spec)
    layers = layer_order(spec)
    http_sources = {k: v for k, v in spec.sources.items() if isinstance(v, HttpSource)}
    for i, d in enumerate(spec.contents.downloads):
        unknown = sorted(set(d.platforms or ()) - set(spec.image.platforms))
        if unknown:
            raise InputError(f"contents.downloads[{i}] names platforms the image is not built for: "
                             + ", ".join(unknown), field=f"contents.downloads[{i}].platforms",
                             hint="use some of image.platforms: " + ", ".join(spec.image.platforms))
    downloads = [
        pin_download(d, i, store, http_sources, cli_mirrors, "files", offline=offline)
        for i, d in enumerate(spec.contents.downloads)
    ]
    lock_dir = lock_dir or spec_path.parent
    context = context_dir(spec, spec_path, root=lock_dir)  # no symlink out of the lock's dir
    for what, target in (("spec", spec_path), ("context", context)):
        rel = os.path.relpath(target, lock_dir)
        if rel.startswith(".."):
            raise InputError(f"the lock would name its {what} as {rel}, outside its own directory",
                             hint="write the lock beside the spec (the default) or in a directory "
                             "above it and its context")
    if offline and (spec.contents.debian is not None or spec.contents.python is not None):
        raise InputError("--offline cannot lock Debian or Python contents: resolving them reads "
                         "the archives' signed indexes", hint="lock with network access; build, "
                         "fetch --offline and rebuild --offline then need none")
    build_debian: dict[str, dict[str, list[DebianPackagePin]]] = {}
    if spec.contents.debian is None:
        for i, st in enumerate(spec.steps):
            if st.build_requires_debian:
                raise InputError("build_requires_debian needs Debian contents to resolve against",
                                 field=f"steps[{i}].build_requires_debian",
                                 hint="add contents.debian (the image's Debian packages)")
        if spec.contents.python is not None and spec.contents.python.build_requires_debian:
            raise InputError("build_requires_debian needs Debian contents to resolve against",
                             field="contents.python.build_requires_debian",
                             hint="add contents.debian (the image's Debian packages)")
    wheels = _wheel_names(previous)
    deb_upgrade = [n for n in upgrade if canonicalize_name(n) not in wheels]
    debian, debian_layout = _lock_debian(spec, store, cli_mirrors, previous, deb_upgrade,
                                         upgrade_security, notes, build_debian)
    python, python_install, python_builds = _lock_python(
        spec, spec_path, store, cli_mirrors, debian, build_debian, source_builder, parent,
        previous=previous, upgrade={str(canonicalize_name(n)) for n in upgrade} & wheels,
        notes=notes)
    if (spec.accounts.users or spec.accounts.groups) and not debian:
        raise InputError("accounts need a Debian base (the base-passwd package)",
                         field="accounts", hint="add Debian contents, or ship /etc/passwd and "
                         "/etc/group as context files")
    comp = current_compression()
    lock = Lock(
        lock_version=LOCK_VERSION,
        tool=ToolInfo(name="imagelock", version=__version__),
        spec=Path(os.path.relpath(spec_path, lock_dir)).as_posix(),
        spec_digest=digest,
        spec_sections=sections,
        context=Path(os.path.relpath(context, lock_dir)).as_posix(),
        source_date_epoch=source_date_epoch(spec),
        image=ImageInfo(name=spec.image.name, tag=spec.image.tag),
        platforms=spec.image.platforms,
        compression=CompressionInfo(algorithm="gzip", level=comp.level,
                                    implementation=comp.implementation),
        layers=layers,
        files=pin_context(spec, spec_path, root=lock_dir),
        downloads=downloads,
        paths=[PathPin(**{**p.model_dump(), "layer": p.layer or "files"}) for p in spec.paths],
        debian=debian,
        debian_layout=debian_layout,
        python=python,
        python_install=python_install,
        python_builds=python_builds,
        step_builds=_step_builds(build_debian),
        steps=[st.model_copy(update={"layer": st.layer or st.name}) for st in spec.steps],
        accounts=spec.accounts,
        config=normalise_config(spec.config),
        expected={},
    )
    return lock


def _step_builds(build_debian: Mapping[str, Mapping[str, list[DebianPackagePin]]]
                 ) -> dict[str, dict[str, list[DebianPackagePin]]] | None:
    """The build stages of `stage: build` steps, per platform (None when there are none)."""
    out = {platform: {k[len(STEP_STAGE):]: v for k, v in stages.items() if k.startswith(STEP_STAGE)}
           for platform, stages in build_debian.items()}
    return {k: v for k, v in out.items() if v} or None


def _lock_debian(
    spec: Spec,
    store: Store,
    cli_mirrors: Mapping[str, list[str]],
    previous: Lock | None,
    upgrade: Sequence[str],
    upgrade_security: bool = False,
    notes: list[str] | None = None,
    build_debian: dict[str, dict[str, list[DebianPackagePin]]] | None = None,
) -> tuple[dict[str, DebianPlatformLock], DebianLayout | None]:
    deb = spec.contents.debian
    if deb is None:
        if upgrade:
            raise InputError("--upgrade names packages, but the spec has no Debian contents")
        if upgrade_security and notes is not None:
            notes.append("--upgrade-security: the spec has no Debian contents")
        return {}, None
    sources = {k: v for k, v in spec.sources.items() if isinstance(v, DebianSource)}
    if not sources:
        raise InputError("contents.debian needs at least one source of kind `debian`",
                         field="sources", hint="for example: sources: {debian: {kind: debian, "
                         "suites: [bookworm]}}")
    out = {}
    for platform in spec.image.platforms:
        prev = previous.debian.get(platform) if previous is not None else None
        progress.working(f"resolving Debian packages for {platform}")
        arch = debian_arch(platform)
        py = spec.contents.python
        build_requests = ({str(canonicalize_name(k)): v for k, v in py.build_requires_debian.items()}
                          if py is not None else {})
        build_requests.update({f"{STEP_STAGE}{st.name}": st.build_requires_debian
                               for st in spec.steps if st.build_requires_debian})
        builds: dict[str, list[DebianPackagePin]] = {}
        try:
            tools: list[DebianPackagePin] | None = [] if deb.scripts.apply else None
            indexes, packages = lock_debian(
                sources, deb, store, cli_mirrors,
                previous_pins=prev.packages if prev is not None else None,
                upgrade=set(upgrade), architecture=arch,
                upgrade_security=upgrade_security, notes=notes,
                defaults=DEFAULT_DEBIAN_PACKAGES, tools_out=tools,
                previous_tools=prev.script_tools if prev is not None else (),
                build_requests=build_requests, builds_out=builds,
            )
        except InputError as e:
            # A package may exist for one architecture and not another: say which one failed.
            e.message = f"{e.message} (resolving for {platform}, Debian architecture {arch})"
            raise
        out[platform] = DebianPlatformLock(indexes=indexes, packages=packages,
                                           script_tools=tools or [])
        if build_debian is not None:
            build_debian[platform] = builds
        progress.item(f"{len(packages)} Debian packages for {platform}", "resolved")
    names = {p.name for pl in out.values() for p in pl.packages}
    for i, g in enumerate(deb.groups):
        missing = [n for n in g.packages if n not in names]
        if missing:
            raise InputError(f"group packages not in the lock: {', '.join(missing)}",
                             field=f"contents.debian.groups[{i}].packages",
                             hint="name packages that the resolution installs")
    return out, DebianLayout(layer=deb.layer or "debian", groups=deb.groups)


def _lock_python(
    spec: Spec,
    spec_path: Path,
    store: Store,
    cli_mirrors: Mapping[str, list[str]],
    debian: Mapping[str, DebianPlatformLock],
    build_debian: Mapping[str, Mapping[str, list[DebianPackagePin]]] | None = None,
    source_builder: SourceBuilderFactory | None = None,
    parent: Lock | None = None,
    *,
    previous: Lock | None = None,
    upgrade: set[str] | frozenset[str] = frozenset(),
    notes: list[str] | None = None,
) -> tuple[dict[str, list[WheelPin]], PythonInstall | None, dict[str, list[SourceBuildPin]] | None]:
    py = spec.contents.python
    if py is None:
        return {}, None, None
    if py.python_version is None:
        py = py.model_copy(update={"python_version": _parent_python(parent) if parent is not None
                                   and not debian else _debian_python(debian)})
    ctx = context_dir(spec, spec_path)
    out = {}
    builds: dict[str, list[SourceBuildPin]] = {}
    for platform in spec.image.platforms:
        progress.working(f"resolving Python requirements for {platform}")
        # An image of a set installs its parents' wheels with its own (one installation, so
        # pip sees every requirement at once), each at the version the parent pinned.
        inherited = [f"{w.name}=={w.version}" for w in _parent_wheels(parent, platform)]
        wanted = (py.model_copy(update={"requirements": [*inherited, *py.requirements]})
                  if inherited else py)
        if py.source_builds:
            if source_builder is None:
                raise InputError("source builds run in the sandbox, which this caller of the "
                                 "lock stage did not provide", field="contents.python.source_builds",
                                 hint="lock with `imagelock lock` (imagelock.api.resolve)")
            image = debian[platform].packages if platform in debian else []
            builder = source_builder(image, py.interpreter_path(), py.version,
                                     source_date_epoch(spec))
            out[platform], built = lock_python_with_builds(
                wanted, ctx, store, cli_mirrors, sources=spec.sources, platform=platform,
                build_debian=(build_debian or {}).get(platform, {}), image_debian=image,
                builder=builder)
            if built:
                builds[platform] = built
        else:
            out[platform] = lock_python(
                wanted, ctx, store, cli_mirrors, sources=spec.sources, platform=platform,
                notes=notes,
                # Re-locking keeps the previous wheel pins, as it keeps Debian's, unless upgraded.
                keep=[f"{w.name}=={w.version}" for w in (previous.python.get(platform, [])
                                                         if previous is not None else [])
                      if w.name not in upgrade])
        progress.item(f"{len(out[platform])} wheels for {platform}", "resolved")
    install = PythonInstall(
        layer=py.layer or "python", python_version=py.version,
        site_packages=py.site_packages_dir(), scripts_dir=py.scripts_dir, prefix=py.prefix,
        interpreter=py.interpreter_path(), compile=py.compile,
        requirements_file_sha256=requirements_file_sha256(py, ctx),
        files_sha256=pip_files_sha256(py, ctx),
    )
    return out, install, builds or None


def _wheel_names(previous: Lock | None) -> set[str]:
    """The projects a previous lock pins wheels of (names `--upgrade` may give for wheels)."""
    if previous is None:
        return set()
    return {w.name for pins in previous.python.values() for w in pins}


def _parent_wheels(parent: Lock | None, platform: str) -> list[WheelPin]:
    """The wheels the nearest ancestor with Python contents pinned for `platform`."""
    while parent is not None:
        if parent.python_install is not None:
            return parent.python.get(platform, [])
        parent = parent.parent.lock if parent.parent is not None else None
    return []  # a base outside the set: its wheels are not known


def _parent_python(parent: Lock | None) -> str:
    """The image's Python as its parents know it: their wheels' target, else their Debian one."""
    while parent is not None:
        if parent.python_install is not None:
            return parent.python_install.python_version
        if parent.debian:
            return _debian_python(parent.debian)
        parent = parent.parent.lock if parent.parent is not None else None
    return _debian_python({})


def _debian_python(debian: Mapping[str, DebianPlatformLock]) -> str:
    """The MAJOR.MINOR of the image's Debian interpreter package (`python3.11` -> 3.11)."""
    versions = sorted({m.group(1) for pl in debian.values() for p in pl.packages
                       if (m := re.match(r"^python(3\.[0-9]+)$", p.name))})
    if len(versions) != 1:
        raise InputError(
            "cannot tell the image's Python version from its Debian packages "
            f"({'none' if not versions else ', '.join(versions)} found)",
            field="contents.python.python_version",
            hint='set contents.python.python_version, e.g. "3.11"',
        )
    return versions[0]


def normalise_config(cfg: ImageConfig) -> ImageConfig:
    """The config as the lock records it: PATH defaulted, env and labels sorted by name."""
    env = dict(cfg.env)
    env.setdefault("PATH", DEFAULT_PATH)
    return cfg.model_copy(
        update={"env": dict(sorted(env.items())), "labels": dict(sorted(cfg.labels.items()))}
    )
