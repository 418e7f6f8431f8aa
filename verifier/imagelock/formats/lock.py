"""The lock, `imagelock.lock`: every input pinned by sha256 and the digests the build must give.

The lock is everything a build needs besides the pinned bytes themselves: a rebuilder needs the
lock, the store (or mirrors) and, for context files, the context directory, whose files are
checked against their pins. It is written as JSON with a fixed key order (the models' field
order), two-space indentation and a final newline, so the same inputs give the same bytes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from imagelock.formats.common import (
    MAX_EPOCH,
    Digest,
    ImagePath,
    Mode,
    Owner,
    RelPath,
    Sha256Hex,
    Strict,
    check_path_bounds,
)
from imagelock.formats.debian import DebianLayout, DebianPackagePin, DebianPlatformLock
from imagelock.formats.python import PythonInstall, WheelPin
from imagelock.formats.python_build import SourceBuildPin
from imagelock.formats.spec import Accounts, ImageConfig, PathEntry, Step

LOCK_VERSION: Literal[1] = 1


class ToolInfo(Strict):
    """Which tool wrote the lock (informational: any conforming tool builds the same bytes)."""

    name: str = Field(description="Always `imagelock`.")
    version: str = Field(description="The version of the tool that wrote the lock.")


class CompressionInfo(Strict):
    """How layer blobs are compressed. The manifest digest depends on it; diff_ids do not."""

    algorithm: Literal["gzip"] = Field(description="Layer compression algorithm.")
    level: int = Field(description="Compression level.")
    implementation: str = Field(description="Encoder and version, e.g. `python-isal 1.9.1`.")


class ImageInfo(Strict):
    """The image's name and tag, as the spec gives them."""

    name: str = Field(description="Repository name.")
    tag: str = Field(description="Tag.")


class ContextPin(Strict):
    """One entry created from the build context: a file with its content pinned, a directory, or a
    symlink."""

    type: Literal["file", "dir", "symlink"] = Field(description="What the entry is.")
    src: RelPath = Field(description="Path relative to the context directory (`/`-separated).")
    dest: ImagePath = Field(description="Path in the image.")
    sha256: Sha256Hex | None = Field(default=None, description="Content digest (files only).")
    size: int | None = Field(default=None, ge=0, description="Content size in bytes (files only).")
    target: Annotated[str, AfterValidator(check_path_bounds)] | None = Field(
        default=None, description="Link text (symlinks only).")
    mode: Mode | None = Field(default=None, description="Mode (files and directories).")
    owner: Owner = Field(description="Numeric owner.")
    layer: str = Field(description="Layer the entry goes into.")


class DownloadPin(Strict):
    """A pinned download: where it is, what its bytes hash to, and where it goes."""

    location: str = Field(
        description="`SOURCE:relative/path` for a named source, or the URL the spec gives."
    )
    sha256: Sha256Hex = Field(description="Content digest of the downloaded file.")
    size: int = Field(ge=0, description="Size in bytes.")
    dest: ImagePath = Field(description="File path, or the directory unpacked into.")
    unpack: bool = Field(description="Whether the file is a tar archive unpacked into `dest`.")
    strip_components: int = Field(default=0, ge=0, description="Leading components dropped when unpacking.")
    mode: Mode | None = Field(default=None, description="Mode override.")
    owner: Owner | None = Field(default=None, description="Owner override.")
    layer: str = Field(description="Layer the content goes into.")
    platforms: list[str] | None = Field(
        default=None, description="The platforms whose images hold it; absent: every platform.")


class PathPin(PathEntry):
    """A directory or link from the spec's `paths`, with its layer resolved."""

    layer: str = Field(description="Layer the entry goes into.")


class ExpectedLayer(Strict):
    """One layer's identities."""

    name: str = Field(description="Layer name from the spec.")
    diff_id: Digest = Field(description="sha256 of the uncompressed canonical tar.")
    digest: Digest = Field(description="sha256 of the compressed blob.")
    size: int = Field(ge=0, description="Size of the compressed blob in bytes.")


