"""Combining the pinned packages of a lock into one Debian root, and doing declaratively what
their maintainer scripts would have done that an image needs.

Order: packages are applied sorted by (name, architecture), so the result never depends on the
order of the lock or of a resolver.

Two packages shipping the same path (dpkg allows it only with Replaces):
- directories merge; the first package in that order sets the directory's mode and owner, and
  every package's copy of the directory is given those attributes, so layers agree;
- equal content (same type, mode, owner, link target and file sha256) is accepted, as dpkg does
  for Multi-Arch: same packages; the path stays in the first package's entries only, and both
  packages' `.list` files name it;
- otherwise the package whose Replaces names the other (by name or a Provides, version
  constraint checked) wins, and the path leaves the loser's entries and its `.list`, as dpkg
  does; with no Replaces either way (or both ways), or a directory against a non-directory,
  the build stops with an error naming both packages.
A hardlink whose target went to another package becomes a regular file with its own content,
so each package's entries stand alone in whatever layer they are put.

Generated (the `system` entries): the merged-/usr top-level links; the dpkg database
(`status`, `info/<pkg>[:arch].list`, `.md5sums`, and the other control members dpkg keeps);
`/etc/passwd` and `/etc/group` from base-passwd's masters plus extra accounts, and
`/etc/shadow` and `/etc/gshadow` when the `passwd` package is installed (its postinst runs
pwconv), with the last-change day taken from SOURCE_DATE_EPOCH; the CA bundle, the `.pem` and
`<hash>.0` links and `/etc/ca-certificates.conf` exactly as ca-certificates' postinst and
`update-ca-certificates` produce them; `/etc/ld.so.cache` from the image's own ldconfig when
libc-bin is installed and its ldconfig runs here (docs/field-notes.md: the cache is stable, the
aux-cache is not, and is left out). Nothing that varies run to run is written: no logs,
machine-id, keys, aux-cache, `*-old` backups or lock files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.maintscripts import ScriptEffects
from imagelock.inputs.debian.accounts import GroupLike, UserLike, accounts
from imagelock.inputs.debian.ca_bundle import ca_certificates
from imagelock.inputs.debian.deb import (
    DebPackage,
    DebPin,
    extract_pinned,
    merged_usr_links,
)
from imagelock.inputs.debian.dpkg_database import dpkg_database
from imagelock.inputs.debian.effects import account_actions, apply_actions
from imagelock.inputs.debian.ldconfig import ld_so_cache
from imagelock.inputs.debian.merge import merge_packages
from imagelock.tar.entry import Entry

# Compiled bytecode of the lock's python-compile actions, by what its bytes depend on.
BYTECODE_CACHE = "derived/debian-bytecode"

# --- accounts given by the caller -------------------------------------------------------------










# --- the result -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebianRoot:
    """A Debian root as entries: each package's own files, and what scripts would have made.

    `packages` maps package name to its entries (after conflicts were resolved); every
    non-directory path is in exactly one list, so packages can go into different layers.
    `system` holds the generated files (dpkg database, accounts, CA bundle, ld.so.cache,
    merged-/usr links); the database always covers every package, so put it in the last layer.
    `notes` says what was skipped and why.
    """

    packages: dict[str, list[Entry]]
    system: list[Entry]
    notes: list[str] = field(default_factory=list)

    def entries(self) -> list[Entry]:
        """Every entry once (directories shared by packages appear once)."""
        seen: dict[str, Entry] = {}
        for group in [*self.packages.values(), self.system]:
            for e in group:
                seen.setdefault(e.path, e)
        return list(seen.values())


def debian_entries(
    pins: Iterable[DebPin],
    store: Store,
    staging_dir: Path,
    *,
    source_date_epoch: int,
    users: Sequence[UserLike] = (),
    groups: Sequence[GroupLike] = (),
    ldconfig: bool = True,
    effects: ScriptEffects | None = None,
    extracted: dict[str, DebPackage] | None = None,
) -> DebianRoot:
    """Verify, extract and combine the pinned packages of a lock into a Debian root.
    `extracted` keeps `Architecture: all` packages extracted by an earlier platform of the same
    build (their staged files stay in that platform's staging directory, read-only)."""
    staging_dir = Path(staging_dir)
    packages = extract_all(pins, store, staging_dir, extracted)
    return combine(
        packages,
        source_date_epoch=source_date_epoch,
        users=users,
        groups=groups,
        workdir=staging_dir / "work" if ldconfig else None,
        effects=effects,
        effects_workdir=staging_dir / "effects",
        bytecode_cache=store.root / BYTECODE_CACHE,
    )


def extract_all(pins: Iterable[DebPin], store: Store, staging_dir: Path,
                extracted: dict[str, DebPackage] | None = None) -> list[DebPackage]:
    """Every pinned .deb, verified and extracted into `staging_dir/files` (an `all` one taken
    from `extracted` when an earlier platform of the build extracted it)."""
    out = []
    for p in pins:
        if extracted is not None and p.architecture == "all":
            if p.sha256 not in extracted:
                extracted[p.sha256] = extract_pinned(p, store, Path(staging_dir) / "files")
            out.append(extracted[p.sha256])
        else:
            out.append(extract_pinned(p, store, Path(staging_dir) / "files"))
    return out




# --- merging packages -------------------------------------------------------------------------













# --- the dpkg database ------------------------------------------------------------------------















# --- reading files of the combined view -------------------------------------------------------






# --- accounts ---------------------------------------------------------------------------------








# --- CA certificates --------------------------------------------------------------------------





















# --- ld.so.cache ------------------------------------------------------------------------------



def combine(
    packages: Sequence[DebPackage],
    *,
    source_date_epoch: int,
    users: Sequence[UserLike] = (),
    groups: Sequence[GroupLike] = (),
    workdir: Path | None = None,
    effects: ScriptEffects | None = None,
    effects_workdir: Path | None = None,
    bytecode_cache: Path | None = None,
) -> DebianRoot:
    """Combine extracted packages (see the module docstring for the rules) and generate config.

    `workdir` is where ldconfig may stage a root; None skips `/etc/ld.so.cache`. `effects` are
    the lock's maintainer-script effects (effects.py), applied last; `effects_workdir` is where
    their bytecode compiles (default: beside `workdir`, else a temporary directory).
    """
    ordered = sorted(packages, key=lambda p: (p.name, p.architecture))
    keys = [p.db_name for p in ordered]
    if len(set(keys)) != len(keys):
        raise InputError(f"a package is given twice: {sorted(k for k in keys if keys.count(k) > 1)}")
    view, groups_by_pkg, lost = merge_packages(ordered)
    notes: list[str] = []
    system: list[Entry] = []
    present_dirs = {p for p, (e, _) in view.items() if e.type == "dir"}
    system += [e for e in merged_usr_links(present_dirs) if e.path not in view]
    for e in system:
        view[e.path] = (e, "merged /usr")
    generated = [
        *dpkg_database(ordered, lost, view, exact=effects is not None),
        *accounts(ordered, view, source_date_epoch, users, groups, account_actions(effects)),
        *ca_certificates(ordered, view),
    ]
    if workdir is not None:
        cache, note = ld_so_cache(ordered, view, workdir)
        generated += cache
        if note:
            notes.append(note)
    for e in generated:
        old = view.get(e.path)
        if old is not None:
            if old[0].type == "dir" and e.type == "dir":
                continue
            raise InputError(
                f"/{e.path} is generated for the dpkg database or configuration, but package "
                f"{old[1]} ships it",
                hint="exclude that package or report the clash",
            )
        view[e.path] = (e, "generated")
        system.append(e)
    packages_out = {p.name: groups_by_pkg[p.db_name] for p in ordered}
    if effects is not None and effects.actions:
        where = effects_workdir or (workdir.parent / "effects" if workdir is not None else None)
        with _scratch(where) as scratch:
            changes = apply_actions(view, effects, workdir=scratch,
                                    source_date_epoch=source_date_epoch,
                                    bytecode_cache=bytecode_cache)
            packages_out, system = _apply_changes(packages_out, system, changes)
    return DebianRoot(packages_out, system, notes)


@contextmanager
def _scratch(where: Path | None) -> Iterator[Path]:
    """`where` (kept: compiled bytecode is read from it when the layer is written), else a
    temporary directory for callers that only look at the entries' metadata."""
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
        yield where
        return
    with tempfile.TemporaryDirectory(prefix="imagelock-effects-") as tmp:
        yield Path(tmp)


def _apply_changes(
    packages: dict[str, list[Entry]], system: list[Entry], changes: dict[str, Entry | None]
) -> tuple[dict[str, list[Entry]], list[Entry]]:
    """Each changed path replaced where it is (in every package that has it: directories are
    shared), removed, or else added to the generated entries."""
    seen: set[str] = set()

    def swap(entries: list[Entry]) -> list[Entry]:
        out = []
        for e in entries:
            if e.path in changes:
                seen.add(e.path)
                new = changes[e.path]
                if new is not None:
                    out.append(new)
            else:
                out.append(e)
        return out

    packages = {name: swap(entries) for name, entries in packages.items()}
    system = swap(system)
    system += [e for path, e in sorted(changes.items()) if path not in seen and e is not None]
    return packages, system
