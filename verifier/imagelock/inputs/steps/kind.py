"""Build steps: commands the lock runs in the image's assembled root (`run`), each step's changes
one layer. An ordinary step pins no bytes of its own: what it uses is already in the layers below.
A `stage: build` step adds its pinned Debian packages (`step_builds`) to a copy of that root and
keeps only its `outputs`: the build tools never reach the image."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from imagelock.formats.debian import DebianPackagePin
from imagelock.formats.lock import Lock
from imagelock.formats.spec import Step
from imagelock.inputs.kind import (
    BuildInputs,
    Component,
    Dependency,
    Mirrors,
    PinDiff,
    Placement,
    Source,
)
from imagelock.tar.entry import Entry

_HOST_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}


class BuildSteps:
    name = "steps"

    def pins(self, lock: Lock, platform: str) -> Sequence[Step]:
        return lock.steps

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        """The Debian packages of `stage: build` steps (the image's own come with Debian)."""
        stages = [p for per in (lock.step_builds or {}).values() for pins in per.values()
                  for p in pins]
        if not stages:
            return
        # lazy: the Debian mirrors load only for a lock with build stages
        from imagelock.inputs.debian.kind import deb_source

        seen: set[str] = set()
        for deb in stages:
            if deb.sha256 not in seen:
                seen.add(deb.sha256)
                yield deb_source(deb, mirrors, f"build package {deb.name} {deb.version}")

    def platform_layers(self, lock: Lock) -> set[str]:
        return {st.layer or st.name for st in lock.steps}  # they run the platform's own programs

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        return iter(())

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        """Run the lock's build steps on the assembled layers; one layer per step."""
        if not lock.steps:
            return {}
        # lazy: the sandbox loads only for a build that has steps
        from imagelock.inputs.steps.run import run_steps
        from imagelock.sandbox import emulation

        host = _HOST_PLATFORM.get(os.uname().machine)
        if platform != host:
            # A step runs a shell and its children, each a foreign program: the kernel must
            # hand them to qemu-user (binfmt_misc, F flag, so it works in the sandbox's root).
            # Registered here when root; otherwise the error says how.
            emulation.ensure_binfmt(emulation.machine_of_platform(platform))

        step_layers = self.platform_layers(lock)
        below = [layers[n] for n in lock.layers if n not in step_layers]
        stages = (lock.step_builds or {}).get(platform, {})
        return run_steps(lock.steps, below, build.workdir, source_date_epoch=lock.source_date_epoch,
                         stage_packages=lambda name: _stage_entries(stages.get(name, []), build,
                                                                    lock.source_date_epoch))

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        return iter(())  # the lock's digest covers the commands; stage packages build nothing kept

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        return PinDiff()  # a changed step shows with the image's settings (`~ steps: ...`)

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        return iter(())


def _stage_entries(pins: Sequence[DebianPackagePin], build: BuildInputs, sde: int) -> list[Entry]:
    """The files of a build stage's own Debian packages (no database: the stage is thrown away)."""
    if not pins:
        return []
    # lazy: .deb extraction loads only for a build stage
    from imagelock.inputs.debian.root import debian_entries

    root = debian_entries(pins, build.store, build.workdir / "stage-debs", source_date_epoch=sde,
                          ldconfig=False)
    # the merged-/usr links too (/bin -> usr/bin): the image may lack the ones its tools need
    links = [e for e in root.system if e.type == "symlink" and "/" not in e.path]
    return [*links, *(e for entries in root.packages.values() for e in entries)]
