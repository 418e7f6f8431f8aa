"""Python in the spec and the lock: an index source, the requirements to install, and wheel pins.

The spec says what to install (`PythonContents`: requirements, the target interpreter and where
things go in the image); the lock pins every wheel of the resolved set (`WheelPin`) by filename,
size and sha256. A pin's `location` is `SOURCE:project/filename`: the PEP 503 project page name
and the wheel's file name, looked up on the source's indexes at fetch time. It never holds a host
or an index URL: indexes are configuration (pip's own, or mirrors; see `imagelock.fetch.mirrors`), and
the same wheel found anywhere is accepted only with the pinned sha256.
"""

from __future__ import annotations

import re
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import Field, field_validator, model_validator

from imagelock.core.errors import InputError
from imagelock.formats.common import ImagePath, Sha256Hex, Strict

#: Source name of the machine's pip configuration when the spec declares no `python` source.
DEFAULT_SOURCE = "pypi"
#: glibc of the default target (Debian bookworm's libc6 2.36): wheels up to manylinux_2_36 run.
DEFAULT_GLIBC = (2, 36)

_LAYER_NAME = r"^[a-z0-9][a-z0-9._-]*$"
_PY_VERSION = r"^3\.[0-9]{1,2}$"
_PLATFORM_TAG = r"^[a-z0-9_]+$"
_PROJECT = r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?"
_WHEEL = r"[A-Za-z0-9_.+!-]+\.whl"
_LOCATION = re.compile(rf"^[a-z0-9][a-z0-9_-]*:{_PROJECT}/{_WHEEL}$")
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_MANYLINUX = re.compile(r"^manylinux_([0-9]+)_([0-9]+)_([a-z0-9_]+)$")
_LEGACY_TAG = re.compile(r"^(manylinux2014|manylinux2010|manylinux1)_([a-z0-9_]+)$")
#: OCI platform -> the machine name wheel platform tags use.
PLATFORM_MACHINE = {
    "linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm64/v8": "aarch64",
    "linux/386": "i686", "linux/ppc64le": "ppc64le", "linux/s390x": "s390x",
    "linux/arm/v7": "armv7l",
}
# Requirement-file options that would send pip to an index or file the configuration does not
# name, so the lock could not be fetched again from the configured indexes.
_FORBIDDEN_FILE_OPTIONS = (
    "-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links",
    "--trusted-host", "-e", "--editable",
)


class PythonIndexSource(Strict):
    """Python package indexes (PEP 503 simple API) that wheels are looked up on."""

    kind: Literal["python"] = Field(description="`python`: one or more simple-API package indexes.")
    mirrors: list[str] = Field(
        default_factory=list,
        description="Index base URLs (the `.../simple` directory), tried in order. Default: "
        "pip's configuration on the machine (index-url, then extra-index-url). Overridden by "
        "IMAGELOCK_MIRROR_<NAME> and `--mirror NAME=URL`. pip's find-links are always searched "
        "as well.",
    )


