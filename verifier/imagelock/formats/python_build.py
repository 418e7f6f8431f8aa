"""Source builds in the lock: a wheel built from a pinned source distribution, in a build stage.

A project the spec consents to build (`contents.python.source_builds`) and for which no wheel
fits the image is pinned as a `SourceBuildPin`: its sdist (sha256, found by file name on the
source's indexes like a wheel), its PEP 517 build backend, the wheels of its build requirements,
and the Debian packages its build needs besides the image's own. None of the build's inputs goes
into the image: they make up the build stage. The wheel the build gave at `lock` time is pinned in
`python` like any other wheel (with `origin: source-build`) and its sha256 is the expected result
of every later build of it.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from imagelock.formats.common import Sha256Hex, Strict
from imagelock.formats.debian import DebianPackagePin
from imagelock.formats.python import WheelPin

_PROJECT = r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?"
_SDIST = r"[A-Za-z0-9_.+!-]+\.(tar\.gz|zip)"
#: What the build stage's rules are; a change here makes built wheels of old locks built anew.
BUILD_RULES = "1"


class SdistPin(Strict):
    """A source distribution, pinned by sha256 and found by file name on the configured indexes."""

    filename: str = Field(pattern=rf"^{_SDIST}$", description="The sdist's file name.")
    sha256: Sha256Hex = Field(description="sha256 of the sdist file.")
    size: int = Field(ge=0, description="Size of the sdist file in bytes.")
    location: str = Field(
        pattern=rf"^[a-z0-9][a-z0-9_-]*:{_PROJECT}/{_SDIST}$",
        description="`SOURCE:project/filename`, as for wheels; never a host.")

    @property
    def source(self) -> str:
        return self.location.split(":", 1)[0]

    @property
    def project(self) -> str:
        return self.location.split(":", 1)[1].split("/", 1)[0]


class SourceBuildPin(Strict):
    """One wheel built from source: everything its build stage holds, and what it must give."""

    name: str = Field(pattern=rf"^{_PROJECT}$", description="Project name, PEP 503-normalised.")
    version: str = Field(min_length=1, description="Exact version.")
    sdist: SdistPin = Field(description="The source distribution built.")
    backend: str = Field(
        pattern=r"^[A-Za-z0-9_.]+(:[A-Za-z0-9_.]+)?$",
        description="The PEP 517 build backend (`build-backend` of pyproject.toml, or "
        "`setuptools.build_meta:__legacy__` when the sdist names none).")
    backend_path: list[str] = Field(
        default_factory=list, description="In-tree backend directories (`backend-path`).")
    requires: list[str] = Field(
        description="The build requirements: `build-system.requires` (PEP 518; setuptools when "
        "absent) plus what the backend asked for (`get_requires_for_build_wheel`).")
    build_wheels: list[WheelPin] = Field(
        description="The wheels that satisfy `requires` for the image's Python: installed into "
        "the build stage only.")
    build_debian: list[DebianPackagePin] = Field(
        default_factory=list,
        description="Debian packages of the build stage besides the image's own (the spec's "
        "`build_requires_debian`, their dependencies and the Essential set), sorted by name.")
    wheel: str = Field(description="File name of the wheel the build gives.")
    wheel_sha256: Sha256Hex = Field(description="sha256 of the wheel every build must give.")
    rules: str = Field(default=BUILD_RULES, description="Version of the build stage's rules "
                       "(environment, paths, flags): spec/README.md, Source builds.")

    @model_validator(mode="after")
    def _consistent(self) -> SourceBuildPin:
        if self.sdist.project != self.name:
            raise ValueError(f"sdist location {self.sdist.location!r} does not name {self.name!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.+!-]+\.whl", self.wheel):
            raise ValueError(f"{self.wheel!r} is not a wheel file name")
        return self
