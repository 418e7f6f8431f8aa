"""Maintainer-script effects: what the packages' scripts do in a fresh install, as plain data.

`imagelock lock` runs every preinst, postinst and trigger once, in a sandbox, and records what
they did as the actions below (`ScriptEffects`, per platform in the lock); `imagelock build`
applies the actions and runs no script. What the lock cannot record or never lets run (services,
keys, binary outputs) is listed in `not_applied`, per package; the spec's `scripts` settings
acknowledge such items or ask for a package's script to run as a build step.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from imagelock.formats.common import ImagePath, Mode, Owner, Sha256Hex, Strict

_PACKAGE = Field(description="The package whose script did this (`name`, or `name:arch` for "
                 "Multi-Arch: same packages).")
_ALT_NAME = re.compile(r"^[^/\s]+$")


class DebianScripts(Strict):
    """What to do about the packages' maintainer scripts (default: derive and apply their effects)."""

    apply: bool = Field(
        default=True,
        description="Run the maintainer scripts at `lock` time in the rootfs sandbox and record "
        "their effects in the lock (alternatives, system accounts, statoverrides, enabled "
        "configuration, generated files, bytecode); builds apply them. `false`: install the "
        "packages' files only (needs no root when locking).",
    )
    acknowledge: list[str] = Field(
        default_factory=list,
        description="Items of the lock's `not_applied` list you have reviewed: `PACKAGE: WHAT` "
        "as the lock words it (a prefix of WHAT is enough, e.g. `openssh-server: ssh-keygen`), "
        "or `PACKAGE` for all of a package's items. `lock` then stops listing them on stderr.",
    )
    run: list[str] = Field(
        default_factory=list,
        description="Packages whose `postinst configure` runs again as a hermetic build step "
        "(rootfs sandbox, needs root) for outputs the lock cannot hold as data (binary files); "
        "each such output is checked against the sha256 the lock recorded.",
    )
    alternatives: dict[str, ImagePath] = Field(
        default_factory=dict,
        description="update-alternatives choices, `NAME: PATH` (e.g. `pager: /usr/bin/less`): "
        "the link group NAME points at PATH (manual mode) instead of its highest-priority "
        "choice. PATH must be one of the group's registered choices.",
    )

    @field_validator("alternatives")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _ALT_NAME.match(name):
                raise ValueError(f"{name!r} is not an alternative name like `editor` or `pager`")
        return v


# --- actions ----------------------------------------------------------------------------------


class AlternativeChoice(Strict):
    """One registered choice of a link group (`update-alternatives --install`)."""

    path: ImagePath = Field(description="The alternative: the file the group's link points at.")
    priority: int = Field(description="Priority; in auto mode the highest wins.")
    slaves: dict[str, ImagePath] = Field(default_factory=dict,
                                         description="Slave name -> the file for this choice.")
    package: str = _PACKAGE


class AlternativeSlave(Strict):
    """A slave link of a link group (e.g. the manual page beside a command)."""

    name: str = Field(description="Slave name, e.g. `awk.1.gz`.")
    link: ImagePath = Field(description="The generic path, e.g. /usr/share/man/man1/awk.1.gz.")


class Alternative(Strict):
    """A link group of update-alternatives: /LINK -> /etc/alternatives/NAME -> the selected path.

    The build writes the links and `/var/lib/dpkg/alternatives/NAME` as update-alternatives
    does."""

    action: Literal["alternative"] = Field(default="alternative", description="The kind of action.")
    name: str = Field(description="The group's name, e.g. `awk`.")
    link: ImagePath = Field(description="The generic path, e.g. /usr/bin/awk.")
    slaves: list[AlternativeSlave] = Field(default_factory=list, description="Slave links.")
    choices: list[AlternativeChoice] = Field(description="Every registered choice.")
    mode: Literal["auto", "manual"] = Field(description="`auto`: the highest priority; `manual`: "
                                            "chosen in the spec's `scripts.alternatives`.")
    selected: ImagePath = Field(description="The choice the links point at.")


