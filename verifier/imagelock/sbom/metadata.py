"""What the pinned bytes say of themselves, for an SBOM: read from the store, hash checked.

A .deb's control fields (Source, Maintainer, Homepage, Depends, Pre-Depends, Provides) and its
DEP-5 copyright file (`usr/share/doc/NAME/copyright`, following a doc directory that is a link
to another package's, as Debian does for binaries of one source); a wheel's METADATA (licence,
author, home page, Requires-Dist). Nothing is run and nothing outside the package is read;
what a package does not state machine-readably stays unknown.
"""

from __future__ import annotations

import email.parser
import logging
import posixpath
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from debian.copyright import Copyright, License
from debian.copyright import Error as CopyrightError

from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.inputs.debian.deb import read_control_and_members
from imagelock.sbom.items import Item
from imagelock.sbom.licences import Licence, from_debian, from_wheel

_MAX_METADATA = 1 << 20
# python-debian logs its repairs of old copyright files ("Fixing Format URL") as warnings: the
# file is read all the same, and the user has nothing to do about a package's copyright file.
logging.getLogger("debian.copyright").setLevel(logging.ERROR)


@dataclass
class Metadata:
    """What one item's bytes state about it."""

    supplier: str | None = None  # "Name <email>": a .deb's Maintainer, a wheel's author
    source_package: str | None = None  # a .deb's source package (and version, when it differs)
    homepage: str | None = None
    licence: Licence | None = None
    relations: list[list[str]] = field(default_factory=list)  # or-groups of names it depends on
    provides: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)  # a wheel's Requires-Dist lines


def _doc_members(name: str) -> tuple[str, str]:
    doc = f"usr/share/doc/{name}"
    return doc, f"{doc}/copyright"


def _names(field_text: str) -> list[list[str]]:
    """`a (>= 1) | b, c:any` -> [["a", "b"], ["c"]]: relation names without versions."""
    out: list[list[str]] = []
    for group in field_text.split(","):
        names = [re.split(r"[\s:(\[]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        names = [n for n in names if n]
        if names:
            out.append(names)
    return out


def _dep5(text: bytes, package: str) -> Licence | None:
    try:
        c = Copyright(text.decode("utf-8", errors="replace").splitlines(), strict=False)
    except (CopyrightError, ValueError):
        return None  # not machine-readable: the licence stays NOASSERTION
    synopses: list[str] = []
    texts: dict[str, str] = {}
    for para in c.all_files_paragraphs():
        lic = cast("License | None", para.license)
        if lic is not None and lic.synopsis:
            synopses.append(lic.synopsis)
    for lpara in c.all_license_paragraphs():
        lic = cast("License | None", lpara.license)
        if lic is not None and lic.synopsis and lic.text:
            texts[lic.synopsis.strip()] = lic.text
    return from_debian(synopses, texts, package)


def debian_metadata(items: Sequence[Item], store: Store) -> dict[str, Metadata]:
    """Per Debian item (by `ref`): control fields and licence, read from its verified .deb."""
    out: dict[str, Metadata] = {}
    copyrights: dict[str, bytes] = {}  # package name -> its copyright file
    doc_links: dict[str, str] = {}  # package name -> package whose doc directory it links to
    for it in items:
        c = it.component
        what = f"{c.name}_{c.version}_{c.architecture}.deb"
        deb = store.verify(c.sha256, c.size, what=what)
        doc, copyright_path = _doc_members(c.name)
        control, found = read_control_and_members(
            deb, frozenset((doc, copyright_path)).__contains__, what=what)
        if control.get("Package") != c.name or control.get("Version") != c.version:
            raise InputError(f"{what} contains {control.get('Package')} "
                             f"{control.get('Version')}, not the pinned package",
                             hint="the lock is inconsistent with its own sha256; run `imagelock "
                             "lock` again")
        if isinstance(found.get(copyright_path), bytes):
            copyrights[c.name] = found[copyright_path]  # type: ignore[assignment]
        elif isinstance(found.get(doc), str):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(doc), str(found[doc])))
            if posixpath.dirname(target) == "usr/share/doc":
                doc_links[c.name] = posixpath.basename(target)
        source = control.get("Source", "").strip() or c.name
        src_words = source.split()
        if len(src_words) > 1:  # `openssl (3.0.11-1)`: the source's version differs
            source = f"{src_words[0]} {src_words[1].strip('()')}"
        out[it.ref] = Metadata(
            supplier=control.get("Maintainer") or None, source_package=source,
            homepage=control.get("Homepage") or None,
            relations=_names(control.get("Pre-Depends", "")) + _names(control.get("Depends", "")),
            provides=[g[0] for g in _names(control.get("Provides", ""))])
    for it in items:
        name = it.component.name
        text = copyrights.get(name) or copyrights.get(doc_links.get(name, ""))
        if text is not None:
            out[it.ref].licence = _dep5(text, name)
    return out


def wheel_metadata(items: Iterable[Item], store: Store) -> dict[str, Metadata]:
    """Per wheel item (by `ref`): licence, author, home page and Requires-Dist from METADATA."""
    out: dict[str, Metadata] = {}
    for it in items:
        c = it.component
        path = store.verify(c.sha256, c.size, what=f"wheel {c.name} {c.version}")
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist()
                         if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
                if len(names) != 1:
                    raise InputError(f"wheel {c.name} {c.version} has {len(names)} METADATA "
                                     "files, not one")
                info = zf.getinfo(names[0])
                if info.file_size > _MAX_METADATA:
                    raise InputError(f"wheel {c.name} {c.version}: METADATA is larger than "
                                     f"{_MAX_METADATA} bytes")
                raw = zf.read(info)
        except zipfile.BadZipFile as e:
            raise InputError(f"wheel {c.name} {c.version} is not a zip archive: {e}") from None
        msg = email.parser.BytesParser().parsebytes(raw, headersonly=True)
        author = msg.get("Author-email") or msg.get("Author") or msg.get("Maintainer-email")
        homepage = msg.get("Home-page")
        if not homepage:
            for url in msg.get_all("Project-URL") or []:
                label, _, value = str(url).partition(",")
                if label.strip().lower() in ("homepage", "home", "source", "repository"):
                    homepage = value.strip()
                    break
        out[it.ref] = Metadata(
            supplier=str(author).strip() if author else None,
            homepage=str(homepage).strip() if homepage else None,
            licence=from_wheel(msg.get("License-Expression"), msg.get_all("Classifier") or []),
            requires=[str(r) for r in msg.get_all("Requires-Dist") or []])
    return out


def read_metadata(items: Sequence[Item], store: Store) -> dict[str, Metadata]:
    """What each item's pinned bytes say of it, by `Item.ref` (kinds without metadata: none)."""
    out = debian_metadata([i for i in items if i.kind == "debian"], store)
    out.update(wheel_metadata([i for i in items if i.kind == "python"], store))
    return out
