"""Reading YAML and JSON documents into models, with errors that name file, line and field.

PyYAML is used in safe mode with duplicate keys refused (it would otherwise keep the last one
silently). Validation errors are mapped back to the YAML node they concern, so a user reads
`imagelock.yaml:12: contents.files[0].mode: ...` rather than a pydantic dump.

Every document is read within bounds, because specs, locks and policies also come from others
(a rebuilder reads the vendor's recipe): a size limit per file, a nesting limit, and a limit on
how far YAML aliases may expand (an "alias bomb" of a few hundred bytes otherwise expands to
billions of nodes when validated). An error quotes at most a short, escaped piece of a value,
and a file that does not even claim to be the format asked for (a symlink to a host file) is
refused without quoting any of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from imagelock.core.errors import InputError
from imagelock.core.strict_json import MAX_DEPTH, MAX_NUMBER_DIGITS, loads, read_limited, short

M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 1 << 20
"""Largest spec or policy read (1 MiB): real ones are a few kilobytes."""
MAX_JSON_BYTES = 4 << 20
"""Largest lock read (4 MiB): a lock of a thousand Debian packages and a hundred wheels is
under half a megabyte; parsing 4 MiB of hostile JSON peaks near 130 MB."""
LINE_NUMBERS_UP_TO = 256 << 10
"""Largest JSON document whose errors get line numbers (found by composing it as YAML)."""
MAX_NODES = 50_000
"""Most nodes (scalars, lists, mappings) in one YAML document: a spec of thousands of packages
has a few thousand; PyYAML, being pure Python, spends about a second on 20,000."""
MAX_ALIAS_EXPANSION = 10_000
"""How many nodes YAML aliases may add to a document once expanded (anchors for shared
settings add tens; a bomb adds billions)."""

# What each format has at its top level: a file without it is not that format, and then nothing
# of it is quoted back (it may be a host file reached through a symlink).
_MARKER = {"spec": "version", "policy": "version", "lock": "lock_version"}


class _Loader(yaml.SafeLoader):
    """Safe YAML with duplicate keys refused and nesting bounded while composing (the composer
    recurses, so a deep document would otherwise end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                self._refuse(f"the document nests more than {MAX_DEPTH} levels deep")
            if self._nodes > MAX_NODES:
                self._refuse(f"the document has more than {MAX_NODES} values")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, problem: str) -> None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        raise yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key is itself a list or mapping", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {short(key)}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isalnum() for c in str(node.value))
    if digits > MAX_NUMBER_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"a number of {digits} digits (at most {MAX_NUMBER_DIGITS} are read)",
            node.start_mark)
    return loader.construct_yaml_int(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that aliases turn into a cycle or into many more nodes than written.

    PyYAML shares an aliased node (and the object built from it), so loading is cheap; what
    explodes is everything that walks the result as a tree (validation, digests, messages).
    """
    expanded: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            entered.discard(nid)
            expanded[nid] = 1 + sum(expanded[id(c)] for c in _children(node))
            continue
        if nid in expanded:
            continue
        entered.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in entered:
                raise InputError("a YAML alias refers to a node that contains it (a recursive "
                                 "alias)", line=child.start_mark.line + 1,
                                 hint="write the value out instead of aliasing it")
            if id(child) not in expanded:
                stack.append((child, False))
    extra = expanded[id(root)] - len(expanded)
    if extra > MAX_ALIAS_EXPANSION:
        raise InputError(
            f"YAML aliases expand this document by more than {MAX_ALIAS_EXPANSION} nodes "
            f"({extra}); imagelock refuses alias bombs",
            line=1, hint="write shared values out, or alias only small values")


def parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """One YAML document as Python data, and its node tree (for line numbers); raises
    yaml.YAMLError for malformed text and InputError for a document out of bounds."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_expansion(node)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


_PRINTABLE_KEY = re.compile(r"^[\w.@/+-]{1,64}$")


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            # A key from the input may be anything (a line of a host file, control characters):
            # quote and cut what does not look like a field name.
            if not _PRINTABLE_KEY.match(text):
                text = short(text, 32)
            out += ("." if out else "") + text
    return out


def _node_line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest node along `loc` that exists in the document."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if getattr(k, "value", None) == part:
                    nxt = v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                # A union's tag (e.g. `http`) appears in `loc` but not in the document.
                continue
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


MAX_MESSAGE = 240


def _cut(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(err: Any) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        return "unknown key (check its spelling and indentation; see spec/README.md for the fields)"
    if err.get("type") == "missing":
        return "required field is missing"
    msg = msg.removeprefix("Value error, ")
    if "input" in err and err.get("type", "").endswith("_type"):
        value = err["input"]
        msg += f" (got {type(value).__name__} {short(value)})"
    return _cut(msg)


_REFERENCE = {"policy": "docs/consumer.md (and spec/schema/policy.yaml.schema.json)"}


def validation_error(path: Path, exc: ValidationError, node: yaml.Node | None, what: str) -> InputError:
    errors = exc.errors()
    lines = []
    first_line = None
    first_field = None
    for err in errors[:10]:
        loc = tuple(err["loc"])
        line = _node_line(node, loc)
        fld = field_path(loc) or "(document)"
        if first_line is None:
            first_line, first_field = line, fld
        lines.append(f"{path}:{line or '?'}: {fld}: {_describe(err)}")
    more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
    message = f"{what} {path} is not valid:\n  " + "\n  ".join(lines) + more
    error = InputError(message, path=path, line=first_line, field=first_field,
                       hint=f"fix the {what} and run again; {_REFERENCE.get(what, 'spec/README.md')} "
                       "lists every field")
    error.located = True
    return error


def _not_this_format(path: Path, what: str, marker: str) -> InputError:
    return InputError(
        f"this is not an imagelock {what}: it has no `{marker}` at the top level (nothing of "
        "it is shown, since it may be any file)", path=path, line=1,
        hint=f"give an imagelock {what} file; spec/README.md describes the format")


def _validate(path: Path, model: type[M], what: str, data: Any,
              node: Callable[[], yaml.Node | None]) -> M:
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a mapping at the top level", path=path, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        marker = _MARKER.get(what)
        if marker is not None and marker not in data:
            raise _not_this_format(path, what, marker) from None
        raise validation_error(path, e, node(), what) from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    problem = getattr(e, "problem", None) or type(e).__name__
    # PyYAML quotes bits of the text in some problems; keep them short and printable.
    return _cut("".join(c if c.isprintable() else "?" for c in str(problem)), 120)


def load_yaml_model(path: Path, model: type[M], what: str) -> M:
    """Parse `path` as YAML and validate it as `model`; every failure is an InputError."""
    data_bytes = read_limited(path, limit=MAX_YAML_BYTES, what=what)
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text (byte {e.start})", path=path) from None
    try:
        data, node = parse_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            f"malformed YAML: {_yaml_problem(e)}", path=path, line=line,
            hint="check indentation, quoting and colons around that line",
        ) from None
    except InputError as e:
        e.path = str(path)
        raise
    return _validate(path, model, what, data, lambda: node)


def load_json_model(path: Path, model: type[M], what: str) -> M:
    """Parse `path` as JSON and validate it as `model`; every failure is an InputError."""
    raw = read_limited(path, limit=MAX_JSON_BYTES, what=what)
    data = loads(raw, what=what, path=path)

    def node() -> yaml.Node | None:
        # JSON is YAML: composing it gives line numbers for the messages. Only for a document
        # small enough to compose quickly (PyYAML is pure Python: 20,000 values a second).
        if len(raw) > LINE_NUMBERS_UP_TO:
            return None
        try:
            return parse_yaml(raw.decode("utf-8"))[1]
        except (yaml.YAMLError, InputError):
            return None

    return _validate(path, model, what, data, node)
