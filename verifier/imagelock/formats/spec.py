"""The spec, `imagelock.yaml`: what a human writes to say what goes into an image.

Every model forbids unknown keys. The lock records the digest of the spec normalised by these
models (canonical JSON of `Spec.model_dump(mode="json")`), so comments and formatting never make
a lock stale, but any change of meaning does.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from imagelock.formats.common import (
    MAX_EPOCH,
    ImagePath,
    Mode,
    Owner,
    Sha256Hex,
    Strict,
    check_path_bounds,
)
from imagelock.formats.debian import DebianContents, DebianSource
from imagelock.formats.python import PythonContents, PythonIndexSource

LAYER_NAME = r"^[a-z0-9][a-z0-9._-]*$"
PLATFORM = re.compile(r"^linux/(amd64|arm64|arm|386|ppc64le|s390x|riscv64)(/v[5-8])?$")


class ImageSection(Strict):
    """Names the image and the platforms it is built for."""

    name: str = Field(
        pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$",
        description="Repository name the image is tagged with, e.g. `hello` or `team/hello` "
        "(no registry host: where an image is pushed is decided at push time).",
    )
    tag: str = Field(
        default="latest",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="Tag written into the OCI layout's ref.name and the docker-archive's RepoTags.",
    )
    platforms: list[str] = Field(
        default_factory=lambda: ["linux/amd64"],
        min_length=1,
        description="Target platforms as `os/arch[/variant]`. One platform per lock entry.",
    )
    layers: list[Annotated[str, Field(pattern=LAYER_NAME)]] | None = Field(
        default=None,
        description="Layer names in order, bottom first. Inputs name their layer with `layer:`. "
        "When omitted, layers appear in the order: debian, python, files, then others in order "
        "of first use.",
    )

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str]) -> list[str]:
        for p in v:
            if not PLATFORM.match(p):
                raise ValueError(f"{p!r} is not a platform like linux/amd64 or linux/arm64")
        if len(set(v)) != len(v):
            raise ValueError("a platform is listed twice")
        return v


class HttpSource(Strict):
    """A named place pinned downloads come from; the lock records paths relative to it."""

    kind: Literal["http"] = Field(description="`http`: plain files under one or more base URLs.")
    mirrors: list[str] = Field(
        default_factory=list,
        description="Base URLs tried in order. Overridden by `--mirror NAME=URL` and "
        "IMAGELOCK_MIRROR_<NAME>. May be empty in the spec when always given at run time.",
    )


class FileInput(Strict):
    """A file or directory from the build context, copied into the image."""

    src: Annotated[str, AfterValidator(check_path_bounds)] = Field(
        min_length=1,
        description="Path relative to the context directory. A directory is copied recursively: "
        "its files, subdirectories and symlinks (which must stay inside it).",
    )
    dest: ImagePath = Field(description="Where it goes in the image (the directory itself for a "
                            "directory `src`).")
    mode: Mode | None = Field(
        default=None,
        description="Mode for the file (or every file of a directory). Default: 0755 when the "
        "context file has any execute bit, else 0644; directories 0755.",
    )
    dir_mode: Mode | None = Field(
        default=None, description="Mode for directories created from a directory `src`. Default 0755."
    )
    owner: Owner = Field(default="0:0", description="Owner of everything this input creates.")
    layer: str | None = Field(default=None, pattern=LAYER_NAME, description="Layer name. Default `files`.")


class DownloadInput(Strict):
    """A file fetched from a URL or a named source, pinned by sha256."""

    url: str | None = Field(default=None, description="Full URL (http, https or file). Either "
                            "`url` or `source` + `path`.")
    source: str | None = Field(default=None, description="Name of an `http` source in `sources`.")
    path: str | None = Field(default=None, description="Path relative to the source's mirrors.")
    sha256: Sha256Hex | None = Field(
        default=None,
        description="Expected sha256. When given, `lock` refuses other content; when omitted, "
        "`lock` pins whatever it downloads (trust on first use, shown in the lock for review).",
    )
    dest: ImagePath = Field(description="Path of the file in the image, or the directory to "
                            "unpack into when `unpack` is true.")
    unpack: bool = Field(default=False, description="Unpack a tar archive (plain, gzip, xz, bzip2) "
                         "into `dest` instead of copying the file.")
    strip_components: int = Field(default=0, ge=0, description="With `unpack`: leading path "
                                  "components to drop from each member.")
    mode: Mode | None = Field(default=None, description="File mode; default 0644 (with `unpack`: "
                              "each member's own mode).")
    owner: Owner | None = Field(default=None, description='Owner; default "0:0" (with `unpack`: '
                                "each member's own numeric owner unless given).")
    layer: str | None = Field(default=None, pattern=LAYER_NAME, description="Layer name. Default `files`.")
    platforms: list[str] | None = Field(
        default=None, min_length=1, description="Only for these of `image.platforms` (a binary "
        "per architecture: one entry per platform, each with its own URL and sha256). Default: "
        "every platform.")

    @model_validator(mode="after")
    def _where(self) -> DownloadInput:
        if (self.url is None) == (self.source is None):
            raise ValueError("give either `url` or `source` with `path`")
        if self.source is not None and not self.path:
            raise ValueError("`source` needs a `path` relative to the source's mirrors")
        if self.url is not None and self.path is not None:
            raise ValueError("`path` goes with `source`, not with `url`")
        if self.strip_components and not self.unpack:
            raise ValueError("`strip_components` only applies with `unpack: true`")
        return self


class PathEntry(Strict):
    """A directory, symlink or hardlink the image needs that no input provides as such."""

    path: ImagePath = Field(description="The path in the image.")
    type: Literal["directory", "symlink", "hardlink"] = Field(description="What to create.")
    target: str | None = Field(
        default=None,
        description="For a symlink: the link text (relative, or absolute within the image). "
        "For a hardlink: the absolute in-image path of an existing file in the same layer.",
    )
    mode: Mode | None = Field(default=None, description="Directory mode (default 0755).")
    owner: Owner = Field(default="0:0", description="Owner of a directory or symlink.")
    layer: str | None = Field(default=None, pattern=LAYER_NAME, description="Layer name. Default `files`.")

    @model_validator(mode="after")
    def _target(self) -> PathEntry:
        if self.type == "directory" and self.target is not None:
            raise ValueError("a directory has no `target`")
        if self.type != "directory" and not self.target:
            raise ValueError(f"a {self.type} needs a `target`")
        if self.type != "directory" and self.mode is not None:
            raise ValueError(f"a {self.type} has no mode of its own")
        if self.type == "hardlink" and self.target and not self.target.startswith("/"):
            raise ValueError("a hardlink's `target` is an absolute in-image path")
        if self.target is not None:
            check_path_bounds(self.target, "target")
        return self


class Contents(Strict):
    """Everything that goes into the image, by kind."""

    files: list[FileInput] = Field(default_factory=list, description="Files from the build context.")
    downloads: list[DownloadInput] = Field(default_factory=list, description="Pinned downloads.")
    debian: DebianContents | None = Field(
        default=None, description="Debian packages from the spec's `debian` sources."
    )
    python: PythonContents | None = Field(
        default=None, description="Python requirements, installed from pinned wheels."
    )


class User(Strict):
    """An account added to /etc/passwd after base-passwd's defaults (Debian images)."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]*\$?$", description="Login name.")
    uid: int = Field(ge=0, lt=2**31, description="Numeric user id.")
    gid: int = Field(ge=0, lt=2**31, description="Numeric primary group id.")
    home: str = Field(default="/nonexistent", pattern=r"^/", description="Home directory.")
    shell: str = Field(default="/usr/sbin/nologin", pattern=r"^/", description="Login shell.")


