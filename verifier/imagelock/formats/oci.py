"""OCI image-spec documents (config, manifest, index) as models, for writing and for checking
what we read. Reading is strict about what we rely on and tolerant of extra fields, as the OCI
spec requires of readers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from imagelock.formats.common import Digest

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
REF_NAME = "org.opencontainers.image.ref.name"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True, defer_build=True)


class Platform(_Doc):
    architecture: str = Field(description="CPU architecture, GOARCH style.")
    os: str = Field(description="Operating system.")
    variant: str | None = Field(default=None, description="CPU variant, e.g. v8.")


class Descriptor(_Doc):
    media_type: str = Field(alias="mediaType", description="Media type of the target.")
    digest: Digest = Field(description="Digest of the target's bytes.")
    size: int = Field(ge=0, description="Size of the target in bytes.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations.")
    platform: Platform | None = Field(default=None, description="Platform (index entries).")


class Manifest(_Doc):
    schema_version: int = Field(alias="schemaVersion", description="Always 2.")
    media_type: str | None = Field(default=None, alias="mediaType", description="Media type.")
    config: Descriptor = Field(description="The image config.")
    layers: list[Descriptor] = Field(description="Layers, bottom first.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations.")


class Index(_Doc):
    schema_version: int = Field(alias="schemaVersion", description="Always 2.")
    media_type: str | None = Field(default=None, alias="mediaType", description="Media type.")
    manifests: list[Descriptor] = Field(description="Manifests (or nested indexes).")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations.")


class RootFS(_Doc):
    type: str = Field(description="Always `layers`.")
    diff_ids: list[Digest] = Field(description="Digests of the uncompressed layers, bottom first.")


class ConfigDoc(_Doc):
    architecture: str = Field(description="CPU architecture.")
    os: str = Field(description="Operating system.")
    rootfs: RootFS = Field(description="The layers' content identities.")
    config: dict[str, object] | None = Field(default=None, description="Runtime defaults.")
    created: str | None = Field(default=None, description="Creation time, RFC 3339.")
    history: list[dict[str, object]] | None = Field(default=None, description="Layer history.")


def dump(doc: BaseModel) -> dict[str, object]:
    """A document as a plain dict with OCI field names and no unset optional fields."""
    return doc.model_dump(mode="json", by_alias=True, exclude_none=True)
