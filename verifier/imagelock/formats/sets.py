"""Image sets: one spec defining several images, each built on another of the set.

A set spec (`images:` instead of `image:`) is what a human writes for a family of images that
share a base, as OpenStack's Kolla builds base -> openstack-base -> keystone. Each image of the
set becomes an ordinary image spec (`lock.sets.image_spec` derives it) and an ordinary lock,
beside the set's index (`SetLock`), so every command that takes a lock works on one image of a
set unchanged. The rules are in spec/README.md §3.1.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from imagelock.core.errors import InputError
from imagelock.formats.common import MAX_EPOCH, Digest, RelPath, Strict
from imagelock.formats.debian import DebianContents, DebianLayerGroup
from imagelock.formats.lock import ExpectedImage, ToolInfo
from imagelock.formats.spec import (
    Accounts,
    Contents,
    ImageConfig,
    ImageSection,
    PathEntry,
    Source,
    Spec,
    Step,
)

#: Images in one set at most: each is locked and built in turn, and its lock nests its parents'.
MAX_SET_IMAGES = 64
#: Parents above an image at most (base -> openstack-base -> keystone-base -> keystone is 3).
MAX_SET_DEPTH = 8
#: A base image outside the set: a registry host (with a port), a repository, a sha256 digest.
BASE_REF = re.compile(r"^[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?/[a-z0-9]+([._/-][a-z0-9]+)*"
                      r"@sha256:[0-9a-f]{64}$")
SET_IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SetImage(Strict):
    """One image of a set: an image spec's image-level keys, and the image it builds on."""

    parent: str | None = Field(
        default=None,
        description="Another image of the set this one builds on: its layers are reused byte "
        "for byte at the bottom of this image, its Debian and Python contents are this image's "
        "too, its accounts and config are inherited. Or a base image outside the set pinned by "
        "digest, `REGISTRY/REPO@sha256:HEX`: its layers are reused as they are (nothing else is "
        "inherited). Absent: the image starts from nothing.",
    )
    image: ImageSection = Field(description="The image's name, tag and platforms (a subset of "
                                "its parent's).")
    contents: Contents = Field(default_factory=Contents, description="What this image adds.")
    paths: list[PathEntry] = Field(default_factory=list, description="Extra directories and links.")
    steps: list[Step] = Field(default_factory=list, description="Hermetic build steps, run on the "
                              "parent's layers and this image's own.")
    accounts: Accounts = Field(default_factory=Accounts, description="Users and groups added to "
                               "the parent's.")
    config: ImageConfig = Field(default_factory=ImageConfig, description="Runtime configuration: "
                                "`env` and `labels` are merged over the parent's, the other keys "
                                "replace the parent's when given.")


class SetSpec(Strict):
    """imagelock.yaml for a set of images, format version 1."""

    version: Literal[1] = Field(description="Spec format version. Always 1 for now.")
    context: str = Field(default=".", description="Build context directory of every image, "
                         "relative to the spec file.")
    source_date_epoch: int | None = Field(
        default=None, ge=0, le=MAX_EPOCH,
        description="Timestamp of every entry and config of every image (as in an image spec).")
    sources: dict[str, Source] = Field(default_factory=dict, description="Named package sources "
                                       "every image of the set uses.")
    images: dict[str, SetImage] = Field(
        min_length=1, max_length=MAX_SET_IMAGES,
        description=f"The images by name (`[a-z0-9][a-z0-9-]*`), at most {MAX_SET_IMAGES}; a "
        "name prefixes the image's layer names (`NAME-LAYER`) and names its lock "
        "(`imagelock.NAME.lock`).")

    @field_validator("images")
    @classmethod
    def _images(cls, v: dict[str, SetImage]) -> dict[str, SetImage]:
        for name, img in v.items():
            if not SET_IMAGE_NAME.match(name):
                raise ValueError(f"image name {name!r} must be lower-case letters, digits and -")
            if img.parent is not None and img.parent not in v:
                if "@" in img.parent or "/" in img.parent:
                    if not BASE_REF.match(img.parent):
                        raise ValueError(f"images.{name}.parent: {img.parent!r} is not a base "
                                         "image pinned by digest, REGISTRY/REPO@sha256:HEX")
                    continue
                raise ValueError(f"images.{name}.parent: {img.parent!r} is not an image of the "
                                 f"set (images: {', '.join(v)})")
        for name in v:
            seen = [name]
            cur = v[name].parent
            while cur is not None and cur in v:
                if cur in seen:
                    raise ValueError("images form a cycle of parents: " + " -> ".join([*seen, cur]))
                seen.append(cur)
                if len(seen) > MAX_SET_DEPTH + 1:
                    raise ValueError(f"images.{name}: more than {MAX_SET_DEPTH} parents above it")
                cur = v[cur].parent
            parent = v[name].parent
            if parent is not None and parent in v:
                extra = set(v[name].image.platforms) - set(v[parent].image.platforms)
                if extra:
                    raise ValueError(f"images.{name}.image.platforms: {', '.join(sorted(extra))} "
                                     f"not among its parent {parent}'s platforms")
        return v

    @model_validator(mode="after")
    def _names(self) -> SetSpec:
        tags = [(i.image.name, i.image.tag) for i in self.images.values()]
        if len(set(tags)) != len(tags):
            raise ValueError("two images of the set have the same image.name and image.tag")
        return self


class SetLockImage(Strict):
    """One image of a set, in the set's index."""

    lock: RelPath = Field(description="The image's own lock, relative to the index's directory.")
    parent: str | None = Field(default=None, description="The image it builds on.")
    image: str = Field(description="Its `name:tag`.")
    expected: dict[str, ExpectedImage] = Field(description="The digests its build must give, per "
                                               "platform (a copy of its lock's).")


