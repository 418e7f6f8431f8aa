"""The image as an SPDX 2.3 JSON document, built and validated with spdx-tools.

The image is the package the document describes; it CONTAINS each layer and each component
(.debs, wheels, context files and downloads, as SPDX packages: a File would need a SHA1 the
lock does not have), and a component DEPENDS_ON another where the lock's resolution knows it.
No field carries a host: download locations are NOASSERTION, the purl says what a thing is.
The creation time is the lock's SOURCE_DATE_EPOCH and the namespace is derived from the lock's
bytes, so the same lock gives the same document, byte for byte.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import datetime

from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.extracted_licensing_info import ExtractedLicensingInfo
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from imagelock import __version__
from imagelock.sbom.bom import Bom, Entry

NAMESPACE = uuid.UUID("9f0b6c1e-5a61-4f43-9d4a-1d3f2c6e7b10")  # imagelock's SBOM namespace
_PURPOSES = {"debian": PackagePurpose.LIBRARY, "python": PackagePurpose.LIBRARY,
             "files": PackagePurpose.FILE, "downloads": PackagePurpose.FILE}
_PERSON = re.compile(r"^\s*(?P<name>[^<]*?)\s*<(?P<email>[^>]+)>\s*$")


class SpdxInvalid(Exception):
    """The document does not validate: a bug of imagelock's, never the user's input."""


def spdx_ref(text: str) -> str:
    """An SPDX element id from any text (letters, digits, `.` and `-` only)."""
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def person(text: str | None) -> tuple[str, str | None, bool] | None:
    """`Name <email>` (or a bare name or email, the first of a list) as (name, email, whether it
    is a team rather than a person), or None when there is no one."""
    if not text or not text.strip():
        return None
    first = text.split(",")[0] if text.count("<") > 1 else text
    m = _PERSON.match(first)
    name, email = (m.group("name") or m.group("email"), m.group("email")) if m else (first, None)
    name = name.strip().strip('"') or (email or "")
    team = re.search(r"team|maintainers|developers|packagers|authors|community|project",
                     name, re.IGNORECASE) is not None
    return (name, email, team) if name else None


def actor(text: str | None) -> Actor | SpdxNoAssertion:
    """A supplier or originator as an SPDX actor (a team is an organization)."""
    who = person(text)
    if who is None:
        return SpdxNoAssertion()
    name, email, team = who
    return Actor(ActorType.ORGANIZATION if team else ActorType.PERSON, name, email)


def _package(e: Entry, spdx_id: str) -> Package:
    it, meta = e.item.component, e.meta
    licence = (spdx_licensing.parse(meta.licence.expression) if meta.licence is not None
               else SpdxNoAssertion())
    refs = [ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", it.purl)] \
        if it.purl else []
    source_info = None
    if meta.source_package is not None:
        source_info = f"built from the Debian source package {meta.source_package}"
    comment = "; ".join(f"{k}: {v}" for k, v in (("layer", it.layer), ("origin", it.origin))
                        if v)
    is_deb = it.kind == "debian"
    return Package(
        spdx_id=spdx_id, name=it.name, download_location=SpdxNoAssertion(),
        version=it.version, supplier=actor(meta.supplier) if is_deb else None,
        originator=actor(meta.supplier) if not is_deb and meta.supplier else None,
        files_analyzed=False, checksums=[Checksum(ChecksumAlgorithm.SHA256, it.sha256)],
        homepage=meta.homepage, source_info=source_info,
        license_concluded=SpdxNoAssertion(), license_declared=licence,
        copyright_text=SpdxNoAssertion(), external_references=refs,
        comment=comment or None, primary_package_purpose=_PURPOSES.get(it.kind, PackagePurpose.OTHER),
    )


def _creation(name: str, lock_sha256: str, created: datetime, doc_name: str, key: str) -> CreationInfo:
    ns = uuid.uuid5(NAMESPACE, f"spdx:{lock_sha256}:{key}")
    return CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=doc_name,
        document_namespace=f"https://spdx.org/spdxdocs/imagelock-{spdx_ref(name)[8:]}-{ns}",
        creators=[Actor(ActorType.TOOL, f"imagelock-{__version__}")], created=created,
        creator_comment=f"Derived from the lock (sha256 {lock_sha256}) and the inputs it "
        "pins, without scanning the image.")


def _image(bom: Bom, image_id: str, layer_prefix: str, ids: dict[str, str],
           packages: list[Package], relationships: list[Relationship],
           depends: list[Relationship], extracted: dict[str, str]) -> None:
    """One platform's image, its layers and its components, added to the lists (a component
    already there, e.g. an `Architecture: all` package of another platform, is not added again)."""
    packages.append(Package(
        spdx_id=image_id, name=f"{bom.name}:{bom.tag}", download_location=SpdxNoAssertion(),
        version=bom.manifest_digest, files_analyzed=False,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, bom.manifest_digest.removeprefix("sha256:"))],
        license_concluded=SpdxNoAssertion(), license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(), primary_package_purpose=PackagePurpose.CONTAINER,
        external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER,
                                                "purl", bom.purl)],
        comment=f"platform {bom.platform}; config {bom.config_digest}"))
    for i, layer in enumerate(bom.layers):
        lid = spdx_ref(f"{layer_prefix}Layer-{i}-{layer.name}")
        packages.append(Package(
            spdx_id=lid, name=f"{bom.name} layer {layer.name}",
            download_location=SpdxNoAssertion(), version=layer.digest, files_analyzed=False,
            checksums=[Checksum(ChecksumAlgorithm.SHA256, layer.digest.removeprefix("sha256:"))],
            license_concluded=SpdxNoAssertion(), license_declared=SpdxNoAssertion(),
            copyright_text=SpdxNoAssertion(), primary_package_purpose=PackagePurpose.ARCHIVE,
            external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER,
                                                    "purl", layer.purl)],
            comment=f"diff_id {layer.diff_id}; {layer.size} bytes compressed"))
        relationships.append(Relationship(image_id, RelationshipType.CONTAINS, lid))
    mine = {e.item.ref: spdx_ref(f"{e.item.kind}-{e.item.name}-{e.item.component.sha256[:12]}")
            for e in bom.entries}
    for e in bom.entries:
        if e.item.ref not in ids:
            ids[e.item.ref] = mine[e.item.ref]
            packages.append(_package(e, ids[e.item.ref]))
            depends += [Relationship(ids[e.item.ref], RelationshipType.DEPENDS_ON, mine[d])
                        for d in e.depends_on]
        relationships.append(Relationship(image_id, RelationshipType.CONTAINS, ids[e.item.ref]))
        if e.meta.licence is not None:
            for ref, text in e.meta.licence.refs.items():
                extracted.setdefault(ref, text)


def _document(info: CreationInfo, packages: list[Package], relationships: list[Relationship],
              extracted: dict[str, str]) -> Document:
    licences = [ExtractedLicensingInfo(license_id=ref, extracted_text=text,
                                       license_name=ref.removeprefix("LicenseRef-"))
                for ref, text in sorted(extracted.items())]
    return Document(info, packages=packages, relationships=relationships,
                    extracted_licensing_info=licences)


def spdx_document(bom: Bom) -> Document:
    """The SPDX model of `bom` (not yet validated)."""
    image_id = "SPDXRef-Image"
    info = _creation(bom.name, bom.lock_sha256, bom.created,
                     f"{bom.name}:{bom.tag} ({bom.platform})", bom.platform)
    packages: list[Package] = []
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id)]
    extracted: dict[str, str] = {}
    depends: list[Relationship] = []
    _image(bom, image_id, "", {}, packages, relationships, depends, extracted)
    return _document(info, packages, relationships + depends, extracted)


def spdx_index_document(boms: list[Bom]) -> Document:
    """The SPDX model of a multi-platform image as a whole: the document describes each
    platform's image (as a build's index lists them); a component several platforms share
    (an `Architecture: all` package, a context file) is one package contained by each."""
    first = boms[0]
    platforms = ", ".join(b.platform for b in boms)
    info = _creation(first.name, first.lock_sha256, first.created,
                     f"{first.name}:{first.tag} ({platforms})", "index")
    packages: list[Package] = []
    relationships: list[Relationship] = []
    extracted: dict[str, str] = {}
    ids: dict[str, str] = {}
    depends: list[Relationship] = []
    for bom in boms:
        image_id = spdx_ref(f"Image-{bom.platform.replace('/', '-')}")
        relationships.append(Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id))
        _image(bom, image_id, bom.platform.replace("/", "-") + "-", ids, packages, relationships,
               depends, extracted)
    return _document(info, packages, relationships + depends, extracted)


def spdx_json(bom: Bom | list[Bom]) -> bytes:
    """The SPDX 2.3 JSON bytes of `bom` (or of a multi-platform image's boms, as a whole),
    validated by spdx-tools (SpdxInvalid if not)."""
    doc = spdx_index_document(bom) if isinstance(bom, list) else spdx_document(bom)
    problems = validate_full_spdx_document(doc)
    if problems:
        raise SpdxInvalid("; ".join(p.validation_message for p in problems[:5]))
    out = io.StringIO()
    write_document_to_stream(doc, out, validate=False)
    # Re-indented to two spaces with a final newline, as imagelock writes every JSON file.
    return (json.dumps(json.loads(out.getvalue()), indent=2, ensure_ascii=False)
            + "\n").encode("utf-8")
