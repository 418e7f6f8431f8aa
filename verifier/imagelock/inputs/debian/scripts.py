"""Maintainer-script effects for a lock: run the scripts once (trace.py), record what they did as
plain actions (derive.py), and check that the actions reproduce it.

Called by `imagelock lock` between pinning the packages and recording the expected digests
(`api.lock`). Effects whose inputs did not change (the packages' sha256s, the spec's accounts
and `scripts` settings, SOURCE_DATE_EPOCH, these rules) are kept from the previous lock, so a
re-lock that moves nothing runs no script. Uids and gids that scripts got stay pinned: when the
scripts run again, every account the previous lock recorded for a package still installed
exists beforehand, in the same order (a script that creates it finds it and keeps it), and the
new lock records it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from imagelock.core import progress
from imagelock.core.errors import InputError, ToolUnavailable
from imagelock.fetch.store import Store
from imagelock.formats import maintscripts as ms
from imagelock.formats.debian import DebianPlatformLock
from imagelock.formats.lock import Lock
from imagelock.inputs.debian.accounts import Group, User
from imagelock.inputs.debian.derive import derive_actions
from imagelock.inputs.debian.root import BYTECODE_CACHE, combine, extract_all
from imagelock.inputs.debian.trace import configure_order, run_scripts
from imagelock.sandbox import emulation
from imagelock.tar.entry import Entry

# Changing what the trace runs or how its result becomes actions changes this, so that locks
# made by the old rules are derived again rather than kept.
RULES_VERSION = "1"
_HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def inputs_digest(pl: DebianPlatformLock, lock: Lock, settings: ms.DebianScripts) -> str:
    """What a platform's effects depend on (the acknowledgements only change flags)."""
    doc = {
        "rules": RULES_VERSION,
        "packages": sorted(p.sha256 for p in pl.packages),
        "tools": sorted(p.sha256 for p in pl.script_tools),
        "accounts": lock.accounts.model_dump(mode="json"),
        "sde": lock.source_date_epoch,
        "settings": settings.model_dump(mode="json", exclude={"acknowledge"}),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def acknowledged(item: ms.NotApplied, acks: Sequence[str]) -> bool:
    """Whether the spec's `scripts.acknowledge` covers an item (`PACKAGE` or `PACKAGE: PREFIX`)."""
    for ack in acks:
        pkg, _, what = ack.partition(":")
        if ":" in ack and not what.startswith(" ") and ack.count(":") >= 1:
            # `name:arch` package names: split on ": " only
            pkg, _, what = ack.partition(": ")
        pkg, what = pkg.strip(), what.strip()
        if pkg not in (item.package, item.package.split(":")[0]):
            continue
        if not what or item.what.startswith(what):
            return True
    return False


def with_acknowledgements(effects: ms.ScriptEffects, acks: Sequence[str]) -> ms.ScriptEffects:
    items = [n.model_copy(update={"acknowledged": acknowledged(n, acks)}) for n in effects.not_applied]
    return effects.model_copy(update={"not_applied": items})


def derive_effects(lock: Lock, settings: ms.DebianScripts, store: Store,
                   previous: Lock | None = None) -> Lock:
    """`lock` with each platform's `scripts` effects (see the module doc)."""
    if not settings.apply or not lock.debian:
        return lock
    out: dict[str, DebianPlatformLock] = {}
    for platform, pl in lock.debian.items():
        digest = inputs_digest(pl, lock, settings)
        prev_pl = previous.debian.get(platform) if previous is not None else None
        prev = prev_pl.scripts if prev_pl is not None else None
        if prev is not None and prev.inputs == digest:
            effects = prev
        else:
            progress.working(f"running the maintainer scripts of the {platform} packages")
            effects = _derive(pl, lock, settings, store, digest, platform,
                              [a for a in (prev.actions if prev else []) if isinstance(a, (ms.ScriptUser, ms.ScriptGroup))])
            progress.item(f"maintainer scripts for {platform}: {len(effects.actions)} actions, "
                          f"{len(effects.not_applied)} not applied", "done")
        out[platform] = pl.model_copy(update={"scripts": with_acknowledgements(effects, settings.acknowledge)})
    unknown = [a for a in settings.run if not any(
        a in (p.name for p in pl.packages) for pl in lock.debian.values())]
    if unknown:
        raise InputError(f"scripts.run names packages the lock does not install: {', '.join(unknown)}",
                         field="contents.debian.scripts.run", hint="name installed packages")
    return lock.model_copy(update={"debian": out})


def _derive(pl: DebianPlatformLock, lock: Lock, settings: ms.DebianScripts, store: Store,
            digest: str, platform: str, pinned: Sequence[ms.ScriptUser | ms.ScriptGroup]) -> ms.ScriptEffects:
    arch = platform.split("/")[1]
    host = _HOST_ARCH.get(os.uname().machine)
    if arch != host and any(p.architecture == arch for p in pl.packages):
        # A foreign platform's scripts are its own programs: the kernel hands them to qemu-user
        # (binfmt_misc, F flag, so it works in the sandbox's root), as for build steps.
        # Registered here when root; otherwise the error (exit 4) says how.
        emulation.ensure_binfmt(emulation.machine_of_platform(platform))
    users = [User(u.name, u.uid, u.gid, u.home, u.shell) for u in lock.accounts.users]
    groups = [Group(g.name, g.gid, tuple(g.members)) for g in lock.accounts.groups]
    sde = lock.source_date_epoch
    with tempfile.TemporaryDirectory(prefix="imagelock-scripts-") as tmp:
        work = Path(tmp)
        packages = extract_all(pl.packages, store, work / "stage")
        tools = extract_all(pl.script_tools, store, work / "stage")
        everything = [*packages, *tools]
        order = configure_order(everything)
        installed = {p.db_name for p in packages}
        pinned = [a for a in pinned if a.package in installed]
        # the root the scripts see is the one a build with effects makes (exact dpkg database),
        # with the Essential set they may count on even when the image goes without it
        seed = ms.ScriptEffects(inputs=digest, ran=[], actions=list(pinned))
        pre_all = combine(everything, source_date_epoch=sde, users=users, groups=groups,
                          workdir=work / "ldconfig", effects=seed, effects_workdir=work / "seed")
        pre = pre_all if not tools else combine(
            packages, source_date_epoch=sde, users=users, groups=groups, effects=seed,
            effects_workdir=work / "seed-image")
        try:
            trace = run_scripts(pre_all.entries(), everything, work / "trace",
                                source_date_epoch=sde)
        except ToolUnavailable as e:
            raise ToolUnavailable(
                f"the packages' maintainer scripts run at `lock` time in the rootfs sandbox: "
                f"{e.message}", field="contents.debian.scripts",
                hint=(e.hint or "") + "; or lock without their effects: "
                "contents.debian.scripts.apply: false") from None
        view = {e.path: (e, "") for e in pre.entries()}
        counter = [0]

        def build(effects: ms.ScriptEffects) -> dict[str, Entry]:
            counter[0] += 1
            effects = effects.model_copy(update={"actions": [*pinned, *effects.actions]})
            root = combine(packages, source_date_epoch=sde, users=users, groups=groups,
                           effects=effects, effects_workdir=work / f"check-{counter[0]}",
                           bytecode_cache=store.root / BYTECODE_CACHE)
            return {e.path: e for e in root.entries()}

        actions, not_applied = derive_actions(
            view, trace, order=[p.db_name for p in order],
            alternatives_override=dict(settings.alternatives), run=settings.run, build=build,
            tools={p.db_name for p in tools})
        actions = [*pinned, *actions]
        ran = [f"{pkg} {what}" for pkg, what in trace.ran if pkg in installed]
        shutil.rmtree(work, ignore_errors=True)
    return ms.ScriptEffects(inputs=digest, ran=ran, actions=actions, not_applied=not_applied)
