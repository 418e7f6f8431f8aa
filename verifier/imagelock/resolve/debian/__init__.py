"""Debian: signed suites -> verified Packages indexes -> a dependency closure -> lock pins.

Modules, each with one job: `apt_sources` (default mirrors from the machine), `release`
(InRelease fetch and OpenPGP verification), `index` (Packages fetch, hash check, parse, cache),
`resolver` (the dependency closure, pure), `lock` (the orchestration `imagelock lock` calls).
"""

from .lock import debian_arch, lock_debian, package_urls, source_mirrors

__all__ = ["debian_arch", "lock_debian", "package_urls", "source_mirrors"]
