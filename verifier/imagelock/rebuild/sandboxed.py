"""The build of a lock inside the build-mode sandbox (and, for locks with steps, inside a network namespace): the fetch phase ran outside; this starts `python -m imagelock.rebuild.inside` under bwrap with the store read-only and no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from imagelock.core.atomic import atomic_dir, atomic_file
from imagelock.core.confine import inside
from imagelock.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FETCH_FAILED,
    EXIT_TOOL_UNAVAILABLE,
    EXIT_VERIFICATION_FAILED,
    ImagelockError,
    InputError,
    ToolUnavailable,
)
from imagelock.core.scratch import scratch_dir
from imagelock.formats.files import read_lock
from imagelock.sandbox.bwrap import (
    StepFailed,
    build_sandbox,
    inside_path,
    outside_paths,
    require,
    run_bwrap,
)


def _error_classes() -> dict[str, type[ImagelockError]]:
    found: dict[str, type[ImagelockError]] = {}
    todo: list[type[ImagelockError]] = [ImagelockError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


_ERROR_EXITS = (EXIT_VERIFICATION_FAILED, EXIT_BAD_INPUT, EXIT_FETCH_FAILED, EXIT_TOOL_UNAVAILABLE)


def _inner_error(data: dict[str, Any], returncode: int) -> ImagelockError:
    """The error the sandboxed build reported, as the same class outside."""
    data = outside_paths(data)
    cls = _error_classes().get(str(data.get("error")), ImagelockError)
    err = cls(str(data.get("message")), path=data.get("path"), line=data.get("line"),
              field=data.get("field"), hint=data.get("hint"))
    if err.exit_code != returncode and returncode in _ERROR_EXITS:
        err.exit_code = returncode
    return err


def build_in_sandbox(
    lock_path: Path,
    context: Path | None,
    store: Path,
    output: Path,
    fmt: Literal["oci", "docker-archive"],
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run `building.build_lock(..., offline=True)` under bwrap; return its JSON result.

    Fetch first (outside, with network): inside, a missing input is an error (exit 3). The
    output is written to a private directory beside `output` and moved into place here, so the
    sandbox never sees the rest of the output's directory. `context` None means the lock's own;
    another directory is bound where the lock expects its context. An ImagelockError raised
    inside is raised here as the same class, with its message and hint. Paths go in as
    `inside_path` gives them and come back out as host paths.
    """

    bwrap = require()
    lock_path = Path(os.path.abspath(lock_path))
    lock = read_lock(lock_path)  # bad input is reported before any sandbox starts
    # Both are bound into the sandbox: never a symlink out of the lock's directory.
    ctx = Path(os.path.abspath(inside(lock_path.parent, lock.context, what="context",
                                      path=lock_path, field="context")))
    spec = Path(os.path.abspath(inside(lock_path.parent, lock.spec, what="spec", path=lock_path,
                                       field="spec")))
    store = Path(os.path.abspath(store))
    output = Path(os.path.abspath(output))
    inputs = [lock_path, *([spec] if spec.is_file() else []), *([store] if store.is_dir() else [])]
    extra: list[tuple[Path, str]] = []
    if context is None or os.path.abspath(context) == str(ctx):
        inputs.append(ctx)
    elif not os.path.isdir(context):
        raise InputError(f"the build context {context} is not a directory",
                         hint="give the directory the lock's files come from")
    else:
        extra.append((Path(os.path.abspath(context)), inside_path(ctx)))
    name = "image.tar" if fmt == "docker-archive" else "image"

    def run(stage: Path, tmp: Path) -> dict[str, Any]:
        box = build_sandbox(inputs=inputs, outputs=[stage], tmp=tmp, extra_binds=extra,
                            source_date_epoch=lock.source_date_epoch)
        if os.environ.get("IMAGELOCK_DEBUG"):
            box.env["IMAGELOCK_DEBUG"] = "1"
        cmd = [inside_path(sys.executable), "-I", "-B", "-c", _sandboxed_main(),
               "--lock", inside_path(lock_path), "--context", inside_path(ctx),
               "--store", inside_path(store), "--out", inside_path(stage / name), "--format", fmt]
        r = run_bwrap(box.argv(cmd, "/", bwrap=bwrap), [], stdin=None, capture=True,
                       timeout=timeout, what="the sandboxed build")
        return _result(r)

    with scratch_dir("imagelock-sandbox-tmp-") as tmp:  # a killed run's is removed next time
        if fmt == "oci":
            with atomic_dir(output, replaceable="oci-layout") as stage:
                data = run(stage, tmp)
                for child in (stage / name).iterdir():
                    os.replace(child, stage / child.name)
                (stage / name).rmdir()
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.sandbox-"))
            try:
                with atomic_file(output) as dest:
                    data = run(stage, tmp)
                    os.replace(stage / name, dest)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    data["output"] = str(output)
    return data


def _sandboxed_main() -> str:
    """Python code that runs `imagelock.rebuild.inside` from where the sandbox shows imagelock.

    An editable install finds its source through a `.pth` entry naming the host path, which is
    not there when that path was bound under HOST_PREFIX; site skips missing entries, so the
    bound location is appended (a no-op when imagelock is found at its own path).
    """
    import imagelock  # the package itself, to find where its source is bound

    source = inside_path(Path(imagelock.__file__).parent.parent)
    return (f"import sys; sys.path.append({source!r}); "
            "from imagelock.rebuild.inside import main; sys.exit(main())")


def _result(r: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    """The sandboxed build's JSON result; its error raised as the same class."""
    try:
        data = json.loads(r.stdout)
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        raise _inner_error(data, r.returncode)
    if r.returncode != 0 or not isinstance(data, dict):
        tail = outside_paths(r.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise ToolUnavailable(
            f"the sandboxed build failed (exit {r.returncode}): " + " / ".join(tail),
            hint="IMAGELOCK_DEBUG=1 shows the traceback from inside; `--no-sandbox` tells "
            "whether the sandbox is the cause (a dependency outside the bound paths?)")
    result: dict[str, Any] = outside_paths(data)
    return result


def build_in_netns(lock_path: Path, store: Path, output: Path, *, timeout: float | None = None
                   ) -> dict[str, Any]:
    """Build a lock that has build steps: the whole build in a fresh network namespace (no
    network at all, as root), each step further inside its rootfs-mode sandbox.

    The build-mode sandbox cannot host steps: they mount overlayfs and chown as real root, which
    its user namespace without capabilities forbids by design.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ToolUnavailable("unshare (util-linux) is not installed", hint="apt-get install util-linux")
    if os.geteuid() != 0:
        raise ToolUnavailable("a rebuild with build steps needs root (steps run as real root in "
                              "their sandbox)", hint="run as root, or rebuild with --no-sandbox")
    lock_path = Path(os.path.abspath(lock_path))

    lock = read_lock(lock_path)
    cmd = [unshare, "--net", "--", sys.executable, "-I", "-B", "-m", "imagelock.rebuild.inside",
           "--lock", str(lock_path), "--context", str(Path(os.path.abspath(lock_path.parent / lock.context))),
           "--store", str(os.path.abspath(store)), "--out", str(os.path.abspath(output)),
           "--format", "oci"]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "IMAGELOCK_DEBUG", "TMPDIR")}
    env.update({"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent",
                # a rebuild builds every wheel from source again, whatever the store holds
                "IMAGELOCK_SOURCE_BUILDS": "always"})
    try:
        r = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, cwd="/",
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StepFailed("the build with steps ran out of time") from None
    return _result(r)