class SetLock(Strict):
    """imagelock.lock of a set spec: the index of the images' own locks."""

    lock_version: Literal[1] = Field(description="Lock format version.")
    kind: Literal["set"] = Field(description="`set`: an index of image locks, not an image lock.")
    tool: ToolInfo = Field(description="The tool that wrote the index.")
    spec: RelPath = Field(description="Path of the set spec, relative to the index's directory.")
    spec_digest: Digest = Field(description="Digest of the normalised set spec.")
    images: dict[str, SetLockImage] = Field(description="The images, parents before children.")


# --- each image of a set as an ordinary image spec (spec/README.md §3.1) ----------------------


def chain(spec: SetSpec, name: str) -> list[str]:
    """The image and its parents, the root first."""
    out = [name]
    while (parent := spec.images[out[0]].parent) is not None and parent in spec.images:
        out.insert(0, parent)
    return out


def external_parent(spec: SetSpec, name: str) -> str | None:
    """The base image outside the set that `name` is built on (directly), if any."""
    parent = spec.images[name].parent
    return parent if parent is not None and parent not in spec.images else None


def order(spec: SetSpec) -> list[str]:
    """Every image, parents before children (in the spec's order otherwise)."""
    out: list[str] = []
    for name in spec.images:
        for n in chain(spec, name):
            if n not in out:
                out.append(n)
    return out


def _layer(image: str, name: str | None, default: str) -> str:
    return f"{image}-{name or default}"


def _own(image: str, img: SetImage) -> SetImage:
    """The image's own keys with every layer name prefixed by the image's name."""
    c = img.contents
    deb = c.debian
    if deb is not None:
        deb = deb.model_copy(update={
            "layer": _layer(image, deb.layer, "debian"),
            "groups": [DebianLayerGroup(layer=_layer(image, g.layer, "debian"), packages=g.packages)
                       for g in deb.groups]})
    py = c.python
    if py is not None:
        py = py.model_copy(update={"layer": _layer(image, py.layer, "python")})
    contents = Contents(
        files=[f.model_copy(update={"layer": _layer(image, f.layer, "files")}) for f in c.files],
        downloads=[d.model_copy(update={"layer": _layer(image, d.layer, "files")})
                   for d in c.downloads],
        debian=deb, python=py)
    section = img.image
    if section.layers is not None:
        section = section.model_copy(update={"layers": [_layer(image, n, "") for n in section.layers]})
    return img.model_copy(update={
        "image": section, "contents": contents,
        "paths": [p.model_copy(update={"layer": _layer(image, p.layer, "files")}) for p in img.paths],
        "steps": [s.model_copy(update={"layer": _layer(image, s.layer, s.name)}) for s in img.steps],
    })


def _merge_debian(parent: DebianContents, own: DebianContents | None, layer: str) -> DebianContents:
    """The parent's Debian request with the image's own: one closure, one database."""
    own_names = {p.split("=", 1)[0] for p in own.packages} if own is not None else set()
    packages = [p for p in parent.packages if p.split("=", 1)[0] not in own_names]
    if own is None:
        return parent.model_copy(update={"layer": layer, "groups": []})
    merged = own.model_copy(update={
        "packages": [*packages, *own.packages],
        "exclude": sorted(set(parent.exclude) | set(own.exclude)),
        "groups": own.groups, "layer": layer})
    for key in ("essential", "sources", "scripts"):
        if key not in own.model_fields_set:
            merged = merged.model_copy(update={key: getattr(parent, key)})
    return merged


def _merge_config(parent: ImageConfig, own: ImageConfig) -> ImageConfig:
    update: dict[str, object] = {"env": {**parent.env, **own.env},
                                 "labels": {**parent.labels, **own.labels}}
    for key in ("entrypoint", "cmd", "user", "workdir", "ports", "stop_signal"):
        if key not in own.model_fields_set:
            update[key] = getattr(parent, key)
    return own.model_copy(update=update)


def image_spec(spec: SetSpec, name: str) -> Spec:
    """The ordinary image spec of one image of the set (see the module doc)."""
    if name not in spec.images:
        raise InputError(f"the set has no image {name!r}", field="images",
                         hint="its images: " + ", ".join(spec.images))
    debian: DebianContents | None = None
    accounts = Accounts()
    config = ImageConfig()
    own = _own(name, spec.images[name])
    for n in chain(spec, name):
        img = _own(n, spec.images[n])
        wants = img.contents.debian is not None or bool(img.accounts.users or img.accounts.groups)
        layer = img.contents.debian.layer if img.contents.debian is not None else f"{n}-debian"
        if debian is not None and wants:
            debian = _merge_debian(debian, img.contents.debian, layer or f"{n}-debian")
        elif debian is None:
            debian = img.contents.debian
        accounts = Accounts(users=[*accounts.users, *img.accounts.users],
                            groups=[*accounts.groups, *img.accounts.groups])
        config = _merge_config(config, img.config) if n != chain(spec, name)[0] else img.config
    wants_own = own.contents.debian is not None or bool(own.accounts.users or own.accounts.groups)
    return Spec(
        version=1, image=own.image, context=spec.context, source_date_epoch=spec.source_date_epoch,
        sources=spec.sources,
        contents=own.contents.model_copy(update={"debian": debian if wants_own else None}),
        paths=own.paths, steps=own.steps,
        accounts=accounts if wants_own else own.accounts, config=config)