class ScriptGroup(Strict):
    """A system group a script created (addgroup/groupadd), its gid pinned here."""

    action: Literal["group"] = Field(default="group", description="The kind of action.")
    name: str = Field(description="Group name.")
    gid: int = Field(ge=0, description="Group id the script was given; kept when re-locking.")
    members: list[str] = Field(default_factory=list, description="Members.")
    gshadow: str | None = Field(default=None, description="The rest of its /etc/gshadow line "
                                "after `NAME:`, e.g. `!::` (none without shadow files).")
    package: str = _PACKAGE


class ScriptUser(Strict):
    """A system user a script created (adduser --system/useradd), its uid pinned here."""

    action: Literal["user"] = Field(default="user", description="The kind of action.")
    name: str = Field(description="Login name.")
    uid: int = Field(ge=0, description="User id the script was given; kept when re-locking.")
    gid: int = Field(ge=0, description="Primary group id.")
    gecos: str = Field(default="", description="The GECOS (comment) field.")
    home: str = Field(description="Home directory.")
    shell: str = Field(description="Login shell.")
    shadow: str | None = Field(default=None, description="The rest of its /etc/shadow line after "
                               "`NAME:`, e.g. `!:20454::::::` (the day is SOURCE_DATE_EPOCH's).")
    package: str = _PACKAGE


class Member(Strict):
    """A user added to an existing group (`adduser USER GROUP`)."""

    action: Literal["member"] = Field(default="member", description="The kind of action.")
    group: str = Field(description="Group name.")
    user: str = Field(description="User name.")
    package: str = _PACKAGE


class StatOverride(Strict):
    """`dpkg-statoverride --update --add`: the path's owner and mode, kept across upgrades."""

    action: Literal["statoverride"] = Field(default="statoverride", description="The kind of action.")
    path: ImagePath = Field(description="The overridden path.")
    user: str = Field(description="Owner, by name (as dpkg records it).")
    group: str = Field(description="Group, by name.")
    mode: str = Field(pattern=r"^[0-7]{1,4}$", description="Mode in octal, as dpkg records it.")
    package: str = _PACKAGE


class Directory(Strict):
    """A directory a script made (`install -d`, `mkdir`), or an existing one made again."""

    action: Literal["directory"] = Field(default="directory", description="The kind of action.")
    path: ImagePath
    mode: Mode
    owner: Owner
    package: str = _PACKAGE


class Symlink(Strict):
    """A symbolic link a script made (`ln -s`, a2enmod, base-files' /var/run -> /run)."""

    action: Literal["symlink"] = Field(default="symlink", description="The kind of action.")
    path: ImagePath
    target: str = Field(description="The link text.")
    owner: Owner = "0:0"
    package: str = _PACKAGE


class Attributes(Strict):
    """New owner or mode of a path a package ships (`chown`, `chmod`)."""

    action: Literal["attributes"] = Field(default="attributes", description="The kind of action.")
    path: ImagePath
    mode: Mode
    owner: Owner
    package: str = _PACKAGE


class Copy(Strict):
    """A file a script copied from another file of the image (e.g. /etc/profile from
    /usr/share/base-files/profile)."""

    action: Literal["copy"] = Field(default="copy", description="The kind of action.")
    path: ImagePath
    source: ImagePath = Field(description="The file whose bytes it has (as installed, before "
                              "any script ran).")
    mode: Mode
    owner: Owner
    package: str = _PACKAGE


class File(Strict):
    """A text file a script wrote (/etc/shells, PAM's common-* files, ucf's registry)."""

    action: Literal["file"] = Field(default="file", description="The kind of action.")
    path: ImagePath
    text: str = Field(description="The file's content (UTF-8).")
    mode: Mode
    owner: Owner
    package: str = _PACKAGE


class Remove(Strict):
    """A path a script removed."""

    action: Literal["remove"] = Field(default="remove", description="The kind of action.")
    path: ImagePath
    package: str = _PACKAGE


class PythonCompile(Strict):
    """Bytecode a script compiled (py3compile, or the interpreter's own py_compile): the build
    compiles the same sources with the image's own interpreter, in a sandbox."""

    action: Literal["python-compile"] = Field(default="python-compile", description="The kind of action.")
    interpreter: ImagePath = Field(description="The image's interpreter, e.g. /usr/bin/python3.11.")
    optimize: int = Field(default=0, ge=0, le=2, description="Optimization level (`-O`).")
    sources: list[ImagePath] = Field(description="Modules compiled, each into its directory's "
                                     "__pycache__.")
    package: str = _PACKAGE


