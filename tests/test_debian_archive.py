"""The Debian lock against the real archive of the machine's apt sources, with apt as the oracle.

Downloads go to the shared test store (see conftest_debian.py), so after the first run the
indexes come from the cache and the whole file takes a few seconds plus apt's own runs.
"""

from __future__ import annotations

import lzma
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from debian import deb822
from imagelock.inputs.debian.diff import diff_debian, render_debian_diff
from imagelock.core.errors import IntegrityError, VerificationFailed
from imagelock.fetch.http import fetch_bytes
from imagelock.fetch.mirrors import join
from imagelock.fetch.store import Store
from imagelock.formats.debian import DEFAULT_KEYRING, DebianContents, DebianSource
from imagelock.lock.debian import lock_debian
from imagelock.lock.debian.index import FIELDS, parse_packages
from imagelock.lock.debian.lock import load_universe
from imagelock.lock.debian.release import fetch_release, verify_inrelease
from imagelock.lock.debian.resolver import Universe, resolve
from security_ahead import CveDay

pytestmark = pytest.mark.network

AptOracle = Callable[[Sequence[str]], dict[str, str]]


@pytest.fixture(scope="module")
def bookworm(debian_store: Store, debian_mirror: str) -> Universe:
    src = DebianSource(kind="debian", suites=["bookworm"], mirrors=[debian_mirror])
    _, universe = load_universe({"debian": src}, ["debian"], debian_store, None, "amd64")
    return universe


@pytest.fixture(scope="module")
def inrelease(debian_mirror: str) -> bytes:
    return fetch_bytes(join(debian_mirror, "dists/bookworm/InRelease"), what="InRelease")


# -- signatures -------------------------------------------------------------------------------

def test_inrelease_signature_verifies_with_the_archive_keyring(inrelease: bytes) -> None:
    content, signers = verify_inrelease(inrelease, DEFAULT_KEYRING)
    assert b"Codename: bookworm" in content and signers
    assert not content.startswith(b"-----")  # only the signed text, as gpgv wrote it


def test_tampered_inrelease_is_refused(inrelease: bytes) -> None:
    i = inrelease.index(b"main/binary-amd64/Packages.xz") - 20  # inside a checksum
    tampered = inrelease[:i] + bytes([inrelease[i] ^ 0x01]) + inrelease[i + 1:]
    with pytest.raises(VerificationFailed, match="BAD signature"):
        verify_inrelease(tampered, DEFAULT_KEYRING)


def test_inrelease_signed_by_an_untrusted_key_is_refused(inrelease: bytes) -> None:
    other = Path("/usr/share/keyrings/debian-archive-bullseye-automatic.gpg")
    if not other.is_file():
        pytest.skip("no second keyring to distrust")
    with pytest.raises(VerificationFailed, match="no valid signature"):
        verify_inrelease(inrelease, other)


def test_inrelease_with_its_signature_stripped_is_refused(inrelease: bytes) -> None:
    body = inrelease.split(b"\n\n", 1)[1].split(b"-----BEGIN PGP SIGNATURE-----")[0]
    with pytest.raises(VerificationFailed, match="no signature"):
        verify_inrelease(body, DEFAULT_KEYRING)


def test_packages_index_not_matching_the_release_is_refused(
    tmp_path: Path, inrelease: bytes, debian_store: Store, debian_mirror: str,
    monkeypatch: pytest.MonkeyPatch, bookworm: Universe,
) -> None:
    rel = fetch_release([debian_mirror], "bookworm", DEFAULT_KEYRING).release
    entry = rel.files["main/binary-amd64/Packages.xz"]
    real = debian_store.path_for(entry.sha256).read_bytes()
    flipped = real[:1000] + bytes([real[1000] ^ 0xFF]) + real[1001:]
    suite = tmp_path / "mirror/dists/bookworm"
    (suite / "main/binary-amd64").mkdir(parents=True)
    (suite / "InRelease").write_bytes(inrelease)  # genuine and correctly signed
    (suite / "main/binary-amd64/Packages.xz").write_bytes(flipped)
    monkeypatch.setenv("IMAGELOCK_HTTP_BACKOFF", "0")
    src = DebianSource(kind="debian", suites=["bookworm"], mirrors=[(tmp_path / "mirror").as_uri()])
    with pytest.raises(IntegrityError, match="does not match the signed Release"):
        lock_debian({"debian": src}, DebianContents(packages=["hello"]), Store(tmp_path / "store"))
    assert not list((tmp_path / "store/sha256").iterdir())  # nothing unverified was kept


