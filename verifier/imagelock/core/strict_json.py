"""JSON that every reader reads the same way, within bounds: the parser for locks and attestations.

Python's `json` keeps the last of two equal keys, reads `NaN` and `Infinity`, turns a number of
more than 4,300 digits into a ValueError and a deep nesting into a RecursionError. A signed
statement that says `"verificationResult":"FAILED", … "verificationResult":"PASSED"` would be
read as PASSED here and as FAILED by another tool, so duplicates are refused (as the OCI reader
does), and every other case becomes an InputError naming the file, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagelock.core.errors import InputError

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects; no lock, envelope or statement comes near it."""
MAX_NUMBER_DIGITS = 40
"""Longest integer literal, in digits; larger numbers mean nothing in these formats."""
MAX_CONTAINERS = 200_000
"""Most arrays and objects in one document (a lock of thousands of pins has a few thousand):
counted on the text before parsing, since a million empty objects cost 100 MB once parsed."""


class _Refused(ValueError):
    """A reason to refuse the document, raised from inside the parser's hooks."""


class NotJSON(InputError):
    """The text is not JSON at all (as opposed to JSON refused for what it holds)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"the key {short(k)} appears twice (a duplicate key is read differently "
                           "by different tools)")
        out[k] = v
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _Refused(f"a number of {len(text)} digits (at most {MAX_NUMBER_DIGITS} are read)")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS * 2:
        raise _Refused(f"a number of {len(text)} characters")
    return float(text)


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def depth_of(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar is 0), level by level: no
    recursion, and no more memory than one reference per container of a level."""
    depth = 0
    level = [value] if isinstance(value, dict | list) else []
    while level and depth <= MAX_DEPTH:
        depth += 1
        below: list[Any] = []
        for v in level:
            items = v.values() if isinstance(v, dict) else v
            below.extend(x for x in items if isinstance(x, dict | list))
        level = below
    return depth


def loads(
    data: bytes | str,
    *,
    what: str,
    path: str | Path | None = None,
    line: int | None = None,
    hint: str | None = None,
) -> Any:
    """Parse `data` as UTF-8 JSON: duplicate keys, NaN/Infinity, overlong numbers, more than
    MAX_CONTAINERS arrays and objects and nesting deeper than MAX_DEPTH are refused with an
    InputError that quotes nothing of the input."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise NotJSON(f"{what} is not UTF-8 text (byte {exc.start})", path=path, line=line,
                      hint=hint) from None
    # An upper bound (brackets inside strings count too), cheap enough to take first.
    containers = text.count("{") + text.count("[")
    if containers > MAX_CONTAINERS:
        raise InputError(f"{what} is refused: it has more than {MAX_CONTAINERS} arrays and "
                         "objects", path=path, line=line, hint=hint)
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_int,
                           parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        # The message names a position, never the text around it.
        raise NotJSON(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                      path=path, line=line or exc.lineno, hint=hint) from None
    except _Refused as exc:
        raise InputError(f"{what} is refused: {exc}", path=path, line=line, hint=hint) from None
    except RecursionError:
        raise _too_deep(what, path, line, hint) from None
    except ValueError as exc:  # anything else the decoder raises on hostile text
        raise NotJSON(f"{what} is not JSON ({type(exc).__name__})", path=path, line=line,
                      hint=hint) from None
    if depth_of(value) > MAX_DEPTH:
        raise _too_deep(what, path, line, hint)
    return value


def _too_deep(what: str, path: str | Path | None, line: int | None,
              hint: str | None) -> InputError:
    return InputError(f"{what} nests arrays and objects more than {MAX_DEPTH} levels deep",
                      path=path, line=line, hint=hint)


def read_limited(path: str | Path, *, limit: int, what: str, hint: str | None = None) -> bytes:
    """The bytes of a file of at most `limit` bytes; a larger one is refused before it is read
    whole, so a hostile file cannot take memory or time in proportion to its size."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"cannot read {what}: not found", path=path,
                         hint="give the path of an existing file") from None
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", path=path) from None
    if len(data) > limit:
        raise InputError(f"{what} is larger than {limit} bytes, the most imagelock reads",
                         path=path, hint=hint or "no genuine file of this kind is this large")
    return data


def short(value: Any, limit: int = 40) -> str:
    """A bounded, printable description of a value from an input, for an error message: a
    string is quoted (control characters escaped) and cut at `limit`; a container is named by
    its kind and length, never expanded (it may be an alias bomb or a host file's content)."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
        return text if len(value) <= limit else text[: limit + 1] + "…" + text[0]
    if isinstance(value, bool | int | float) or value is None:
        text = repr(value)
        return text if len(text) <= limit else f"a number of {len(text)} digits"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    return f"a {type(value).__name__}"
