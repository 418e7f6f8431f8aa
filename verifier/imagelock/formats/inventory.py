"""What the inventory commands print: `outdated`, `inspect` and `sbom`, each `--json` a model.

These commands read a lock (and, for `outdated`, the suites its spec names) and say what is
inside an image and what needs updating. The JSON a command prints is its model's dump, so the
schemas in spec/schema/ describe it; `human()` is the text it prints without `--json`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imagelock.formats.common import Strict

# --- outdated ---------------------------------------------------------------------------------


class OutdatedPin(Strict):
    """One Debian pin that a configured suite holds a newer version of (or no longer lists)."""

    platform: str = Field(description="Platform of the pin, e.g. `linux/amd64`.")
    name: str = Field(description="Binary package name.")
    architecture: str = Field(description="Debian architecture of the pin.")
    source_package: str = Field(description="Source package it is built from (the index's "
                                "`Source`): its other binaries move with it on `--upgrade`.")
    locked: str = Field(description="The version the lock pins.")
    locked_suite: str = Field(description="`SOURCE/SUITE` the pinned version came from.")
    newest: str = Field(description="The newest version in any configured suite.")
    newest_suite: str = Field(description="`SOURCE/SUITE` of the newest version.")
    security: bool = Field(description="Whether a security suite holds a version newer than the "
                           "locked one: `lock --upgrade-security` moves it.")
    security_version: str | None = Field(default=None, description="The newest version in a "
                                         "security suite, when it is newer than the locked one.")
    security_suite: str | None = Field(default=None, description="`SOURCE/SUITE` of that "
                                       "security version.")
    gone: bool = Field(default=False, description="The locked version is in no configured suite "
                       "any more (re-locking keeps it only from the store; `--upgrade` moves it).")
    held: str | None = Field(default=None, description="Why an upgrade would not move it (the "
                             "spec pins `name=version`), when something holds it.")


class OutdatedResult(Strict):
    """`imagelock outdated`: every Debian pin with a newer version in the spec's suites."""

    lock: str = Field(description="Path of the lock checked.")
    suites: list[str] = Field(description="`SOURCE/SUITE (Date)` of every index read, with the "
                              "date its archive published it; security suites are marked.")
    checked: int = Field(ge=0, description="Debian pins checked (every platform).")
    updates: list[OutdatedPin] = Field(description="Pins with a newer version, by platform and "
                                       "name.")
    security_pending: int = Field(ge=0, description="How many of them have a security update "
                                  "(exit 1 when any).")
    notes: list[str] = Field(default_factory=list, description="Things worth knowing, e.g. that "
                             "Python wheels are not checked.")

    def human(self) -> str:
        lines = [f"{self.lock}: {self.checked} Debian pins checked against "
                 + (", ".join(self.suites) or "no suite")]
        if not self.updates:
            lines.append("every pin is at the newest version of the configured suites")
        multi = len({u.platform for u in self.updates}) > 1
        rows = [("PACKAGE", "LOCKED", "NEWEST", "FROM", "")]
        for u in self.updates:
            flag = "SECURITY" if u.security else ""
            if u.security and u.security_version != u.newest:
                flag += f" ({u.security_version} in {u.security_suite})"
            if u.gone:
                flag += (" " if flag else "") + "locked version gone"
            if u.held:
                flag += (" " if flag else "") + f"held: {u.held}"
            name = f"{u.name} [{u.platform}]" if multi else u.name
            rows.append((name, u.locked, u.newest, u.newest_suite, flag))
        if self.updates:
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                      + ("  " + r[4] if r[4] else "") for r in rows]
            lines[-len(rows):] = [ln.rstrip() for ln in lines[-len(rows):]]
        if self.security_pending:
            lines.append(f"{self.security_pending} security update(s) pending: run `imagelock "
                         "lock --upgrade-security`, then build and review `imagelock diff`")
        elif self.updates:
            lines.append("no security update pending (other updates: `imagelock lock --upgrade "
                         "NAME`)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --- inspect ----------------------------------------------------------------------------------

class InventoryItem(Strict):
    """One thing inside an image, as its lock pins it (an input kind's SBOM component)."""

    kind: str = Field(description="The input kind: `debian` (a .deb), `python` (a wheel), "
                      "`files` (from the build context), `downloads` (a pinned download).")
    name: str = Field(description="Package or project name; for context files, their path in "
                      "the image; for downloads, the file name.")
    version: str | None = Field(default=None, description="Version, for packages and wheels.")
    architecture: str | None = Field(default=None, description="Debian architecture, for .debs.")
    origin: str | None = Field(default=None, description="Where it came from: `SOURCE/SUITE` of "
                               "a .deb, the source name of a wheel, a download's location.")
    layer: str | None = Field(default=None, description="The layer it is placed in.")
    purl: str | None = Field(default=None, description="Its package URL, when it has one.")
    sha256: str = Field(description="sha256 of its bytes (for a layer: its compressed blob).")
    size: int = Field(ge=0, description="Size in bytes.")


class InspectedImage(Strict):
    """One lock (or the lock of one image) and what is inside."""

    target: str = Field(description="The LOCK path or image REF as given.")
    image: str = Field(description="The image's `name:tag`, from the lock.")
    platform: str = Field(description="The platform listed.")
    manifest_digest: str | None = Field(default=None, description="The manifest digest the lock "
                                        "expects for that platform.")
    items: list[InventoryItem] = Field(description="What is inside, by kind, then name (with "
                                       "`--package`, only what matched).")
    effects: dict[str, list[str]] = Field(
        default_factory=dict, description="What the Debian packages' maintainer scripts do that "
        "the build applies, per package, one line per action (from the lock's `scripts`; empty "
        "with `--package`).")


class InspectResult(Strict):
    """`imagelock inspect`: what is inside each lock or image, or which of them match a query."""

    query: str | None = Field(default=None, description="The `--package` condition, when given.")
    images: list[InspectedImage] = Field(description="Every target, in the order given.")
    matched: list[str] = Field(default_factory=list, description="With `--package`: the targets "
                               "holding a matching package (exit 0 even when none does).")

    def human(self) -> str:
        lines: list[str] = []
        for img in self.images:
            if self.query is not None:
                hits = ", ".join(f"{i.name} {i.version or ''}".strip() for i in img.items)
                lines.append(f"{img.target} ({img.image}, {img.platform}): "
                             + (f"MATCH {hits}" if img.items else "no match"))
                continue
            lines.append(f"{img.target}: {img.image} ({img.platform})")
            rows = [("NAME", "VERSION", "KIND", "FROM", "LAYER")]
            rows += [(i.name, i.version or "-", i.kind, i.origin or "-", i.layer or "-")
                     for i in img.items]
            widths = [max(len(r[c]) for r in rows) for c in range(5)]
            lines += [("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
                      for r in rows]
            if img.effects:
                n = sum(len(v) for v in img.effects.values())
                lines.append(f"  maintainer-script effects applied ({n}):")
                for pkg, effects in img.effects.items():
                    lines += [f"    {pkg}: {e}" for e in effects]
        if self.query is not None:
            lines.append(f"{len(self.matched)} of {len(self.images)} match {self.query}")
        return "\n".join(lines)


# --- sbom -------------------------------------------------------------------------------------


class SbomResult(Strict):
    """`imagelock sbom -o FILE`: the document written (without -o the document itself is printed)."""

    output: str = Field(description="Path of the SBOM written.")
    format: Literal["spdx", "cyclonedx"] = Field(description="`spdx` (SPDX 2.3 JSON) or "
                                                 "`cyclonedx` (CycloneDX 1.6 JSON).")
    sha256: str = Field(description="sha256 of the document's bytes (the same lock always gives "
                        "the same bytes).")
    components: int = Field(ge=0, description="Packages, wheels, files and downloads listed.")
    platform: str = Field(description="The platform of the image described; `all` for a "
                          "multi-platform image as a whole.")

    def human(self) -> str:
        return (f"wrote {self.output} ({self.format}, {self.components} components, "
                f"{self.platform})\n  sha256 {self.sha256}")
