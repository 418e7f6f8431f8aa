"""Generating spec/schema/*.schema.json from the format models (one place to change a format).

Run `python -m imagelock.formats.schema [DIR]` after changing a model; tests/test_schema.py fails when
the committed schemas drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from imagelock.formats import inventory, results
from imagelock.formats.lock import Lock
from imagelock.formats.policy import Policy, PolicyResult
from imagelock.formats.sets import SetLock, SetSpec
from imagelock.formats.spec import Spec

SCHEMA_ID = "https://imagelock.dev/schema/"


RESULTS: dict[str, type[BaseModel]] = {
    "lock": results.LockResult,
    "lock-check": results.LockCheckResult,
    "fetch": results.FetchResult,
    "build": results.BuildResult,
    "rebuild": results.RebuildReport,
    "check": results.CheckResult,
    "verify": PolicyResult,
    "diff": results.LockDiffResult,
    "push": results.PushResult,
    "pull": results.PullResult,
    "attach": results.AttachResult,
    "keygen": results.KeygenResult,
    "inputs": results.InputsCheckResult,
    "outdated": inventory.OutdatedResult,
    "inspect": inventory.InspectResult,
    "sbom": inventory.SbomResult,
    "watch": results.WatchResult,
    "status": results.StatusResult,
    "rebuild-skipped": results.RebuildSkipped,
    "error": results.ErrorResult,
}
"""What each command prints with `--json` (`lock-check`: `lock --check`; `rebuild-skipped`:
`rebuild REF --skip-if-vouched` when it skips; `error`: any command that fails), by the name of
its schema, `<name>.result.schema.json`."""


def models() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {
        "imagelock.yaml": Spec,
        "imagelock.lock": Lock,
        "imagelock-set.yaml": SetSpec,
        "imagelock-set.lock": SetLock,
        "policy.yaml": Policy,
    }
    out.update({f"{name}.result": model for name, model in RESULTS.items()})
    return out


def render(name: str, model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$id": SCHEMA_ID + name + ".schema.json", **schema}
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_all(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in models().items():
        p = dest / f"{name}.schema.json"
        p.write_text(render(name, model), encoding="utf-8")
        written.append(p)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "spec" / "schema"
    for p in write_all(target):
        print(p)