class PythonContents(Strict):
    """Python requirements, installed from wheels only, for one target interpreter."""

    requirements: list[str] = Field(
        default_factory=list,
        description="PEP 508 requirements, e.g. `requests>=2.31` or `pyyaml==6.0.2`. Their "
        "dependencies are resolved by pip. Direct URLs are refused: pin by index.",
    )
    requirements_file: str | None = Field(
        default=None,
        description="A pip requirements file, relative to the build context. Index options "
        "(`--index-url`, `--find-links`, `-e`, ...) are refused in it: indexes are "
        "configuration.",
    )
    constraints: str | None = Field(
        default=None,
        description="A constraints file in pip's `-c` format (e.g. an OpenStack release's "
        "upper-constraints.txt), relative to the build context: it bounds versions without "
        "asking for packages. Its sha256 is in the lock; editing it makes the lock stale.",
    )
    source: str = Field(
        default=DEFAULT_SOURCE,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the `python` source whose indexes are used, and the source name "
        "in lock locations. Default `pypi`: the machine's pip configuration unless the spec "
        "declares a source of that name.",
    )
    python_version: str | None = Field(
        default=None,
        pattern=_PY_VERSION,
        description='The image\'s Python as MAJOR.MINOR, e.g. "3.11". Default: the version of '
        "the image's Debian `pythonX.Y` package (e.g. 3.11 on bookworm); required without one.",
    )
    platforms: list[str] | None = Field(
        default=None,
        description="Wheel platform tags the image can run. A `manylinux_2_N_ARCH` tag also "
        "admits every older manylinux tag of that ARCH (manylinux2014, ..., manylinux1). "
        "Default: `manylinux_2_36_ARCH` for the image platform (glibc 2.36, Debian bookworm).",
    )
    implementation: Literal["cp"] = Field(
        default="cp", description="Python implementation tag; `cp` (CPython)."
    )
    abi: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]+$",
        description="ABI tag, e.g. `cp311`. Default: `cp` + the version without the dot. "
        "`abi3` and `none` wheels are always accepted.",
    )
    site_packages: ImagePath | None = Field(
        default=None,
        description="Where packages go. Default `/usr/local/lib/pythonX.Y/dist-packages`, "
        "where Debian's python3 looks for locally installed packages.",
    )
    scripts_dir: ImagePath = Field(
        default="/usr/local/bin", description="Where console scripts and wheel scripts go."
    )
    prefix: ImagePath = Field(
        default="/usr/local",
        description="Root of a wheel's `.data/data` files; headers go to "
        "`PREFIX/include/pythonX.Y/NAME`.",
    )
    interpreter: ImagePath | None = Field(
        default=None,
        description="Interpreter written into script shebangs. Default `/usr/bin/pythonX.Y`.",
    )
    compile: bool = Field(
        default=True,
        description="Byte-compile installed modules (hash-based .pyc, see spec/README.md). Done "
        "only when the building Python has the target's version; otherwise skipped with a notice.",
    )
    layer: str | None = Field(
        default=None, pattern=_LAYER_NAME, description="Layer name. Default `python`."
    )
    source_builds: list[str] | Literal["*"] = Field(
        default_factory=list,
        description="Consent to build wheels from source distributions: project names, or "
        '`"*"` for every project. Only a project for which no wheel fits the image is built; '
        "its sdist, build backend, build requirements (as wheels) and Debian build packages are "
        "pinned, and the wheel is built in the sandbox with the image's own Python "
        "(spec/README.md, Source builds).",
    )
    build_requires_debian: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per project built from source: Debian packages its build needs (compilers, "
        "`-dev` packages), e.g. `{libvirt-python: [gcc, libvirt-dev, pkg-config, python3-dev]}`. "
        "Pinned with the image's Debian packages, installed only in the build stage, never in "
        "the image.",
    )

    @field_validator("source_builds")
    @classmethod
    def _source_builds(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list):
            names = [canonicalize_name(n) for n in v]
            for n, raw in zip(names, v, strict=True):
                if not re.fullmatch(_PROJECT, n):
                    raise ValueError(f"{raw!r} is not a project name")
            if len(set(names)) != len(names):
                raise ValueError("a project is listed twice")
        return v

    @field_validator("build_requires_debian")
    @classmethod
    def _build_requires(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for project, pkgs in v.items():
            if not re.fullmatch(_PROJECT, canonicalize_name(project)):
                raise ValueError(f"{project!r} is not a project name")
            for pkg in pkgs:
                if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", pkg):
                    raise ValueError(f"{pkg!r} (for {project}) is not a Debian package name")
        return v

    def may_build(self, project: str) -> bool:
        """Whether the spec consents to building `project` from its source distribution."""
        if self.source_builds == "*":
            return True
        return canonicalize_name(project) in {canonicalize_name(n) for n in self.source_builds}

    def build_debian(self, project: str) -> list[str]:
        """The Debian build packages the spec names for `project` (empty when none)."""
        want = canonicalize_name(project)
        return next((list(v) for k, v in self.build_requires_debian.items()
                     if canonicalize_name(k) == want), [])

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for item in v:
            if item.lstrip().startswith("-"):
                raise ValueError(f"{item!r} is an option, not a requirement; indexes are configuration")
            try:
                req = Requirement(item)
            except InvalidRequirement as e:
                raise ValueError(f"{item!r} is not a PEP 508 requirement: {e}") from None
            if req.url:
                raise ValueError(f"{item!r} is a direct URL; name a project on the index instead")
            name = canonicalize_name(req.name)
            if name in seen:
                raise ValueError(f"{req.name!r} is listed twice")
            seen.add(name)
        return v

    @field_validator("requirements_file")
    @classmethod
    def _file(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or ".." in v.split("/") or not v.strip()):
            raise ValueError(f"{v!r} must be a path inside the context, without '..'")
        return v

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("list at least one platform tag, or leave `platforms` out")
            for tag in v:
                if not re.match(_PLATFORM_TAG, tag):
                    raise ValueError(f"{tag!r} is not a wheel platform tag like manylinux_2_28_x86_64")
        return v

    @model_validator(mode="after")
    def _something(self) -> PythonContents:
        if not self.requirements and self.requirements_file is None:
            raise ValueError("list `requirements`, or name a `requirements_file`")
        for project in self.build_requires_debian:
            if not self.may_build(project):
                raise ValueError(f"build_requires_debian names {project!r}, which source_builds "
                                 "does not consent to build")
        return self

    # --- the target, with defaults filled in -------------------------------------------------

    @property
    def version(self) -> str:
        """The target version; `lock` fills it in from the Debian packages when not given."""
        if self.python_version is None:
            raise InputError("the target Python version is unknown",
                             field="contents.python.python_version",
                             hint='set python_version (e.g. "3.11"), or install python3 from Debian')
        return self.python_version

    @property
    def nodot(self) -> str:
        return self.version.replace(".", "")

    def abi_tag(self) -> str:
        return self.abi or f"{self.implementation}{self.nodot}"

    def site_packages_dir(self) -> str:
        return self.site_packages or f"/usr/local/lib/python{self.version}/dist-packages"

    def interpreter_path(self) -> str:
        return self.interpreter or f"/usr/bin/python{self.version}"

    def platform_tags(self, platform: str) -> list[str]:
        """The wheel platform tags for an image platform, most preferred first, expanded."""
        if self.platforms is not None:
            return expand_platform_tags(self.platforms)
        machine = PLATFORM_MACHINE.get(platform)
        if machine is None:
            raise InputError(
                f"no default wheel platform tag for image platform {platform!r}",
                field="contents.python.platforms",
                hint="set `platforms`, e.g. [manylinux_2_36_x86_64]; defaults exist for "
                + ", ".join(sorted(PLATFORM_MACHINE)),
            )
        major, minor = DEFAULT_GLIBC
        return expand_platform_tags([f"manylinux_{major}_{minor}_{machine}"])


def expand_platform_tags(tags: list[str]) -> list[str]:
    """Each manylinux tag followed by the older ones it implies (PEP 600), without repeats.

    pip's `--platform` takes tags literally (it expands only manylinux2014/2010), so a
    `manylinux_2_36_x86_64` target would otherwise refuse every manylinux2014 wheel. The order is
    pip's own for a real system: newest glibc first, a legacy alias right after its 2_N tag.
    """
    out: list[str] = []
    for tag in tags:
        m = _MANYLINUX.match(tag)
        legacy = _LEGACY_TAG.match(tag)
        if legacy:
            glibc = {v: k for k, v in _LEGACY_MANYLINUX.items()}[legacy.group(1)]
            m = _MANYLINUX.match(f"manylinux_{glibc[0]}_{glibc[1]}_{legacy.group(2)}")
        if not m:
            out.append(tag)
            continue
        major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
        # packaging.tags stops at the oldest glibc an architecture ever had manylinux wheels for.
        oldest = 5 if arch in ("x86_64", "i686") else 17
        for n in range(minor, -1, -1):
            if major == 2 and n < oldest:
                break
            out.append(f"manylinux_{major}_{n}_{arch}")
            alias = _LEGACY_MANYLINUX.get((major, n))
            if alias and (arch in ("x86_64", "i686") or alias == "manylinux2014"):
                out.append(f"{alias}_{arch}")
    seen: set[str] = set()
    return [t for t in out if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


def forbidden_file_option(line: str) -> str | None:
    """The index option a requirements-file line starts with, if any (see `requirements_file`)."""
    text = line.strip()
    if not text.startswith("-"):
        return None
    word = text.split(None, 1)[0].split("=", 1)[0]
    for opt in _FORBIDDEN_FILE_OPTIONS:
        if word == opt:
            return opt
        if not opt.startswith("--") and not word.startswith("--") and word.startswith(opt):
            return opt  # a short option with its value attached: `-ihttps://...`, `-e.`
    return None


class WheelPin(Strict):
    """One wheel in the image, pinned by sha256 and found by file name on the configured indexes."""

    name: str = Field(pattern=rf"^{_PROJECT}$", description="Project name, PEP 503-normalised.")
    version: str = Field(min_length=1, description="Exact version, as in the wheel's metadata.")
    filename: str = Field(pattern=rf"^{_WHEEL}$", description="The wheel's file name.")
    sha256: Sha256Hex = Field(description="sha256 of the wheel file.")
    size: int = Field(ge=0, description="Size of the wheel file in bytes.")
    location: str = Field(
        pattern=_LOCATION.pattern,
        description="`SOURCE:project/filename`: the source name, the project's simple-API page "
        "name and the wheel's file name. Looked up on the source's indexes (and pip's "
        "find-links) at fetch time; never a host.",
    )
    requested: bool = Field(
        description="Whether the spec asked for it (true) or it came in as a dependency (false); "
        "a requested one gets an empty `REQUESTED` file in its dist-info, as pip does."
    )
    origin: Literal["find-links", "source-build"] | None = Field(
        default=None,
        description="Where the wheel comes from when not from an index (absent: an index): "
        "`find-links`, a local find-links directory of pip's configuration, which a rebuilder "
        "must have too; `source-build`, built from a pinned sdist in the sandbox "
        "(`python_builds`), never downloaded.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WheelPin:
        if self.location.rsplit("/", 1)[1] != self.filename:
            raise ValueError(f"location {self.location!r} does not end in the filename {self.filename!r}")
        if self.location.split(":", 1)[1].split("/", 1)[0] != self.name:
            raise ValueError(f"location {self.location!r} does not name project {self.name!r}")
        return self

    @property
    def source(self) -> str:
        return self.location.split(":", 1)[0]


class PythonInstall(Strict):
    """How the build installs the pinned wheels (the spec's settings with defaults resolved)."""

    layer: str = Field(description="Layer of the installed wheels.")
    python_version: str = Field(pattern=_PY_VERSION, description="Target Python, MAJOR.MINOR.")
    site_packages: ImagePath = Field(description="Where packages go.")
    scripts_dir: ImagePath = Field(description="Where console scripts go.")
    prefix: ImagePath = Field(description="Root of `.data/data` files.")
    interpreter: ImagePath = Field(description="Interpreter in script shebangs.")
    compile: bool = Field(description="Whether to byte-compile (hash-based .pyc).")
    requirements_file_sha256: str | None = Field(
        default=None, description="sha256 of the requirements file, when the spec names one: a "
        "changed file makes the lock stale."
    )
    files_sha256: dict[str, Sha256Hex] | None = Field(
        default=None, description="sha256 of every other file pip read, by path relative to "
        "the context: `constraints`, and each file a `-r`/`-c` line of a requirements file "
        "names. A changed file makes the lock stale. Absent when there are none."
    )