def test_splitter_agrees_with_python_debian_on_the_real_index(
    debian_store: Store, debian_mirror: str, bookworm: Universe,
) -> None:
    rel = fetch_release([debian_mirror], "bookworm", DEFAULT_KEYRING).release
    xz = debian_store.path_for(rel.files["main/binary-amd64/Packages.xz"].sha256).read_bytes()
    text = lzma.decompress(xz).decode()
    sample = text[: text.index("\n\n", 3_000_000) + 2]  # a few thousand stanzas
    ours = parse_packages(sample)
    theirs = list(deb822.Packages.iter_paragraphs(sample.splitlines(keepends=True), use_apt_pkg=False))
    assert len(ours) == len(theirs) > 1000
    for o, t in zip(ours, theirs, strict=False):
        assert o == {k: " ".join(t[k].split()) for k in o}
        assert set(o) == {k for k in t if k in FIELDS}


# -- resolution against apt -----------------------------------------------------------------------

APT_SETS = [
    ["python3"],
    ["openssl"],
    ["ca-certificates"],
    ["curl"],
    ["python3", "ca-certificates", "tzdata"],
    ["git"],  # perl:any (Multi-Arch: allowed), alternatives
    ["apache2"],  # alternatives, Provides (httpd, perl:any)
    ["bsd-mailx"],  # default-mta | mail-transport-agent: a virtual package chosen by provider
    ["postfix"],  # debconf (>= 0.5) | debconf-2.0
    ["gnupg"],  # pinentry alternatives
    ["build-essential"],
    ["exim4", "mailutils"],
    ["libreoffice-core", "build-essential", "python3-pip", "git", "apache2"],  # ~270 packages
]


@pytest.mark.parametrize("names", APT_SETS, ids=["+".join(s)[:40] for s in APT_SETS])
def test_resolution_matches_apt(names: list[str], bookworm: Universe, apt_oracle: AptOracle) -> None:
    expected = apt_oracle(names)
    got = {c.name: c.version for c in resolve(bookworm, sorted(names)).packages}
    assert got == expected, {"apt only": sorted(set(expected.items()) - set(got.items())),
                             "ours only": sorted(set(got.items()) - set(expected.items()))}


def test_essential_set_matches_apt_installing_the_essential_packages(
    bookworm: Universe, apt_oracle: AptOracle,
) -> None:
    essential = sorted(n for n, cands in bookworm.by_name.items() if cands[0].essential)
    assert {"bash", "dpkg", "coreutils"} <= set(essential)
    got = {c.name: c.version for c in resolve(bookworm, [], essential=True).packages}
    assert got == apt_oracle(essential)
    assert "bash" not in {c.name for c in resolve(bookworm, ["python3"]).packages}


# -- the CVE day ---------------------------------------------------------------------------------

def test_cve_day_upgrades_only_the_named_package(debian_store: Store, live_cve_day: CveDay) -> None:
    """In-process, on the live archive: the package is found at run time (security_ahead.py)."""
    day = live_cve_day
    contents = DebianContents(packages=list(day.packages))
    main = day.sources(with_security=False)
    both = day.sources(with_security=True)
    index_pins, old = lock_debian(main, contents, debian_store)
    assert [(p.source, p.suite) for p in index_pins] == [("debian", day.main.suites[0])]
    _, fresh = lock_debian(both, contents, debian_store)
    _, new = lock_debian(both, contents, debian_store, previous_pins=old, upgrade={day.target})

    old_v = {p.name: p.version for p in old}
    fresh_v = {p.name: p.version for p in fresh}
    moved_in_fresh = {n for n in old_v if fresh_v.get(n) != old_v[n]}
    assert {day.target, *day.bystanders} <= moved_in_fresh, day.where

    d = diff_debian(old, new)
    assert [c.new.name for c in d.upgraded] == [day.target]
    upgraded = d.upgraded[0].new
    assert upgraded.suite == day.security.suites[0] and upgraded.location.startswith("security:pool/")
    assert not (d.removed or d.downgraded or d.hash_changed or d.relocated)
    assert [p.name for p in d.added] == list(day.adds)
    unchanged = [p for p in new if p.name != day.target and p.name in old_v]
    assert unchanged == [p for p in old if p.name != day.target]
    text = render_debian_diff(d)
    assert f"{d.upgraded[0].old.version} -> {upgraded.version}" in text
    assert f"debian/{day.main.suites[0]} -> security/{day.security.suites[0]}" in text


def test_second_lock_is_fast_with_the_index_cached(debian_store: Store, bookworm: Universe) -> None:
    import time

    src = {"debian": DebianSource(kind="debian", suites=["bookworm"])}
    t = time.monotonic()
    lock_debian(src, DebianContents(packages=["python3", "ca-certificates", "tzdata"]), debian_store)
    assert time.monotonic() - t < 5