class ExpectedImage(Strict):
    """What a build of this lock must produce for one platform."""

    config_digest: Digest = Field(description="Digest of the image config: the content identity.")
    manifest_digest: Digest = Field(description="Digest of the image manifest: the distribution "
                                    "identity (depends on compression).")
    layers: list[ExpectedLayer] = Field(description="Layers, bottom first.")
    emulation: str | None = Field(
        default=None, description="The emulator the image's own programs (ldconfig, build steps) "
        "ran under when the lock was made on a host of another architecture, e.g. "
        "`qemu-aarch64-static 7.2.22`; absent when they ran natively. Informational: the "
        "digests do not depend on it.")


class Lock(Strict):
    """imagelock.lock, format version 1."""

    lock_version: Literal[1] = Field(description="Lock format version.")
    tool: ToolInfo = Field(description="The tool that wrote this lock.")
    spec: RelPath = Field(description="Path of the spec, relative to the lock's directory.")
    spec_digest: Digest = Field(description="Digest of the normalised spec; a different one means "
                                "the lock is stale.")
    spec_sections: dict[str, Digest] = Field(description="Digest of each top-level spec section, to "
                                             "say which changed.")
    context: RelPath = Field(description="Context directory, relative to the lock's directory.")
    source_date_epoch: int = Field(ge=0, le=MAX_EPOCH,
                                   description="Timestamp of every entry and of the config.")
    image: ImageInfo = Field(description="Name and tag.")
    platforms: list[str] = Field(description="Platforms, in spec order.")
    compression: CompressionInfo = Field(description="Layer compression.")
    layers: list[str] = Field(description="Layer names, bottom first.")
    files: list[ContextPin] = Field(default_factory=list, description="Entries from the context.")
    downloads: list[DownloadPin] = Field(default_factory=list, description="Pinned downloads.")
    paths: list[PathPin] = Field(default_factory=list, description="Directories and links.")
    debian: dict[str, DebianPlatformLock] = Field(
        default_factory=dict, description="Debian pins per platform (absent without Debian contents)."
    )
    debian_all: list[DebianPackagePin] | None = Field(
        default=None, description="`Architecture: all` packages every platform installs with the "
        "same pin, pinned once (written for a lock of two or more platforms): each platform's "
        "`packages` lists only the others, and a platform installs both lists. Absent otherwise; "
        "a lock written before this field (every platform listing all its packages) reads the "
        "same.")
    debian_layout: DebianLayout | None = Field(
        default=None, description="Which layers the Debian packages and database go into."
    )
    python: dict[str, list[WheelPin]] = Field(
        default_factory=dict, description="Wheel pins per platform (absent without Python contents)."
    )
    python_install: PythonInstall | None = Field(
        default=None, description="How the wheels are installed."
    )
    step_builds: dict[str, dict[str, list[DebianPackagePin]]] | None = Field(
        default=None,
        description="Per platform, per `stage: build` step with `build_requires_debian`: the "
        "Debian packages its stage adds to the image so far (never in the image).",
    )
    python_builds: dict[str, list[SourceBuildPin]] | None = Field(
        default=None,
        description="Wheels built from source per platform: their sdists and build stages "
        "(absent when every wheel comes from an index or find-links).",
    )
    steps: list[Step] = Field(
        default_factory=list, description="Build steps, with `layer` resolved, in order."
    )
    accounts: Accounts = Field(default_factory=Accounts, description="Extra users and groups.")
    config: ImageConfig = Field(description="Runtime configuration, normalised (PATH defaulted).")
    expected: dict[str, ExpectedImage] = Field(description="Expected results per platform.")
    set_image: str | None = Field(
        default=None, description="For an image of a set (spec with `images`): its name there. "
        "`spec_digest` is then the digest of this image's spec as derived from the set (spec "
        "§3.1), and `parent` holds the lock of the image it builds on.")
    parent: ParentPin | None = Field(
        default=None, description="The image this one builds on: its layers are the bottom of "
        "`layers`, reused byte for byte.")

    @model_validator(mode="before")
    @classmethod
    def _all_packages_into_each_platform(cls, data: Any) -> Any:
        """In memory every platform's `packages` is complete (each stage reads one platform's
        list), so the pins written once in `debian_all` go back into each platform's list."""
        if not isinstance(data, dict) or data.get("debian_all") is None:
            return data
        shared, debian = data["debian_all"], data.get("debian")
        if not isinstance(shared, list) or not isinstance(debian, dict) or not debian:
            raise ValueError("debian_all: a list of Architecture: all pins, beside per-platform "
                             "`debian` pins; re-lock with `imagelock lock` to rewrite it")
        names = []
        for pin in shared:
            if not isinstance(pin, dict) or pin.get("architecture") != "all":
                raise ValueError("debian_all holds only Architecture: all pins; re-lock with "
                                 "`imagelock lock` to rewrite the lock")
            names.append(pin.get("name"))
        merged = {}
        for platform, pl in debian.items():
            if not isinstance(pl, dict) or not isinstance(pl.get("packages"), list):
                return data  # the platform's own error says what is wrong
            own = {p.get("name") for p in pl["packages"] if isinstance(p, dict)}
            twice = sorted(str(n) for n in names if n in own)
            if twice:
                raise ValueError(f"debian_all: {twice[0]} is also pinned for {platform}: a "
                                 "package is pinned once; re-lock with `imagelock lock`")
            packages = sorted([*pl["packages"], *shared],
                              key=lambda p: (str(p.get("name")), str(p.get("architecture"))))
            merged[platform] = {**pl, "packages": packages}
        return {**{k: v for k, v in data.items() if k != "debian_all"}, "debian": merged}

    def shared_all_pins(self) -> list[DebianPackagePin]:
        """The `Architecture: all` pins that every platform (two or more) installs, identical:
        what the lock file writes once, in `debian_all`."""
        if len(self.debian) < 2:
            return []
        first, *others = self.debian.values()
        return [p for p in first.packages
                if p.architecture == "all" and all(p in pl.packages for pl in others)]

    @model_serializer(mode="wrap")
    def _write_all_packages_once(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        shared = {p.name for p in self.shared_all_pins()}
        if not shared or not isinstance(data, dict) or "debian" not in data:
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "debian_all":
                continue
            if key != "debian":
                out[key] = value
                continue
            first = next(iter(value.values()))["packages"]
            out["debian"] = {plat: {**pl, "packages": [p for p in pl["packages"]
                                                       if p["name"] not in shared]}
                             for plat, pl in value.items()}
            out["debian_all"] = [p for p in first if p["name"] in shared]
        return out


class ParentPin(Strict):
    """The parent of an image of a set: its whole lock, so a child's lock alone rebuilds it, or
    an image outside the set pinned by digest (`base`)."""

    image: str = Field(description="The parent's name in the set, or the base image's reference.")
    lock: Lock | None = Field(default=None, description="The parent's lock (its own `parent` "
                              "nested in turn), for a parent of the set.")
    base: BaseImagePin | None = Field(default=None, description="For a base image outside the "
                                      "set: its manifest, config and layers by digest.")


class BaseLayerPin(Strict):
    """One layer of a base image."""

    digest: Digest = Field(description="Digest of the (compressed) blob.")
    size: int = Field(ge=0, description="Size of the blob.")
    media_type: str = Field(description="The manifest's media type for it.")
    diff_id: Digest = Field(description="Digest of the uncompressed tar (from the config).")


class BasePlatformPin(Strict):
    """A base image for one platform: the manifest the reference leads to, and what it names."""

    manifest_digest: Digest = Field(description="Digest of the platform's manifest.")
    manifest_size: int = Field(ge=0, description="Its size.")
    config_digest: Digest = Field(description="Digest of its config.")
    config_size: int = Field(ge=0, description="Its size.")
    layers: list[BaseLayerPin] = Field(description="Its layers, bottom first.")


class BaseImagePin(Strict):
    """A base image outside the set, pinned by digest: every blob is checked before use."""

    ref: str = Field(description="`REGISTRY/REPO@sha256:...` as the spec gives it.")
    platforms: dict[str, BasePlatformPin] = Field(description="Per platform of the image.")


Lock.model_rebuild()
