"""The `lock` stage and the lock file itself: spec -> pins -> expected digests -> imagelock.lock.

Also the staleness check every later stage runs first: a lock whose spec changed (by meaning,
not formatting) or whose context gained or lost files is refused with what changed, never
silently re-resolved.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import __version__
from .atomic import atomic_file
from .build.config import normalise_config
from .build.image import build_images
from .compress import current as current_compression
from .digest import canonical_json, sha256_digest
from .errors import InputError, StaleLockError
from .fetching import fetch_pins
from .formats.debian import DebianLayout, DebianPlatformLock, DebianSource
from .formats.load import load_json_model, load_yaml_model
from .formats.lock import (
    LOCK_VERSION,
    CompressionInfo,
    ContextPin,
    ExpectedImage,
    ExpectedLayer,
    ImageInfo,
    Lock,
    PathPin,
    ToolInfo,
)
from .formats.python import PythonInstall, WheelPin
from .formats.spec import HttpSource, Spec
from .names import LOCK_FILENAME, SPEC_FILENAME  # noqa: F401  (re-exported)
from .oci.image import Image
from .resolve.context import pin_file_input
from .resolve.debian import debian_arch, lock_debian
from .resolve.downloads import pin_download
from .resolve.python import lock_python, requirements_file_sha256
from .store import Store

DEFAULT_ORDER = ("debian", "python", "files")


def load_spec(path: Path) -> Spec:
    return load_yaml_model(path, Spec, "spec")


def read_lock(path: Path) -> Lock:
    lock = load_json_model(path, Lock, "lock")
    return lock


def lock_bytes(lock: Lock) -> bytes:
    """The lock's exact bytes: fixed key order, two-space indent, UTF-8, final newline."""
    data = lock.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_lock(lock: Lock, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(lock_bytes(lock))


def spec_digests(spec: Spec) -> tuple[str, dict[str, str]]:
    """Digest of the normalised spec (values that differ from their defaults) and of each section.

    Leaving defaults out means a spec that spells out a default, and a lock made before a new
    optional field existed, are not stale.
    """
    data = spec.model_dump(mode="json", exclude_defaults=True)
    sections = {k: sha256_digest(canonical_json(v)) for k, v in data.items()}
    return sha256_digest(canonical_json(data)), dict(sorted(sections.items()))


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
        try:
            value = int(env)
        except ValueError:
            raise InputError(f"SOURCE_DATE_EPOCH={env!r} is not an integer") from None
        if value < 0:
            raise InputError("SOURCE_DATE_EPOCH must not be negative")
        return value
    return 0


def context_dir(spec: Spec, spec_path: Path) -> Path:
    ctx = (spec_path.parent / spec.context)
    if not ctx.is_dir():
        raise InputError(f"context directory {ctx} does not exist", path=spec_path, field="context")
    return ctx


def pin_context(spec: Spec, spec_path: Path, *, hash_files: bool = True) -> list[ContextPin]:
    ctx = context_dir(spec, spec_path)
    pins: list[ContextPin] = []
    for i, item in enumerate(spec.contents.files):
        pins.extend(pin_file_input(item, i, ctx, spec_path, "files", hash_files=hash_files))
    return pins


def make_lock(
    spec_path: Path,
    *,
    store: Store,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool = False,
    lock_dir: Path | None = None,
    previous: Lock | None = None,
    upgrade: Sequence[str] = (),
) -> Lock:
    """Resolve the spec at `spec_path` into a complete lock (expected digests included).

    `lock_dir` is where the lock will be written (default: beside the spec); the lock names the
    spec and the context relative to it. With `previous` (the current lock), Debian pins are kept
    unless named in `upgrade` or no longer needed: re-locking moves only what it must.
    """
    spec = load_spec(spec_path)
    digest, sections = spec_digests(spec)
    layers = layer_order(spec)
    http_sources = {k: v for k, v in spec.sources.items() if isinstance(v, HttpSource)}
    downloads = [
        pin_download(d, i, store, http_sources, cli_mirrors, "files", offline=offline)
        for i, d in enumerate(spec.contents.downloads)
    ]
    lock_dir = lock_dir or spec_path.parent
    for what, target in (("spec", spec_path), ("context", context_dir(spec, spec_path))):
        rel = os.path.relpath(target, lock_dir)
        if rel.startswith(".."):
            raise InputError(f"the lock would name its {what} as {rel}, outside its own directory",
                             hint="write the lock beside the spec (the default) or in a directory "
                             "above it and its context")
    if offline and (spec.contents.debian is not None or spec.contents.python is not None):
        raise InputError("--offline cannot lock Debian or Python contents: resolving them reads "
                         "the archives' signed indexes", hint="lock with network access; build, "
                         "fetch --offline and rebuild --offline then need none")
    debian, debian_layout = _lock_debian(spec, store, cli_mirrors, previous, upgrade)
    python, python_install = _lock_python(spec, spec_path, store, cli_mirrors, debian)
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
        context=Path(os.path.relpath(context_dir(spec, spec_path), lock_dir)).as_posix(),
        source_date_epoch=source_date_epoch(spec),
        image=ImageInfo(name=spec.image.name, tag=spec.image.tag),
        platforms=spec.image.platforms,
        compression=CompressionInfo(algorithm="gzip", level=comp.level,
                                    implementation=comp.implementation),
        layers=layers,
        files=pin_context(spec, spec_path),
        downloads=downloads,
        paths=[PathPin(**{**p.model_dump(), "layer": p.layer or "files"}) for p in spec.paths],
        debian=debian,
        debian_layout=debian_layout,
        python=python,
        python_install=python_install,
        steps=[st.model_copy(update={"layer": st.layer or st.name}) for st in spec.steps],
        accounts=spec.accounts,
        config=normalise_config(spec.config),
        expected={},
    )
    fetch_pins(lock, spec.sources, store, cli_mirrors=cli_mirrors, offline=offline)
    with tempfile.TemporaryDirectory(prefix="imagelock-lock-") as tmp:
        images = build_images(lock, context=context_dir(spec, spec_path), store=store, workdir=Path(tmp))
        return lock.model_copy(update={"expected": expected_of(images)})


