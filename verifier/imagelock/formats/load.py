"""Reading YAML and JSON documents into models, with errors that name file, line and field.

PyYAML is used in safe mode with duplicate keys refused (it would otherwise keep the last one
silently). Validation errors are mapped back to the YAML node they concern, so a user reads
`imagelock.yaml:12: contents.files[0].mode: ...` rather than a pydantic dump.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from imagelock.core.errors import InputError

M = TypeVar("M", bound=BaseModel)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
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


def _describe(err: Any) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        return "unknown key (check its spelling and indentation; see spec/README.md for the fields)"
    if err.get("type") == "missing":
        return "required field is missing"
    msg = msg.removeprefix("Value error, ")
    if "input" in err and err.get("type", "").endswith("_type"):
        msg += f" (got {type(err['input']).__name__} {err['input']!r})"
    return msg


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


def load_yaml_model(path: Path, model: type[M], what: str) -> M:
    """Parse `path` as YAML and validate it as `model`; every failure is an InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path, hint="give the path of an existing file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what}: {e}", path=path) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise InputError(
            f"malformed YAML: {problem}", path=path, line=line,
            hint="check indentation, quoting and colons around that line",
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a YAML mapping at the top level", path=path, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise validation_error(path, e, node, what) from None


def load_json_model(path: Path, model: type[M], what: str) -> M:
    """Parse `path` as JSON and validate it as `model`; every failure is an InputError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read {what}: {e}", path=path) from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        line = getattr(e, "lineno", None)
        raise InputError(f"malformed JSON: {e}", path=path, line=line) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # JSON is YAML: compose gives line numbers for free.
        try:
            node = yaml.compose(raw.decode("utf-8"), Loader=_Loader)
        except yaml.YAMLError:
            node = None
        raise validation_error(path, e, node, what) from None
