"""The build as it runs inside the sandbox: `python -m imagelock.rebuild.inside ...`.

`build.sandbox.build_in_sandbox` starts this under bwrap after the fetch phase ran outside, so
it builds offline. It prints one JSON document on stdout: the build result, or the error
(`ImagelockError.as_json()`, exit code = the error's) for the outside to raise as the same class.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from imagelock.build.from_lock import build_lock
from imagelock.core.errors import EXIT_INTERNAL, EXIT_OK, ImagelockError, InputError
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m imagelock.rebuild.inside",
                                description="Build a lock offline (run inside the sandbox).")
    p.add_argument("--lock", type=Path, required=True, help="the lock file")
    p.add_argument("--context", type=Path, required=True,
                   help="the build context: must be where the lock says it is")
    p.add_argument("--store", type=Path, required=True, help="the store, already filled")
    p.add_argument("--out", type=Path, required=True, help="the output path")
    p.add_argument("--format", choices=("oci", "docker-archive"), required=True)
    return p


def build(args: argparse.Namespace) -> dict[str, object]:
    """build_lock offline, after checking the context is the one build_lock will read."""

    lock = read_lock(args.lock)
    expected = os.path.abspath(args.lock.parent / lock.context)
    if os.path.abspath(args.context) != expected:
        raise InputError(f"the context {args.context} is not the lock's context {expected}",
                         path=args.lock, field="context",
                         hint="bind the context where the lock expects it (build_in_sandbox does)")
    res = build_lock(args.lock, output=args.out, fmt=args.format, store=Store(args.store),
                     offline=True)
    return res.model_dump(mode="json")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data = build(args)
    except ImagelockError as e:
        print(json.dumps(e.as_json()))
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - reported outside as a failure with this text
        if os.environ.get("IMAGELOCK_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL
    print(json.dumps(data))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