def _lock_debian(
    spec: Spec,
    store: Store,
    cli_mirrors: Mapping[str, list[str]],
    previous: Lock | None,
    upgrade: Sequence[str],
) -> tuple[dict[str, DebianPlatformLock], DebianLayout | None]:
    deb = spec.contents.debian
    if deb is None:
        if upgrade:
            raise InputError("--upgrade names packages, but the spec has no Debian contents")
        return {}, None
    sources = {k: v for k, v in spec.sources.items() if isinstance(v, DebianSource)}
    if not sources:
        raise InputError("contents.debian needs at least one source of kind `debian`",
                         field="sources", hint="for example: sources: {debian: {kind: debian, "
                         "suites: [bookworm]}}")
    out = {}
    for platform in spec.image.platforms:
        prev = previous.debian.get(platform) if previous is not None else None
        indexes, packages = lock_debian(
            sources, deb, store, cli_mirrors,
            previous_pins=prev.packages if prev is not None else None,
            upgrade=set(upgrade), architecture=debian_arch(platform),
        )
        out[platform] = DebianPlatformLock(indexes=indexes, packages=packages)
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
) -> tuple[dict[str, list[WheelPin]], PythonInstall | None]:
    py = spec.contents.python
    if py is None:
        return {}, None
    if py.python_version is None:
        py = py.model_copy(update={"python_version": _debian_python(debian)})
    ctx = context_dir(spec, spec_path)
    out = {
        platform: lock_python(py, ctx, store, cli_mirrors, sources=spec.sources, platform=platform)
        for platform in spec.image.platforms
    }
    install = PythonInstall(
        layer=py.layer or "python", python_version=py.version,
        site_packages=py.site_packages_dir(), scripts_dir=py.scripts_dir, prefix=py.prefix,
        interpreter=py.interpreter_path(), compile=py.compile,
        requirements_file_sha256=requirements_file_sha256(py, ctx),
    )
    return out, install


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


def expected_of(images: list[Image]) -> dict[str, ExpectedImage]:
    out = {}
    for img in images:
        diff_ids = json.loads(img.config)["rootfs"]["diff_ids"]
        out[img.platform] = ExpectedImage(
            config_digest=img.config_digest,
            manifest_digest=img.manifest_digest,
            layers=[
                ExpectedLayer(name=name, diff_id=d, digest=b.digest, size=b.size)
                for name, d, b in zip(_layer_names(img), diff_ids, img.layers, strict=True)
            ],
        )
    return out


def _layer_names(img: Image) -> list[str]:
    history = json.loads(img.config).get("history", [])
    return [str(h.get("created_by", "")).removeprefix("imagelock layer ") for h in history]


def check_fresh(lock: Lock, lock_path: Path, *, require_spec: bool = False) -> Path | None:
    """Refuse a stale lock; return the spec path when the spec was found and checked."""
    spec_path = lock_path.parent / lock.spec
    if not spec_path.is_file():
        if require_spec:
            raise InputError(f"the lock's spec {spec_path} is missing", path=lock_path, field="spec")
        return None
    spec = load_spec(spec_path)
    digest, sections = spec_digests(spec)
    if digest != lock.spec_digest:
        changed = [k for k in sorted(set(sections) | set(lock.spec_sections))
                   if sections.get(k) != lock.spec_sections.get(k)]
        raise StaleLockError(
            f"the lock is stale: the spec changed since it was made (changed: "
            f"{', '.join(changed) or 'format'})",
            path=lock_path,
            hint=f"run `imagelock lock {spec_path}` to update the lock, then review its diff",
        )
    if lock.python_install is not None and spec.contents.python is not None:
        now_req = requirements_file_sha256(spec.contents.python, context_dir(spec, spec_path))
        if now_req != lock.python_install.requirements_file_sha256:
            raise StaleLockError(
                f"the lock is stale: the requirements file "
                f"{spec.contents.python.requirements_file} changed since it was made",
                path=lock_path, hint=f"run `imagelock lock {spec_path}` to update the lock",
            )
    now = {(p.type, p.src, p.dest) for p in pin_context(spec, spec_path, hash_files=False)}
    then = {(p.type, p.src, p.dest) for p in lock.files}
    if now != then:
        added = sorted(s for _, s, _ in now - then)
        removed = sorted(s for _, s, _ in then - now)
        parts = []
        if added:
            parts.append("new in the context: " + ", ".join(added[:5]))
        if removed:
            parts.append("gone from the context: " + ", ".join(removed[:5]))
        raise StaleLockError(
            "the lock is stale: " + "; ".join(parts), path=lock_path,
            hint=f"run `imagelock lock {spec_path}` to update the lock",
        )
    return spec_path
