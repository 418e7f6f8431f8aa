"""The image as a CycloneDX 1.6 JSON document, built and validated with cyclonedx-python-lib.

The image is the BOM's subject (`metadata.component`, a container); its layers and every
component (.debs, wheels, context files, downloads) are the BOM's components, each with its
sha256 and purl; the dependency graph has the image depending on each of them and a component
on another where the lock's resolution knows it. Every bom-ref, the serial number and the
timestamp come from the lock, so the same lock gives the same document, byte for byte.
"""

from __future__ import annotations

import json
import uuid

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom as CdxBom
from cyclonedx.model.bom import BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from imagelock import __version__
from imagelock.sbom.bom import Bom, Entry
from imagelock.sbom.spdx import NAMESPACE, person

_TYPES = {"debian": ComponentType.LIBRARY, "python": ComponentType.LIBRARY,
          "files": ComponentType.FILE, "downloads": ComponentType.FILE}


class CycloneDxInvalid(Exception):
    """The document does not validate: a bug of imagelock's, never the user's input."""


def _sha256(hex_digest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=hex_digest.removeprefix("sha256:"))


def _supplier(text: str | None) -> OrganizationalEntity | None:
    who = person(text)
    if who is None:
        return None
    name, email, _ = who
    return OrganizationalEntity(name=name, contacts=[OrganizationalContact(name=name, email=email)]
                                if email else [])


def _component(e: Entry) -> Component:
    it, meta = e.item.component, e.meta
    props = [Property(name=f"imagelock:{k}", value=v) for k, v in (
        ("kind", it.kind), ("layer", it.layer), ("origin", it.origin),
        ("source-package", meta.source_package)) if v]
    is_deb = it.kind == "debian"
    author = person(meta.supplier) if not is_deb else None
    return Component(
        name=it.name, type=_TYPES.get(it.kind, ComponentType.LIBRARY), bom_ref=e.item.ref,
        version=it.version, hashes=[_sha256(it.sha256)],
        purl=PackageURL.from_string(it.purl) if it.purl else None,
        licenses=[LicenseExpression(meta.licence.expression)] if meta.licence else None,
        supplier=_supplier(meta.supplier) if is_deb else None,
        authors=[OrganizationalContact(name=author[0], email=author[1])]
        if author is not None else None,
        properties=props)


def cyclonedx_bom(bom: Bom) -> CdxBom:
    """The CycloneDX model of `bom` (not yet validated)."""
    image = Component(
        name=bom.name, type=ComponentType.CONTAINER, bom_ref="image", version=bom.tag,
        hashes=[_sha256(bom.manifest_digest)], purl=PackageURL.from_string(bom.purl),
        properties=[Property(name="imagelock:platform", value=bom.platform),
                    Property(name="imagelock:config-digest", value=bom.config_digest),
                    Property(name="imagelock:manifest-digest", value=bom.manifest_digest),
                    Property(name="imagelock:lock-sha256", value=bom.lock_sha256)])
    tool = Component(name="imagelock", type=ComponentType.APPLICATION, version=__version__,
                     bom_ref="tool:imagelock")
    meta = BomMetaData(component=image, timestamp=bom.created)
    meta.tools.components.add(tool)
    layers = [Component(name=f"{bom.name} layer {layer.name}", type=ComponentType.FILE,
                        bom_ref=f"layer:{i}:{layer.name}", version=layer.digest,
                        hashes=[_sha256(layer.digest)], purl=PackageURL.from_string(layer.purl),
                        properties=[Property(name="imagelock:diff-id", value=layer.diff_id)])
              for i, layer in enumerate(bom.layers)]
    parts = {e.item.ref: _component(e) for e in bom.entries}
    doc = CdxBom(components=[*layers, *parts.values()], metadata=meta,
                 serial_number=uuid.uuid5(NAMESPACE, f"cyclonedx:{bom.lock_sha256}:{bom.platform}"))
    doc.register_dependency(image, [*layers, *parts.values()])
    for e in bom.entries:
        doc.register_dependency(parts[e.item.ref], [parts[d] for d in e.depends_on])
    return doc


def cyclonedx_index_bom(boms: list[Bom]) -> CdxBom:
    """The CycloneDX model of a multi-platform image as a whole: the index is the subject,
    each platform's image a component of it holding its layers and components; a component
    several platforms share (an `Architecture: all` package, a context file) is listed once."""
    first = boms[0]
    index = Component(
        name=first.name, type=ComponentType.CONTAINER, bom_ref="index", version=first.tag,
        properties=[Property(name="imagelock:platforms", value=", ".join(b.platform for b in boms)),
                    Property(name="imagelock:lock-sha256", value=first.lock_sha256)])
    tool = Component(name="imagelock", type=ComponentType.APPLICATION, version=__version__,
                     bom_ref="tool:imagelock")
    meta = BomMetaData(component=index, timestamp=first.created)
    meta.tools.components.add(tool)
    images: list[Component] = []
    layers: list[Component] = []
    parts: dict[str, tuple[Component, Entry]] = {}
    contains: list[tuple[Component, list[Component]]] = []
    for bom in boms:
        image = Component(
            name=bom.name, type=ComponentType.CONTAINER, bom_ref=f"image:{bom.platform}",
            version=bom.tag, hashes=[_sha256(bom.manifest_digest)],
            purl=PackageURL.from_string(bom.purl),
            properties=[Property(name="imagelock:platform", value=bom.platform),
                        Property(name="imagelock:config-digest", value=bom.config_digest),
                        Property(name="imagelock:manifest-digest", value=bom.manifest_digest)])
        own = [Component(name=f"{bom.name} layer {layer.name}", type=ComponentType.FILE,
                         bom_ref=f"layer:{bom.platform}:{i}:{layer.name}", version=layer.digest,
                         hashes=[_sha256(layer.digest)], purl=PackageURL.from_string(layer.purl),
                         properties=[Property(name="imagelock:diff-id", value=layer.diff_id)])
               for i, layer in enumerate(bom.layers)]
        for e in bom.entries:
            parts.setdefault(e.item.ref, (_component(e), e))
        images.append(image)
        layers += own
        contains.append((image, [*own, *(parts[e.item.ref][0] for e in bom.entries)]))
    doc = CdxBom(components=[*images, *layers, *(c for c, _ in parts.values())], metadata=meta,
                 serial_number=uuid.uuid5(NAMESPACE, f"cyclonedx:{first.lock_sha256}:index"))
    doc.register_dependency(index, images)
    for image, held in contains:
        doc.register_dependency(image, held)
    for c, e in parts.values():
        doc.register_dependency(c, [parts[d][0] for d in e.depends_on])
    return doc


def cyclonedx_json(bom: Bom | list[Bom]) -> bytes:
    """The CycloneDX 1.6 JSON bytes of `bom` (or of a multi-platform image's boms, as a
    whole), validated against the 1.6 schema by cyclonedx-python-lib's validator
    (CycloneDxInvalid if not)."""
    model = cyclonedx_index_bom(bom) if isinstance(bom, list) else cyclonedx_bom(bom)
    text = JsonV1Dot6(model).output_as_string()
    problem = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if problem is not None:
        raise CycloneDxInvalid(str(problem))
    return (json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
