"""Debian in the spec and the lock: a source (suites of a signed archive), contents, and pins.

The spec says which suites to trust and which packages to install; the lock records the signed
index each choice came from (`DebianIndexPin`) and every package with its size and sha256
(`DebianPackagePin`). A package's `location` is `SOURCE:path-under-the-mirror`, never a host:
mirrors are configuration (see `imagelock.fetch.mirrors`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from imagelock.formats.common import Sha256Hex, Strict
from imagelock.formats.maintscripts import DebianScripts, ScriptEffects

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_LAYER_NAME = r"^[a-z0-9][a-z0-9._-]*$"
# Debian policy 5.6.1 (names) and 5.6.12 (versions), with `=` separating a pin.
_PKG_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_PKG_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")


class DebianSource(Strict):
    """Suites of one signed Debian archive, e.g. bookworm and bookworm-updates."""

    kind: Literal["debian"] = Field(description="`debian`: an apt archive with signed InRelease files.")
    suites: list[str] = Field(
        min_length=1,
        description="Suites (code names such as `bookworm`, `bookworm-security`) read from this "
        "archive. When a package is in several, the highest version wins unless pinned.",
    )
    components: list[str] = Field(
        default_factory=lambda: ["main"],
        min_length=1,
        description="Archive components to read, e.g. `main`, `contrib`.",
    )
    keyring: str = Field(
        default=DEFAULT_KEYRING,
        description="Path of the OpenPGP keyring (binary `.gpg` or armored `.asc`) whose keys "
        "must have signed each suite's InRelease; anything else is refused.",
    )
    mirrors: list[str] = Field(
        default_factory=list,
        description="Mirror base URLs (the directory holding `dists/` and `pool/`), tried in "
        "order. Default: the URIs of the machine's apt sources entry listing the suite. "
        "Overridden by IMAGELOCK_MIRROR_<NAME> and `--mirror NAME=URL`.",
    )
    snapshots: list[str] = Field(
        default_factory=list,
        description="Snapshot archive bases (e.g. `BASE/archive/debian`), tried after the "
        "mirrors and the image's input bundle when a rebuild needs a file the mirrors no longer "
        "serve: `BASE/YYYYMMDDTHHMMSSZ/pool/...` at the Date of the signed index the pin came "
        "from. Overridden by IMAGELOCK_SNAPSHOT_<NAME> and `--snapshot NAME=URL`.",
    )

    @field_validator("suites", "components")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for s in v:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", s) or ".." in s:
                raise ValueError(f"{s!r} is not a suite or component name like bookworm or main")
        if len(set(v)) != len(v):
            raise ValueError("a name is listed twice")
        return v


class DebianLayerGroup(Strict):
    """Packages placed in a layer of their own (e.g. a stable base under a changing top)."""

    layer: str = Field(pattern=_LAYER_NAME, description="Layer name for these packages.")
    packages: list[str] = Field(
        min_length=1,
        description="Names of locked packages (requested or pulled in as dependencies) to put "
        "in this layer. Every other package goes to the contents' `layer`.",
    )


class DebianContents(Strict):
    """Debian packages to install: the named ones and everything they depend on."""

    packages: list[str] = Field(
        default_factory=list,
        description="Package names, optionally pinned as `name=version`. Their Depends and "
        "Pre-Depends are added (never Recommends or Suggests). May be empty with `essential`.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Package names never installed. A dependency only they satisfy is dropped "
        "(on purpose: e.g. to leave a shell out of a distroless image). base-passwd, which every "
        "Debian image gets for its accounts, is left out only when named here.",
    )
    essential: bool = Field(
        default=False,
        description="Also install the suites' `Essential: yes` set (a base system with a shell "
        "and dpkg). Off by default: an application image rarely wants it.",
    )
    sources: list[str] | None = Field(
        default=None,
        description="Names of the `debian` sources to choose from, in order of preference for "
        "equal versions. Default: every `debian` source in the spec.",
    )
    layer: str | None = Field(
        default=None,
        pattern=_LAYER_NAME,
        description="Layer for the packages (and, always, for the dpkg database and the files "
        "maintainer scripts would have made). Default `debian`.",
    )
    groups: list[DebianLayerGroup] = Field(
        default_factory=list,
        description="Optional split of the packages into further layers. The package database "
        "stays in `layer`, which must then come after every group's layer.",
    )
    scripts: DebianScripts = Field(
        default_factory=DebianScripts,
        description="Maintainer scripts: their effects are derived at `lock` time and applied "
        "by builds (docs/debian.md); what the image does not get is listed in the lock.",
    )

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for item in v:
            name, _, version = item.partition("=")
            if not _PKG_NAME.match(name):
                raise ValueError(f"{item!r}: {name!r} is not a Debian package name")
            if "=" in item and not _PKG_VERSION.match(version):
                raise ValueError(f"{item!r}: {version!r} is not a Debian version")
            if name in seen:
                raise ValueError(f"{name!r} is listed twice")
            seen.add(name)
        return v

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _PKG_NAME.match(name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return v

    @model_validator(mode="after")
    def _something(self) -> DebianContents:
        if not self.packages and not self.essential:
            raise ValueError("list `packages`, or set `essential: true` for a base system")
        return self

    def requested(self) -> dict[str, str | None]:
        """Name -> pinned version (None when unpinned), in the order written."""
        out: dict[str, str | None] = {}
        for item in self.packages:
            name, sep, version = item.partition("=")
            out[name] = version if sep else None
        return out


class DebianIndexPin(Strict):
    """One signed Packages index that the package pins were chosen from."""

    source: str = Field(description="Name of the spec's `debian` source.")
    suite: str = Field(description="Suite, e.g. `bookworm-security`.")
    inrelease_sha256: Sha256Hex = Field(
        description="sha256 of the InRelease file whose OpenPGP signature was verified."
    )
    date: str = Field(
        description="The Release file's `Date` field, verbatim: when the archive published it. "
        "Recorded instead of enforcing Valid-Until, so an old lock can be re-checked."
    )
    architecture: str = Field(description="Debian architecture of the index, e.g. `amd64`.")
    component: str = Field(description="Archive component, e.g. `main`.")
    packages_path: str = Field(
        description="Path of the fetched index relative to the suite's `dists/SUITE/`, e.g. "
        "`main/binary-amd64/Packages.xz`."
    )
    packages_sha256: Sha256Hex = Field(
        description="sha256 of the uncompressed Packages index, as listed in the signed Release."
    )


class DebianPackagePin(Strict):
    """One .deb in the image, pinned by its sha256 from a signed index."""

    name: str = Field(description="Binary package name.")
    version: str = Field(description="Exact Debian version.")
    architecture: str = Field(description="`amd64`, `arm64`, ... or `all`.")
    source: str = Field(description="Name of the spec's `debian` source it comes from.")
    location: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*:[^/]",
        description="`SOURCE:pool/...`: the source name, a colon, and the path of the .deb "
        "relative to the mirror base (the index's Filename). Never a host.",
    )
    size: int = Field(ge=0, description="Size of the .deb in bytes.")
    sha256: Sha256Hex = Field(description="sha256 of the .deb.")
    suite: str = Field(description="Suite whose index listed it (decides the default mirror).")


class DebianPlatformLock(Strict):
    """The Debian pins of one platform: the signed indexes read and the packages chosen."""

    indexes: list[DebianIndexPin] = Field(description="Every signed Packages index read.")
    packages: list[DebianPackagePin] = Field(description="Every .deb installed, sorted by name.")
    script_tools: list[DebianPackagePin] = Field(
        default_factory=list,
        description="Packages the maintainer scripts need while they run at `lock` time that the "
        "image does not install: the Essential set dpkg guarantees every script (shell, "
        "coreutils, sed, perl-base, ...) and its dependencies, when `essential` is off. Never "
        "in the image; pinned so that the derivation can be repeated and reviewed.",
    )
    scripts: ScriptEffects | None = Field(
        default=None,
        description="What the packages' maintainer scripts do, as actions the build applies. "
        "Absent in locks written before imagelock derived them, or with `scripts.apply: false`: "
        "such builds install the packages' files only.",
    )


class DebianLayout(Strict):
    """Where the packages go: the layer of the packages and database, and optional groups."""

    layer: str = Field(description="Layer of the packages not in a group, and of the database.")
    groups: list[DebianLayerGroup] = Field(default_factory=list, description="Package groups.")
