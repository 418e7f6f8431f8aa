"""A package's script run again at build time, as a hermetic step, for outputs the lock cannot
hold as data (`scripts.run` in the spec, a `run` action in the lock).

The Debian root as the other effects left it is written out and the script runs in it exactly
as at lock time (trace.py: rootfs sandbox, overlayfs, the same shims and environment). Only the
outputs the lock names are taken, each checked against the sha256 it had when the lock was
made: a script that does not give the same bytes every time stops the build.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

from imagelock.core.digest import sha256_file
from imagelock.core.errors import InputError
from imagelock.formats import maintscripts as ms
from imagelock.formats.common import owner_ids
from imagelock.inputs.debian.merge import View
from imagelock.inputs.debian.trace import SCRIPT_TIMEOUT, SHIM_DIR, env_for, write_shims
from imagelock.inputs.steps.rootfs import materialize
from imagelock.sandbox.bwrap import overlay_try
from imagelock.tar.entry import Entry, FileContent


def run_outputs(view: View, changes: dict[str, Entry | None], runs: Sequence[ms.RunScript],
                workdir: Path, *, source_date_epoch: int) -> dict[str, Entry]:
    """The checked outputs of each `run` action, as entries."""
    entries = {p: e for p, (e, _) in view.items()}
    for path, e in changes.items():
        if e is None:
            entries.pop(path, None)
        else:
            entries[path] = e
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    materialize([list(entries.values())], root)
    shims = workdir / "shims"
    write_shims(shims, entries)
    dpkg = "1.21.22"
    arch = _native_arch(entries)
    out: dict[str, Entry] = {}
    for i, a in enumerate(runs):
        script = a.args[0]
        db = a.package
        argv = [f"/var/lib/dpkg/info/{db}.{script}", *a.args[1:]]
        scratch = workdir / f"scratch-{i}"
        scratch.mkdir(exist_ok=True)
        upper, r = overlay_try(root, argv, env=env_for(db.split(":")[0], arch, script, dpkg),
                               source_date_epoch=source_date_epoch,
                               ro_binds=[(shims, SHIM_DIR)], timeout=SCRIPT_TIMEOUT,
                               scratch=scratch, tmpfs=())
        for o in a.outputs:
            f = upper / o.path.lstrip("/")
            try:
                st = f.lstat()
            except FileNotFoundError:
                raise InputError(f"{db} {' '.join(a.args)} made no {o.path} in its build step",
                                 field="contents.debian.scripts.run",
                                 hint="the lock recorded it; re-lock, or drop the package from "
                                 "scripts.run") from None
            got = sha256_file(f)[0] if stat.S_ISREG(st.st_mode) else ""
            if got != o.sha256:
                raise InputError(
                    f"{db} {' '.join(a.args)} made {o.path} with other bytes than when the lock "
                    f"was made (sha256 {got or 'not a file'}, the lock says {o.sha256})",
                    field="contents.debian.scripts.run",
                    hint="the script's output varies run to run: it cannot be a build step")
            uid, gid = owner_ids(o.owner)
            rel = o.path.lstrip("/")
            out[rel] = Entry(rel, "file", int(o.mode, 8), uid, gid,
                             content=FileContent(f, st.st_size))
        if r.returncode != 0 and not a.outputs:
            raise InputError(f"{db} {' '.join(a.args)} failed in its build step ({r.returncode})")
    return out


def _native_arch(entries: dict[str, Entry]) -> str:
    """The image's dpkg architecture (var/lib/dpkg/arch, which locks with effects have)."""
    e = entries.get("var/lib/dpkg/arch")
    if e is not None and e.content is not None:
        with e.content.open() as f:
            return f.read().decode("ascii", "replace").strip() or "amd64"
    return "amd64"



__all__ = ["run_outputs"]
