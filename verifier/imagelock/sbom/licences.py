"""Licences as SPDX expressions, from what packages state machine-readably.

Debian's DEP-5 copyright files name licences with Debian's short names (`GPL-2+`, `Expat`,
`BSD-3-clause`); wheels give a PEP 639 `License-Expression` or trove classifiers. Names with an
SPDX identifier become it; any other name becomes a `LicenseRef-` of its own, which the
document defines with the text the package gives (SPDX requires that). What is not stated
machine-readably is not guessed: the caller writes NOASSERTION.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from license_expression import ExpressionError, get_spdx_licensing

# Debian short names (DEP-5 §"License specification") that differ from SPDX identifiers.
_DEBIAN_TO_SPDX = {
    "expat": "MIT", "mit": "MIT", "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause", "zlib": "Zlib", "isc": "ISC", "psf-2": "PSF-2.0",
    "python": "Python-2.0", "apache-2": "Apache-2.0", "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl", "artistic-2.0": "Artistic-2.0", "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0", "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "curl": "curl",
    "openssl": "OpenSSL", "ssleay": "SSLeay", "ftl": "FTL", "unicode": "Unicode-DFS-2016",
    "wtfpl": "WTFPL", "x11": "X11", "boost-1.0": "BSL-1.0", "bsl-1.0": "BSL-1.0",
}
_GNU = re.compile(r"^(a?gpl|lgpl|gfdl)-?(\d(?:\.\d)?)(\+?)$", re.IGNORECASE)
_GNU_VERSIONS = {"1": "1.0", "2": "2.0", "3": "3.0", "2.1": "2.1", "1.1": "1.1", "1.2": "1.2",
                 "1.3": "1.3", "2.0": "2.0", "3.0": "3.0", "1.0": "1.0"}
_OPERATOR = re.compile(r"\s+(or|and)\s+|\s*,\s*", re.IGNORECASE)
# Trove classifiers whose licence is one SPDX identifier (the vague ones, such as "BSD License"
# or "Apache Software License" without a version, are not guessed).
_CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Apache Software License 2.0": "Apache-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: zlib/libpng License": "Zlib",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)":
        "LGPL-2.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)":
        "LGPL-3.0-or-later",
    "License :: OSI Approved :: BSD License": "",
    "License :: OSI Approved :: Apache Software License": "",
}


@dataclass
class Licence:
    """An SPDX expression, and the text of each `LicenseRef-` it uses."""

    expression: str
    refs: dict[str, str] = field(default_factory=dict)


@functools.cache
def _spdx_keys() -> dict[str, str]:
    """SPDX licence identifiers (and exceptions), by lower-case key, as the SPDX list spells them."""
    licensing = get_spdx_licensing()
    out: dict[str, str] = {}
    for sym in licensing.known_symbols.values():
        out[sym.key.lower()] = sym.key
    return out


def spdx_id(name: str) -> str | None:
    """The SPDX identifier of a licence name, Debian's short names included, or None."""
    key = name.strip().lower()
    if key in _DEBIAN_TO_SPDX:
        return _DEBIAN_TO_SPDX[key]
    m = _GNU.match(name.strip())
    if m:
        family, version, plus = m.group(1).upper(), _GNU_VERSIONS.get(m.group(2)), m.group(3)
        if version is not None:
            return f"{family}-{version}-{'or-later' if plus else 'only'}"
    return _spdx_keys().get(key)


def licence_ref(name: str) -> str:
    """`LicenseRef-` + the name with every character SPDX does not allow in an id replaced."""
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name.strip()).strip("-") or "unknown")


def from_debian(synopses: Iterable[str], texts: dict[str, str], package: str) -> Licence | None:
    """The licence of a DEP-5 copyright file: each Files paragraph's `License:` synopsis (`GPL-2+
    or Artistic`), combined with AND. `texts`: the file's standalone License paragraphs, by name.
    """
    parts: list[str] = []
    refs: dict[str, str] = {}
    for synopsis in synopses:
        tokens = _OPERATOR.split(synopsis.strip())
        # re.split keeps the captured operator (None for a comma, which DEP-5 reads as "or").
        names, ops = tokens[0::2], tokens[1::2]
        if any(not n or not n.strip() for n in names):
            return None
        terms: list[str] = []
        for n in names:
            ident = spdx_id(n)
            if ident is None:
                ident = licence_ref(n)
                refs[ident] = texts.get(n.strip()) or (
                    f"The Debian copyright file of {package} names this licence {n.strip()!r} "
                    "and gives no text for it.")
            terms.append(ident)
        expr = terms[0]
        for op, term in zip(ops, terms[1:], strict=True):
            expr += f" {(op or 'or').upper()} {term}"
        if expr not in parts:
            parts.append(expr)
    if not parts:
        return None
    if len(parts) == 1:
        return Licence(parts[0], refs)
    return Licence(" AND ".join(f"({p})" if " " in p else p for p in parts), refs)


def from_wheel(expression: str | None, classifiers: Iterable[str]) -> Licence | None:
    """A wheel's PEP 639 `License-Expression` when it is a valid SPDX expression, else the
    licence of its one licence classifier when that names exactly one SPDX licence."""
    if expression:
        try:
            parsed = get_spdx_licensing().parse(expression, validate=True, strict=True)
        except ExpressionError:
            parsed = None
        if parsed is not None:
            return Licence(str(parsed))
    found = {_CLASSIFIERS.get(c) for c in classifiers if c.startswith("License ::")}
    found.discard(None)
    if len(found) == 1 and (ident := found.pop()):
        return Licence(ident)
    return None