class Output(Strict):
    """One file a `run` step must produce, with the sha256 it had when the lock was made."""

    path: ImagePath
    sha256: Sha256Hex
    mode: Mode
    owner: Owner


class RunScript(Strict):
    """A package's script run again at build time as a hermetic step (spec `scripts.run`), for
    outputs the lock cannot hold as data; each output is checked against its sha256."""

    action: Literal["run"] = Field(default="run", description="The kind of action.")
    args: list[str] = Field(description="The script and its arguments, e.g. `postinst configure`.")
    outputs: list[Output] = Field(description="The files taken from the step, checked.")
    package: str = _PACKAGE


Action = Annotated[
    Alternative | ScriptGroup | ScriptUser | Member | StatOverride | Directory | Symlink | Attributes | Copy
    | File | Remove | PythonCompile | RunScript,
    Field(discriminator="action"),
]


class NotApplied(Strict):
    """Something a script did or asked for that the image does not get, and why."""

    package: str = _PACKAGE
    kind: Literal["command", "output", "failure", "not-run"] = Field(
        description="`command`: a command that never runs (services, keys); `output`: a change "
        "the lock does not record (binary files, logs, caches); `failure`: the script exited "
        "non-zero; `not-run`: the script could not run at all."
    )
    what: str = Field(description="The command line, the path, or the script.")
    reason: str = Field(description="Why the image does not get it.")
    expected: bool = Field(description="True when imagelock leaves it out on purpose (services, "
                           "keys, caches, logs); false when it needs a person's review.")
    acknowledged: bool = Field(default=False, description="Listed in the spec's "
                               "`scripts.acknowledge`.")

    def key(self) -> str:
        return f"{self.package}: {self.what}"


class ScriptEffects(Strict):
    """The effects of one platform's maintainer scripts, in the order the build applies them."""

    inputs: Sha256Hex = Field(description="sha256 of what they were derived from (the packages' "
                              "sha256s, the spec's `scripts` settings and the deriving rules); "
                              "a re-lock with the same inputs keeps them.")
    ran: list[str] = Field(description="Every script run, in order: `PACKAGE SCRIPT ARGS`.")
    actions: list[Action] = Field(description="What the build applies.")
    not_applied: list[NotApplied] = Field(default_factory=list,
                                          description="What the image does not get, per package.")


def effect_line(a: Action) -> str:
    """One action as a person reads it (`imagelock inspect`, `lock`'s notes)."""
    if isinstance(a, Alternative):
        return f"alternative {a.name}: {a.link} -> {a.selected} ({a.mode}, {len(a.choices)} choices)"
    if isinstance(a, ScriptUser):
        return f"user {a.name} (uid {a.uid}, gid {a.gid}, home {a.home})"
    if isinstance(a, ScriptGroup):
        return f"group {a.name} (gid {a.gid})"
    if isinstance(a, Member):
        return f"member {a.user} of group {a.group}"
    if isinstance(a, StatOverride):
        return f"statoverride {a.path} {a.user}:{a.group} {a.mode}"
    if isinstance(a, Symlink):
        return f"symlink {a.path} -> {a.target}"
    if isinstance(a, Copy):
        return f"copy {a.path} from {a.source} ({a.mode} {a.owner})"
    if isinstance(a, (Directory, Attributes, File)):
        return f"{a.action} {a.path} ({a.mode} {a.owner})"
    if isinstance(a, PythonCompile):
        return f"python-compile {len(a.sources)} modules with {a.interpreter}"
    if isinstance(a, RunScript):
        return f"run {' '.join(a.args).strip()} at build ({len(a.outputs)} outputs checked)"
    return f"{a.action} {a.path}"


def applied_effects(effects: ScriptEffects | None) -> dict[str, list[str]]:
    """Per package, the effects a build applies, one line each (what `inspect` shows)."""
    out: dict[str, list[str]] = {}
    if effects is None:
        return out
    for a in effects.actions:
        pkg = a.choices[0].package if isinstance(a, Alternative) and a.choices else getattr(
            a, "package", "")
        out.setdefault(pkg, []).append(effect_line(a))
    return out