class Group(Strict):
    """A group added to /etc/group after base-passwd's defaults (Debian images)."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$", description="Group name.")
    gid: int = Field(ge=0, lt=2**31, description="Numeric group id.")
    members: list[str] = Field(default_factory=list, description="Supplementary members.")


class Accounts(Strict):
    """Users and groups the image needs beyond the distribution's defaults."""

    users: list[User] = Field(default_factory=list, description="Users, in order.")
    groups: list[Group] = Field(default_factory=list, description="Groups, in order.")


class ImageConfig(Strict):
    """The OCI image config's runtime defaults."""

    entrypoint: list[str] | None = Field(default=None, description="Entrypoint argv.")
    cmd: list[str] | None = Field(default=None, description="Default arguments (Cmd).")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables. Written sorted by name. PATH defaults to "
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin when not given.",
    )
    user: str | None = Field(default=None, description='User to run as, e.g. "1000:1000" or a name.')
    workdir: str | None = Field(default=None, pattern=r"^/", description="Working directory.")
    labels: dict[str, str] = Field(default_factory=dict, description="Image labels.")
    ports: list[str] = Field(
        default_factory=list,
        description='Exposed ports as "PORT" or "PORT/tcp|udp|sctp"; written as "PORT/proto".',
    )
    stop_signal: str | None = Field(default=None, description="StopSignal, e.g. SIGTERM.")

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not k or "=" in k or "\x00" in k:
                raise ValueError(f"{k!r} is not a valid environment variable name")
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str]) -> list[str]:
        out = []
        for p in v:
            p = str(p)
            m = re.match(r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$", p)
            if not m or not 0 < int(m.group(1)) < 65536:
                raise ValueError(f"{p!r} is not a port like 8080 or 8080/tcp")
            out.append(f"{int(m.group(1))}/{m.group(2) or 'tcp'}")
        if len(set(out)) != len(out):
            raise ValueError("a port is listed twice")
        return out


class Step(Strict):
    """A hermetic build command run inside the image's root file system (no network, a clean
    environment, SOURCE_DATE_EPOCH, a fixed host name, all uids usable). Its changes become a
    layer of their own."""

    name: str = Field(pattern=LAYER_NAME, description="Step name; also its default layer name.")
    run: list[str] | None = Field(default=None, min_length=1,
                                  description="Command as an argv list, run as is.")
    shell: str | None = Field(default=None, min_length=1,
                              description="Command line run with /bin/sh -c (the image needs a shell).")
    env: dict[str, str] = Field(default_factory=dict,
                                description="Extra environment variables for the command.")
    workdir: str = Field(default="/", pattern=r"^/", description="Working directory in the image.")
    layer: str | None = Field(default=None, pattern=LAYER_NAME,
                              description="Layer for the step's changes. Default: the step's name.")
    timeout: int = Field(default=3600, gt=0, description="Seconds before the step is stopped.")
    stage: Literal["build"] | None = Field(
        default=None,
        description="`build`: a build-only stage. The step runs on the image so far plus its "
        "`build_requires_debian` packages, and only its `outputs` go into its layer: the build "
        "tools never reach the image. Absent: an ordinary step, all of whose changes are kept.")
    outputs: list[str] | None = Field(
        default=None,
        description="With `stage: build`: the image paths (files or directories, recursively) "
        "the step's layer keeps; each must exist after the step.")
    build_requires_debian: list[str] | None = Field(
        default=None,
        description="With `stage: build`: Debian packages the stage adds (compilers, -dev "
        "packages), pinned in the lock with the image's (`step_builds`), never in the image.")

    @model_validator(mode="after")
    def _command(self) -> Step:
        if (self.run is None) == (self.shell is None):
            raise ValueError("give exactly one of `run` (an argv list) or `shell` (a command line)")
        if self.stage == "build":
            if not self.outputs:
                raise ValueError("a `stage: build` step names its `outputs` (what the image keeps)")
            for o in self.outputs:
                if not o.startswith("/") or ".." in o.split("/") or o.rstrip("/") == "":
                    raise ValueError(f"output {o!r} must be an absolute image path without '..'")
        elif self.outputs is not None or self.build_requires_debian is not None:
            raise ValueError("`outputs` and `build_requires_debian` need `stage: build`")
        for pkg in self.build_requires_debian or []:
            if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", pkg):
                raise ValueError(f"{pkg!r} is not a Debian package name")
        return self

    def argv(self) -> list[str]:
        return list(self.run) if self.run is not None else ["/bin/sh", "-c", self.shell or ""]


Source = Annotated[HttpSource | DebianSource | PythonIndexSource, Field(discriminator="kind")]


class Spec(Strict):
    """imagelock.yaml, format version 1."""

    version: Literal[1] = Field(description="Spec format version. Always 1 for now.")
    image: ImageSection = Field(description="The image's name, tag and platforms.")
    context: str = Field(
        default=".",
        description="Build context directory, relative to the spec file. Every `files` src is "
        "inside it.",
    )
    source_date_epoch: int | None = Field(
        default=None,
        ge=0,
        le=MAX_EPOCH,
        description="Seconds since the epoch used for every timestamp in the image (at most "
        f"{MAX_EPOCH}, the most a tar header holds). Default: "
        "SOURCE_DATE_EPOCH from the environment when locking, else 0. Recorded in the lock.",
    )
    sources: dict[str, Source] = Field(
        default_factory=dict,
        description="Named package sources, referred to by inputs. Names are used in lock "
        "locations (`NAME:path`) and mirror overrides.",
    )
    contents: Contents = Field(default_factory=Contents, description="What goes into the image.")
    paths: list[PathEntry] = Field(default_factory=list, description="Extra directories and links.")
    steps: list[Step] = Field(
        default_factory=list,
        description="Hermetic build steps, run in order after every other layer is assembled; "
        "each one's changes (with whiteouts for deletions) form its own layer, on top.",
    )
    accounts: Accounts = Field(
        default_factory=Accounts,
        description="Extra users and groups, written into /etc/passwd and /etc/group of a Debian "
        "image (needs the base-passwd package).",
    )
    config: ImageConfig = Field(default_factory=ImageConfig, description="Runtime configuration.")

    @field_validator("steps")
    @classmethod
    def _step_names(cls, v: list[Step]) -> list[Step]:
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError("two steps have the same name")
        layers = [s.layer or s.name for s in v]
        if len(set(layers)) != len(layers):
            raise ValueError("each step needs a layer of its own")
        return v

    @field_validator("sources")
    @classmethod
    def _source_names(cls, v: dict[str, Source]) -> dict[str, Source]:
        for name in v:
            if not re.match(r"^[a-z0-9][a-z0-9_-]*$", name):
                raise ValueError(f"source name {name!r} must be lower-case letters, digits, - or _")
        return v
