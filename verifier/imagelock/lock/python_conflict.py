"""What to tell the user when pip finds no set of versions: pip's own "The conflict is caused
by" lines (they name who asks for what), and a hint that points at what the user can change: a
requirement of the spec, or a line of the constraints file."""

from __future__ import annotations

import re

from imagelock.core.errors import InputError
from imagelock.formats.python import PythonContents

_CAUSE = "The conflict is caused by:"
_MISSING_FILE = re.compile(r"Could not open requirements file: .*?: '([^']+)'")
MAX_CAUSE_LINES = 20


def conflict_lines(stderr: str) -> list[str]:
    """pip's lines under "The conflict is caused by:", up to the first blank line."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == _CAUSE:
            out = []
            for cause in lines[i + 1:]:
                if not cause.strip():
                    break
                out.append(cause.strip())
            return out[:MAX_CAUSE_LINES]
    return []


def explain_conflict(stderr: str, contents: PythonContents) -> InputError | None:
    """The error for pip's ResolutionImpossible (or a file pip could not open), else None."""
    missing = _MISSING_FILE.search(stderr)
    if missing:
        return InputError(f"pip could not open {missing.group(1)}", field="contents.python",
                          hint="name a file inside the build context")
    causes = conflict_lines(stderr)
    if not causes:
        return None
    constrained = [c for c in causes if "(constraint)" in c]
    if constrained and contents.constraints is not None:
        hint = (f"the constraints file {contents.constraints} pins a version another requirement "
                "does not accept: ask for a version the constraints allow (or drop your pin of "
                "it), or use constraints of a release that fits the requirement")
    elif constrained:
        hint = ("a constraints file (a -c line of the requirements file, or pip's configuration) "
                "pins a version another requirement does not accept: change that pin or the "
                "requirement")
    else:
        hint = ("change the requirements named above so that one version satisfies them all "
                "(for a dependency: pin its parent to a version that accepts it)")
    return InputError("pip found no set of versions; the conflict is caused by:\n  "
                      + "\n  ".join(causes), field="contents.python", hint=hint)
