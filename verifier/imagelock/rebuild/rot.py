"""The rot monitor (`imagelock inputs check`): for every input of a lock, where it can still be
fetched today (the configured mirrors, the input bundle beside the image, a snapshot archive),
so that a vendor or a rebuilder learns an input is about to be lost while it still can be saved.

Availability is asked without downloading (HEAD requests, the registry's blob HEAD), and a
length that differs from the pin counts as not available. An input that survives only in the
local store, or nowhere, fails the check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagelock.core.errors import FetchError, ImagelockError
from imagelock.fetch.places import LOCAL_STORE, Availability, Fetched, Place, Wanted, fetch_in_order
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec, read_lock
from imagelock.formats.lock import Lock
from imagelock.formats.recipe import TITLE
from imagelock.lock.debian.pin_check import signed_entry
from imagelock.rebuild.inputs import (
    Input,
    InputPlaces,
    PlaceConfig,
    inrelease_input,
    keyring_for,
    lock_inputs,
    packages_input,
)
from imagelock.rebuild.recipe import context_files, requirements_file_of
from imagelock.rebuild.reference import Found, bundle_place, checkout, newest_recipe, open_reference
from imagelock.oci.referrer_sources import ArtifactManifest


@dataclass
class InputState:
    """Where one input is available now."""

    kind: str
    title: str
    what: str
    sha256: str
    in_store: bool
    places: list[tuple[Place | None, str, Availability]] = field(default_factory=list)

    @property
    def survives(self) -> bool:
        """Available somewhere other than this machine's store."""
        return any(a.available for _, _, a in self.places)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "what": self.what, "sha256": self.sha256,
                "local_store": self.in_store, "survives": self.survives,
                "places": [{"place": label, "kind": p.kind if p else "recipe",
                            "available": a.available, "detail": a.detail}
                           for p, label, a in self.places]}


@dataclass
class RotReport:
    """Every input and where it lives; the check fails when one survives nowhere else."""

    subject: str
    inputs: list[InputState]
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> list[InputState]:
        return [i for i in self.inputs if not i.survives]

    @property
    def ok(self) -> bool:
        return not self.lost

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "ok": self.ok, "inputs": [i.as_json() for i in self.inputs],
                "lost": [i.title for i in self.lost], "notes": self.notes}

    def human(self) -> str:
        lines = [f"inputs of {self.subject}: {len(self.inputs)} checked, "
                 f"{len(self.inputs) - len(self.lost)} still available elsewhere than this store"]
        for i in self.inputs:
            where = [label for _, label, a in i.places if a.available]
            if i.in_store:
                where.append(LOCAL_STORE)
            mark = "ok  " if i.survives else ("LOCAL" if i.in_store else "LOST")
            lines.append(f"  {mark} {i.kind:9} {i.title}: {', '.join(where) or 'nowhere'}")
        lines += [f"note: {n}" for n in self.notes]
        if self.lost:
            lines.append(f"FAILED: {len(self.lost)} input(s) survive only in the local store or "
                         "nowhere: " + ", ".join(i.title for i in self.lost[:10]))
        return "\n".join(lines)


def _state(item: Input, places: list[Place], store: Store) -> InputState:
    st = InputState(item.kind, item.title, item.wanted.what, item.wanted.sha256,
                    store.has(item.wanted.sha256))
    for p in places:
        st.places.append((p, p.label, p.probe(item.wanted)))
    return st


