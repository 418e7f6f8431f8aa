"""The JSON Schemas in spec/schema/ are generated from the models and must not drift."""

from __future__ import annotations

import json

import pytest
from helpers import REPO
from imagelock.formats.schema import models, render


@pytest.mark.parametrize("name", sorted(models()))
def test_committed_schema_matches_the_model(name: str) -> None:
    path = REPO / "spec" / "schema" / f"{name}.schema.json"
    assert path.is_file(), f"missing {path}: run `python -m imagelock.formats.schema`"
    assert path.read_text(encoding="utf-8") == render(name, models()[name]), (
        f"{path} drifted from the model: run `python -m imagelock.formats.schema` and commit the result"
    )


def test_every_field_is_documented() -> None:
    def walk(schema: dict, where: str) -> list[str]:  # type: ignore[type-arg]
        missing = []
        for name, prop in schema.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{where}.{name}")
        for dname, d in schema.get("$defs", {}).items():
            missing += walk(d, dname)
        return missing

    for name, model in models().items():
        assert walk(json.loads(render(name, model)), name) == []


def test_example_lock_validates_against_the_schema() -> None:
    import jsonschema
    schema = json.loads((REPO / "spec/schema/imagelock.lock.schema.json").read_text())
    jsonschema.validate(json.loads((REPO / "examples/hello/imagelock.lock").read_text()), schema)
