"""Debian: signed suites -> verified Packages indexes -> a dependency closure -> lock pins.

Modules, each with one job: `release` (InRelease fetch and OpenPGP verification), `index`
(Packages fetch, hash check, parse, cache), `resolver` (the dependency closure, pure), `lock` (the
orchestration `imagelock lock` calls). Where a source's bytes come from (the machine's apt sources,
mirrors) is the fetch stage's job: `imagelock.fetch.apt_sources` and `imagelock.fetch.debian`.
"""

from imagelock.lock.debian.lock import debian_arch, lock_debian

__all__ = ["debian_arch", "lock_debian"]