def check_inputs(lock: Lock, store: Store, config: PlaceConfig, *, subject: str,
                 keyrings: dict[str, str], recipe: list[tuple[str, Wanted, bool]] | None = None
                 ) -> RotReport:
    """Where every pin of `lock` is available now. `recipe` lists the context files with
    whether the image's recipe still holds each."""
    report = RotReport(subject, [])
    places = InputPlaces(lock, config)
    for item in lock_inputs(lock):
        report.inputs.append(_state(item, places.places(item), store))
    seen: set[str] = set()
    for plock in lock.debian.values():
        for idx in plock.indexes:
            if idx.inrelease_sha256 in seen:
                continue
            seen.add(idx.inrelease_sha256)
            rel = inrelease_input(idx)
            report.inputs.append(_state(rel, places.places(rel, idx), store))
            # Which Packages file to look for is in the InRelease: read it from wherever it is.
            try:
                fetch_in_order(store, rel.wanted, places.places(rel, idx), offline=False,
                               log=Fetched())
                with store.open_verified(rel.wanted.sha256, None, rel.wanted.what) as r:
                    data = r.read()
                entry, _ = signed_entry(idx, data, keyring_for(idx.source, config, keyrings))
            except ImagelockError as e:
                report.notes.append(f"the Packages file of {idx.suite} was not looked for: "
                                    f"{e.message}")
                continue
            pk = packages_input(idx, entry)
            report.inputs.append(_state(pk, places.places(pk, idx), store))
    for title, w, listed in recipe or []:
        st = InputState("context", title, w.what, w.sha256, False)
        st.places.append((None, "recipe", Availability(listed, "in the recipe" if listed else
                                                        "not in the recipe")))
        report.inputs.append(st)
    return report


def _recipe_files(found: Found, art: ArtifactManifest, lock: Lock, spec_path: Path
                  ) -> list[tuple[str, Wanted, bool]]:
    listed = {(d.annotations or {}).get(TITLE): d.digest for d in art.layers}
    out = []
    for f in context_files(lock, requirements_file_of(spec_path, lock.set_image)):
        ok = listed.get(f.title) == "sha256:" + f.sha256 and found.referrers.has_blob(
            "sha256:" + f.sha256)
        out.append((f.title, Wanted(f.sha256, f.size if f.size >= 0 else None,
                                    f"context file {f.title}"), ok))
    return out


def check_reference(
    ref: str, *, store: Store, cli_mirrors: Mapping[str, list[str]],
    cli_snapshots: Mapping[str, list[str]], keyrings: dict[str, str], workdir: Path,
    insecure: bool = False, lock_path: Path | None = None,
) -> RotReport:
    """The rot check of an image's inputs: the lock from `lock_path`, else the image's newest
    recipe; the bundle and the recipe's context files from beside the image."""
    found = open_reference(ref, platform=None, insecure=insecure, workdir=workdir / "image")
    try:
        got = newest_recipe(found)
        notes = list(found.notes)
        if lock_path is None:
            if got is None:
                raise FetchError(f"no recipe is attached to {found.image}",
                                 hint="give the lock: imagelock inputs check LOCK --image REF")
            lock_path = checkout(found, got[0], got[1], store, workdir / "recipe")
            notes.append(f"lock from the recipe {got[0].digest} (the newest attached; not "
                         "checked against the provenance: this is a monitor, not a rebuild)")
        lock = read_lock(lock_path)
        spec_path = lock_path.parent / lock.spec
        sources = dict(load_spec(spec_path, lock.set_image).sources) if spec_path.is_file() else {}
        bundle = bundle_place(found)
        if bundle is None:
            notes.append(f"no input bundle is attached to {found.image}")
        config = PlaceConfig(sources, cli_mirrors, cli_snapshots, bundle)
        recipe = None
        if got is not None and hashlib.sha256(got[1]).hexdigest() == hashlib.sha256(
                lock_path.read_bytes()).hexdigest() and spec_path.is_file():
            recipe = _recipe_files(found, got[0], lock, spec_path)
        elif lock.files:
            notes.append("context files not checked: no recipe of this lock is attached")
        report = check_inputs(lock, store, config, subject=found.image, keyrings=keyrings,
                              recipe=recipe)
    finally:
        found.close()
    report.notes[:0] = notes
    return report


def check_lock(
    lock_path: Path, *, store: Store, cli_mirrors: Mapping[str, list[str]],
    cli_snapshots: Mapping[str, list[str]], keyrings: dict[str, str],
) -> RotReport:
    """The rot check of a lock alone: mirrors and snapshot archives (no bundle, no recipe)."""
    lock = read_lock(lock_path)
    spec_path = lock_path.parent / lock.spec
    sources = dict(load_spec(spec_path, lock.set_image).sources) if spec_path.is_file() else {}
    report = check_inputs(lock, store, PlaceConfig(sources, cli_mirrors, cli_snapshots),
                          subject=str(lock_path), keyrings=keyrings)
    report.notes.append("no image given: the input bundle was not asked (pass --image REF)")
    return report
