"""Field types shared by the spec and the lock: modes, owners, digests, in-image paths."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_MODE = re.compile(r"^0?[0-7]{3,4}$")
_OWNER = re.compile(r"^([0-9]+):([0-9]+)$")


class Strict(BaseModel):
    """Base for every format: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _mode(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            'write a mode as a quoted octal string, for example mode: "0755" '
            "(an unquoted 0755 is read by YAML as the number 493)"
        )
    if not _MODE.match(value):
        raise ValueError(f"{value!r} is not an octal mode like \"0644\" or \"4755\"")
    return value.rjust(4, "0")


def _owner(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str) or not _OWNER.match(value):
        raise ValueError(f'{value!r} is not a numeric owner "UID:GID", for example "1000:1000"')
    return value


Mode = Annotated[
    str,
    BeforeValidator(_mode),
    Field(description='Permission bits as a quoted octal string, e.g. "0644", "0755", "4755".'),
]
Owner = Annotated[
    str,
    BeforeValidator(_owner),
    Field(description='Numeric owner "UID:GID", e.g. "0:0" or "1000:1000".'),
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex sha256.")]
Digest = Annotated[
    str, Field(pattern=r"^sha256:[0-9a-f]{64}$", description="An OCI digest, `sha256:<hex>`.")
]
ImagePath = Annotated[
    str,
    Field(
        min_length=1,
        description="An absolute path inside the image, e.g. /usr/local/bin/hello.",
        pattern=r"^/",
    ),
]


def _rel_path(value: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/") or "\x00" in value:
        raise ValueError(f"{value!r} must be a relative path without '..' (a lock names nothing "
                         "outside its own directory)")
    return value


RelPath = Annotated[str, AfterValidator(_rel_path)]


def mode_int(mode: str) -> int:
    return int(mode, 8)


def owner_ids(owner: str) -> tuple[int, int]:
    uid, gid = owner.split(":")
    return int(uid), int(gid)
