"""Field types shared by the spec and the lock: modes, owners, digests, in-image paths."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
)
from pydantic_core import CoreSchema

_MODE = re.compile(r"^0?[0-7]{3,4}$")
_OWNER = re.compile(r"^([0-9]+):([0-9]+)$")

MAX_ID = 2**31 - 1
"""Largest uid or gid: Linux ids are 32-bit, (2^32)-1 means "no id", and many tools (systemd,
shadow, Go's runtime on 32-bit systems) treat ids from 2^31 on as invalid."""
NAME_MAX = 255
"""Longest path component in bytes (Linux NAME_MAX; longer names cannot be unpacked)."""
MAX_EPOCH = 0o77777777777
"""Latest source_date_epoch: the most a tar header's 11 octal mtime digits hold (year 2242)."""
PATH_MAX = 4095
"""Longest path or symlink target in bytes (Linux PATH_MAX, 4096, less the final NUL)."""


def fail_fast(schema: Any, own: type | None = None) -> None:
    """Make every list and dict of this model's own schema stop at its first bad item.

    pydantic otherwise reports every bad item: a hostile lock with a list of a million empty
    objects becomes millions of errors and gigabytes of memory. The first problem of each field
    is all a message shows anyway. Models of other classes nested in it are left alone: their
    classes do it themselves (`own` is the class whose schema this is).
    """
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") in ("list", "dict", "set", "frozenset", "tuple"):
                node["fail_fast"] = True
            for key, value in node.items():
                if key in ("cls", "metadata", "config") or (
                    isinstance(value, dict) and value.get("type") == "model"
                    and value.get("cls") is not own
                ):
                    continue
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


class BoundedErrors(BaseModel):
    """Base whose validation errors are bounded by the schema, not by the size of the input."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        fail_fast(schema, cls)
        return schema


class Strict(BoundedErrors):
    """Base for every format: unknown keys are errors, values are not coerced across types
    (`threshold: true` is not 1, `"5"` is not 5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


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
    m = _OWNER.match(value) if isinstance(value, str) else None
    if m is None:
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else "this"
        raise ValueError(f'{shown} is not a numeric owner "UID:GID", for example "1000:1000"')
    # Compared as text first: int() of thousands of digits is itself refused by Python.
    if any(len(g) > 10 or int(g) > MAX_ID for g in m.groups()):
        raise ValueError(f"uid and gid are at most {MAX_ID} (spec/README.md, \"Bounds\")")
    return str(value)


def check_path_bounds(value: str, what: str = "path") -> str:
    """Refuse a path with a component longer than NAME_MAX or a whole longer than PATH_MAX
    bytes: tar would carry it, but no Linux file system can unpack it."""
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > PATH_MAX:
        raise ValueError(f"the {what} is {size} bytes long; at most {PATH_MAX} are allowed")
    longest = max((len(p.encode("utf-8", "surrogateescape")) for p in value.split("/")),
                  default=0)
    if longest > NAME_MAX:
        raise ValueError(f"a component of the {what} is {longest} bytes long; at most {NAME_MAX} "
                         "are allowed")
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
    AfterValidator(check_path_bounds),
]


def _rel_path(value: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/") or "\x00" in value:
        raise ValueError(f"{value[:80]!r} must be a relative path without '..' (a lock names "
                         "nothing outside its own directory)")
    return check_path_bounds(value)


RelPath = Annotated[str, AfterValidator(_rel_path)]


def mode_int(mode: str) -> int:
    return int(mode, 8)


def owner_ids(owner: str) -> tuple[int, int]:
    uid, gid = owner.split(":")
    return int(uid), int(gid)
