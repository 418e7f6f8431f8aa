"""The Debian resolver, indexes, apt sources, formats and lock diff on small synthetic inputs."""

from __future__ import annotations

import hashlib
import lzma
from collections.abc import Sequence
from pathlib import Path

import pytest
from debian import deb822
from imagelock.inputs.debian.diff import diff_debian, render_debian_diff
from imagelock.core.errors import InputError, IntegrityError, VerificationFailed
from imagelock.fetch.apt_sources import machine_mirrors, parse_list_file, parse_sources_file
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianContents, DebianPackagePin, DebianSource
from imagelock.lock.debian import lock as lock_mod
from imagelock.lock.debian.index import load_index, parse_packages
from imagelock.lock.debian.release import IndexFile, Release, parse_release, verify_inrelease
from imagelock.lock.debian.resolver import Universe, candidate_from_record, resolve
from pydantic import ValidationError

SHA = "0" * 64


def stanza(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> str:
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    for k, v in fields.items():
        lines.append(f"{k.replace('_', '-').title().replace('Sha256', 'SHA256')}: {v}")
    lines += [f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb",
              "Size: 100", f"SHA256: {hashlib.sha256((name + version).encode()).hexdigest()}",
              "Description: test package", " with a continuation line"]
    return "\n".join(lines) + "\n"


def universe(*suites: tuple[str, str], arch: str = "amd64") -> Universe:
    """Universe from (suite, Packages text) pairs, in preference order."""
    cands = []
    for order, (suite, text) in enumerate(suites):
        cands += [candidate_from_record(r, source="debian", suite=suite, order=order)
                  for r in parse_packages(text)]
    return Universe(cands, arch)


def names(u: Universe, requested: Sequence[str], **kw: object) -> dict[str, str]:
    r = resolve(u, requested, **kw)  # type: ignore[arg-type]
    return {c.name: c.version for c in r.packages}


# -- alternatives -----------------------------------------------------------------------------

def test_first_satisfiable_alternative_is_taken() -> None:
    u = universe(("s", stanza("app", Depends="nothere | mawk | gawk")
                  + "\n" + stanza("mawk") + "\n" + stanza("gawk")))
    assert names(u, ["app"]) == {"app": "1.0", "mawk": "1.0"}


def test_alternative_already_chosen_is_preferred() -> None:
    u = universe(("s", stanza("app", Depends="mawk | gawk") + "\n" + stanza("mawk") + "\n"
                  + stanza("gawk")))
    # gawk is requested, so it satisfies `mawk | gawk` and mawk is not pulled in.
    assert names(u, ["app", "gawk"]) == {"app": "1.0", "gawk": "1.0"}


def test_alternative_with_too_old_version_is_skipped() -> None:
    u = universe(("s", stanza("app", Depends="libold (>= 2) | libnew") + "\n"
                  + stanza("libold", "1.5") + "\n" + stanza("libnew")))
    assert names(u, ["app"]) == {"app": "1.0", "libnew": "1.0"}


# -- Provides -----------------------------------------------------------------------------------

def test_virtual_package_resolves_to_its_provider() -> None:
    u = universe(("s", stanza("app", Depends="debconf-2.0") + "\n"
                  + stanza("debconf", Provides="debconf-2.0")))
    assert names(u, ["app"]) == {"app": "1.0", "debconf": "1.0"}


def test_versioned_provides_satisfies_a_versioned_relation() -> None:
    u = universe(("s", stanza("app", Depends="libvirt0 (>= 2)") + "\n"
                  + stanza("libvirt-impl", "7", Provides="libvirt0 (= 2.5)")))
    assert names(u, ["app"]) == {"app": "1.0", "libvirt-impl": "7"}


def test_unversioned_provides_does_not_satisfy_a_versioned_relation() -> None:
    u = universe(("s", stanza("app", Depends="awk (>= 1)") + "\n" + stanza("mawk", Provides="awk")))
    with pytest.raises(InputError, match=r"app -> awk \(>= 1\)"):
        resolve(u, ["app"])


def test_providers_are_ordered_like_apt_essential_then_priority() -> None:
    u = universe(("s", stanza("app", Depends="mta") + "\n"
                  + stanza("aaa-mta", Provides="mta", Priority="extra") + "\n"
                  + stanza("zzz-mta", Provides="mta", Priority="important")))
    assert "zzz-mta" in names(u, ["app"])


def test_real_package_is_preferred_over_providers() -> None:
    u = universe(("s", stanza("app", Depends="awk") + "\n" + stanza("awk") + "\n"
                  + stanza("mawk", Provides="awk", Essential="yes")))
    assert names(u, ["app"]) == {"app": "1.0", "awk": "1.0"}


def test_requesting_a_virtual_package_with_one_provider_takes_it() -> None:
    u = universe(("s", stanza("mawk", Provides="awk")))
    assert names(u, ["awk"]) == {"mawk": "1.0"}


def test_requesting_a_virtual_package_with_several_providers_names_them() -> None:
    u = universe(("s", stanza("mawk", Provides="awk") + "\n" + stanza("gawk", Provides="awk")))
    with pytest.raises(InputError, match="virtual package provided by gawk, mawk"):
        resolve(u, ["awk"])


# -- versions -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("relation", "ok"),
    [(">= 1.0", True), (">= 1.1", False), (">> 0.9", True), (">> 1.0", False), ("<< 1.0", False),
     ("<< 1.0.1", True), ("<= 1.0", True), ("= 1.0", True), ("= 1.0-1", False), (">= 1.0~rc1", True)],
)
def test_version_relations(relation: str, ok: bool) -> None:
    u = universe(("s", stanza("app", Depends=f"lib ({relation})") + "\n" + stanza("lib", "1.0")))
    if ok:
        assert names(u, ["app"])["lib"] == "1.0"
    else:
        with pytest.raises(InputError):
            resolve(u, ["app"])


def test_highest_version_across_suites_wins_unless_pinned() -> None:
    u = universe(("main", stanza("libssl3", "3.0.20-1")), ("security", stanza("libssl3", "3.0.22-1")))
    r = resolve(u, ["libssl3"])
    assert (r.packages[0].version, r.packages[0].suite) == ("3.0.22-1", "security")
    assert names(u, ["libssl3"], pins={"libssl3": "3.0.20-1"}) == {"libssl3": "3.0.20-1"}


def test_equal_versions_come_from_the_earlier_index() -> None:
    u = universe(("first", stanza("a", "1")), ("second", stanza("a", "1")))
    assert resolve(u, ["a"]).packages[0].suite == "first"


def test_pin_to_a_missing_version_lists_the_available_ones() -> None:
    u = universe(("s", stanza("a", "1") + "\n"), ("t", stanza("a", "2")))
    with pytest.raises(InputError, match=r"a=3 is not in the indexes \(available: 2, 1\)"):
        resolve(u, ["a"], pins={"a": "3"})


def test_lower_version_is_taken_when_only_it_satisfies() -> None:
    u = universe(("main", stanza("app", Depends="lib (<< 2)") + "\n" + stanza("lib", "1")),
                 ("new", stanza("lib", "2")))
    assert names(u, ["app"]) == {"app": "1.0", "lib": "1"}


# -- Multi-Arch and architectures ----------------------------------------------------------------

def test_any_qualifier_needs_multi_arch_allowed() -> None:
    u = universe(("s", stanza("git", Depends="perl:any") + "\n"
                  + stanza("perl", Multi_Arch="allowed")))
    assert names(u, ["git"]) == {"git": "1.0", "perl": "1.0"}
    u = universe(("s", stanza("git", Depends="perl:any") + "\n" + stanza("perl")))
    with pytest.raises(InputError, match="git -> perl:any"):
        resolve(u, ["git"])


def test_architecture_all_and_native_qualifier_count_as_native() -> None:
    u = universe(("s", stanza("app", Depends="data, libx:amd64") + "\n" + stanza("data", arch="all")
                  + "\n" + stanza("libx", Multi_Arch="same")))
    assert names(u, ["app"]) == {"app": "1.0", "data": "1.0", "libx": "1.0"}


def test_foreign_architecture_packages_are_ignored() -> None:
    u = universe(("s", stanza("app", Depends="lib") + "\n" + stanza("lib", "9", arch="i386") + "\n"
                  + stanza("lib", "1")))
    assert names(u, ["app"])["lib"] == "1"
    u = universe(("s", stanza("app", Depends="lib:i386") + "\n" + stanza("lib")))
    with pytest.raises(InputError):
        resolve(u, ["app"])


def test_multi_arch_foreign_package_satisfies_plain_dependency() -> None:
    u = universe(("s", stanza("app", Depends="tzdata") + "\n"
                  + stanza("tzdata", arch="all", Multi_Arch="foreign")))
    assert names(u, ["app"]) == {"app": "1.0", "tzdata": "1.0"}


# -- Essential, excludes, errors ---------------------------------------------------------------

def test_essential_set_only_when_asked() -> None:
    text = stanza("app") + "\n" + stanza("bash", Essential="yes", Depends="base-files") + "\n" + stanza("base-files")
    u = universe(("s", text))
    assert names(u, ["app"]) == {"app": "1.0"}
    assert names(u, ["app"], essential=True) == {"app": "1.0", "bash": "1.0", "base-files": "1.0"}


def test_excluded_dependency_is_dropped_and_reported() -> None:
    u = universe(("s", stanza("app", Depends="dash, lib") + "\n" + stanza("dash") + "\n" + stanza("lib")))
    r = resolve(u, ["app"], exclude=["dash"])
    assert [c.name for c in r.packages] == ["app", "lib"]
    assert r.dropped == ["app: dash"]


def test_excluded_alternative_falls_through_to_the_next() -> None:
    u = universe(("s", stanza("app", Depends="mawk | gawk") + "\n" + stanza("mawk") + "\n" + stanza("gawk")))
    assert names(u, ["app"], exclude=["mawk"]) == {"app": "1.0", "gawk": "1.0"}


def test_requested_and_excluded_is_an_error() -> None:
    u = universe(("s", stanza("app")))
    with pytest.raises(InputError, match="both requested and excluded"):
        resolve(u, ["app"], exclude=["app"])


def test_unknown_package_suggests_near_names() -> None:
    u = universe(("s", stanza("python3") + "\n" + stanza("python3-minimal") + "\n" + stanza("perl")))
    with pytest.raises(InputError) as e:
        resolve(u, ["pyhton3"])
    assert "no package named 'pyhton3'" in e.value.message
    assert e.value.hint is not None and "did you mean python3" in e.value.hint


def test_unsatisfiable_dependency_shows_the_chain() -> None:
    u = universe(("s", stanza("python3", Depends="python3.11") + "\n"
                  + stanza("python3.11", Depends="libfoo (>= 2)") + "\n" + stanza("libfoo", "1.5")))
    with pytest.raises(InputError) as e:
        resolve(u, ["python3"])
    assert "python3 -> python3.11 -> libfoo (>= 2)" in e.value.message
    assert e.value.hint is not None and "available: libfoo 1.5" in e.value.hint


def test_conflicting_packages_are_refused() -> None:
    u = universe(("s", stanza("a", Conflicts="b") + "\n" + stanza("b")))
    with pytest.raises(InputError, match="a 1.0 Conflicts b"):
        resolve(u, ["a", "b"])


def test_conflict_with_a_virtual_it_provides_itself_is_fine() -> None:
    u = universe(("s", stanza("exim", Provides="mta", Conflicts="mta")))
    assert names(u, ["exim"]) == {"exim": "1.0"}


def test_pre_depends_are_followed_and_output_is_sorted() -> None:
    u = universe(("s", stanza("zz", Pre_Depends="aa") + "\n" + stanza("aa", Depends="mm")
                  + "\n" + stanza("mm")))
    assert [c.name for c in resolve(u, ["zz"]).packages] == ["aa", "mm", "zz"]


def test_cycles_terminate() -> None:
    u = universe(("s", stanza("a", Depends="b") + "\n" + stanza("b", Depends="a")))
    assert names(u, ["a"]) == {"a": "1.0", "b": "1.0"}


# -- previous pins and upgrades (the "CVE day" flow) ------------------------------------------

CVE_MAIN = "\n".join([
    stanza("python3", "3.11.2-1", Depends="python3.11, libssl3"),
    stanza("python3.11", "3.11.2-6", Depends="libssl3 (>= 3), libc6"),
    stanza("libssl3", "3.0.20-1", Depends="libc6 (>= 2.34)"),
    stanza("libc6", "2.36-9"),
])
CVE_SECURITY = "\n".join([
    stanza("python3.11", "3.11.2-6+deb12u9", Depends="libssl3 (>= 3), libc6"),
    stanza("libssl3", "3.0.22-1", Depends="libc6 (>= 2.36), libzstd1"),
    stanza("libzstd1", "1.5.4-2"),
    stanza("libc6", "2.36-9+deb12u14"),
])


def test_previous_versions_are_kept_and_only_the_upgrade_moves() -> None:
    u = universe(("main", CVE_MAIN), ("security", CVE_SECURITY))
    before = names(universe(("main", CVE_MAIN)), ["python3"])
    prefer = {k: v for k, v in before.items() if k != "libssl3"}
    after = names(u, ["python3"], prefer=prefer)
    assert after == {**before, "libssl3": "3.0.22-1", "libzstd1": "1.5.4-2"}


def test_previous_version_moves_when_newly_needed_relation_requires_it() -> None:
    main = CVE_MAIN.replace("Version: 2.36-9\n", "Version: 2.30-1\n").replace("(>= 2.34)", "(>= 2.30)")
    sec = CVE_SECURITY.replace("libc6 (>= 2.36)", "libc6 (>= 2.36-9+deb12u14)")
    before = names(universe(("main", main)), ["python3"])
    assert before["libc6"] == "2.30-1"
    prefer = {k: v for k, v in before.items() if k != "libssl3"}
    after = names(universe(("main", main), ("security", sec)), ["python3"], prefer=prefer)
    assert after["libc6"] == "2.36-9+deb12u14" and after["python3.11"] == "3.11.2-6"


def _fake_universe(monkeypatch: pytest.MonkeyPatch, *suites: tuple[str, str]) -> None:
    def fake(sources: object, names: object, store: object, cli: object, arch: str,
             **kw: object) -> tuple[list[object], Universe]:
        return [], universe(*suites, arch=arch)
    monkeypatch.setattr(lock_mod, "load_universe", fake)


SOURCES = {"debian": DebianSource(kind="debian", suites=["bookworm"])}


def test_lock_upgrade_keeps_every_other_previous_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    contents = DebianContents(packages=["python3"])
    _fake_universe(monkeypatch, ("main", CVE_MAIN))
    _, old = lock_mod.lock_debian(SOURCES, contents, Store(tmp_path))
    _fake_universe(monkeypatch, ("main", CVE_MAIN), ("security", CVE_SECURITY))
    _, fresh = lock_mod.lock_debian(SOURCES, contents, Store(tmp_path))
    _, same = lock_mod.lock_debian(SOURCES, contents, Store(tmp_path), previous_pins=old)
    _, new = lock_mod.lock_debian(SOURCES, contents, Store(tmp_path), previous_pins=old,
                                  upgrade={"libssl3"})
    assert {p.name: p.version for p in fresh}["python3.11"] == "3.11.2-6+deb12u9"
    assert same == old  # a re-lock with the previous pins changes nothing
    d = diff_debian(old, new)
    assert [c.new.name for c in d.upgraded] == ["libssl3"]
    assert [p.name for p in d.added] == ["libzstd1"]
    assert not (d.removed or d.downgraded or d.hash_changed)


def test_upgrade_of_a_package_not_in_the_lock_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_universe(monkeypatch, ("main", CVE_MAIN))
    with pytest.raises(InputError, match="not in the lock: libfoo"):
        lock_mod.lock_debian(SOURCES, DebianContents(packages=["python3"]), Store(tmp_path),
                             previous_pins=[], upgrade={"libfoo"})


def test_previous_pin_gone_from_the_indexes_asks_for_an_upgrade(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    contents = DebianContents(packages=["python3"])
    _fake_universe(monkeypatch, ("main", CVE_MAIN))
    _, old = lock_mod.lock_debian(SOURCES, contents, Store(tmp_path))
    _fake_universe(monkeypatch, ("main", CVE_MAIN.replace("3.0.20-1", "3.0.21-1")))
    with pytest.raises(InputError) as e:
        lock_mod.lock_debian(SOURCES, contents, Store(tmp_path), previous_pins=old)
    assert e.value.hint is not None and "--upgrade libssl3" in e.value.hint


def test_lock_pins_name_the_source_never_a_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_universe(monkeypatch, ("main", CVE_MAIN))
    _, pins = lock_mod.lock_debian(SOURCES, DebianContents(packages=["python3"]), Store(tmp_path))
    assert [p.name for p in pins] == sorted(p.name for p in pins)
    assert pins[0].location.startswith("debian:pool/main/")
    with pytest.raises(InputError, match="not a debian source"):
        lock_mod.lock_debian(SOURCES, DebianContents(packages=["python3"], sources=["nope"]),
                             Store(tmp_path))


# -- index parsing, verification and caching ------------------------------------------------

def test_splitter_agrees_with_python_debian() -> None:
    text = "\n".join([stanza("a", Depends="b (>= 1),\n c | d", Provides="x"), stanza("b", "2:1.0-1"),
                      stanza("c", Multi_Arch="foreign", Pre_Depends="libc6")])
    ours = parse_packages(text)
    theirs = [dict(p) for p in deb822.Packages.iter_paragraphs(text.splitlines(keepends=True),
                                                                 use_apt_pkg=False)]
    assert len(ours) == len(theirs) == 3
    for o, t in zip(ours, theirs, strict=False):
        for k, v in o.items():
            assert " ".join(t[k].split()) == v


def _release(files: dict[str, bytes], suite: str = "bookworm") -> Release:
    return Release(suite=suite, codename=suite, archive_suite="oldstable", date="Sat, 01 Jan 2026",
                   valid_until=None, architectures=("amd64",), components=("main",),
                   acquire_by_hash=False,
                   files={p: IndexFile(p, hashlib.sha256(b).hexdigest(), len(b)) for p, b in files.items()})


def _mirror_with(tmp_path: Path, served: bytes) -> str:
    d = tmp_path / "mirror/dists/bookworm/main/binary-amd64"
    d.mkdir(parents=True)
    (d / "Packages.xz").write_bytes(served)
    return (tmp_path / "mirror").as_uri()


def test_index_is_checked_parsed_and_cached(tmp_path: Path) -> None:
    text = (stanza("a") + "\n" + stanza("b")).encode()
    xz = lzma.compress(text)
    rel = _release({"main/binary-amd64/Packages": text, "main/binary-amd64/Packages.xz": xz})
    mirror = _mirror_with(tmp_path, xz)
    store = Store(tmp_path / "store")
    idx = load_index(store, rel, [mirror], "main", "amd64")
    assert [r["Package"] for r in idx.records] == ["a", "b"]
    assert idx.packages_sha256 == hashlib.sha256(text).hexdigest()
    (tmp_path / "mirror/dists/bookworm/main/binary-amd64/Packages.xz").unlink()
    assert load_index(store, rel, [mirror], "main", "amd64").records == idx.records  # from the cache


def test_index_whose_compressed_hash_differs_from_release_is_refused(tmp_path: Path) -> None:
    text = stanza("a").encode()
    rel = _release({"main/binary-amd64/Packages": text, "main/binary-amd64/Packages.xz": lzma.compress(text)})
    evil = lzma.compress(stanza("a", "6.6.6").encode())
    mirror = _mirror_with(tmp_path, evil)
    with pytest.raises(IntegrityError, match="does not match the signed Release"):
        load_index(Store(tmp_path / "store"), rel, [mirror], "main", "amd64")


def test_index_whose_uncompressed_hash_differs_from_release_is_refused(tmp_path: Path) -> None:
    text, evil = stanza("a").encode(), stanza("a", "6.6.6").encode()
    xz = lzma.compress(evil)
    rel = _release({"main/binary-amd64/Packages": text, "main/binary-amd64/Packages.xz": xz})
    with pytest.raises(IntegrityError, match="the signed Release lists"):
        load_index(Store(tmp_path / "store"), rel, [_mirror_with(tmp_path, xz)], "main", "amd64")


def test_missing_component_is_explained(tmp_path: Path) -> None:
    rel = _release({"main/binary-amd64/Packages": b""})
    with pytest.raises(VerificationFailed, match="lists no contrib/binary-amd64/Packages"):
        load_index(Store(tmp_path), rel, ["file:///nonexistent"], "contrib", "amd64")


def test_release_for_another_suite_is_refused() -> None:
    text = b"Origin: Debian\nSuite: stable\nCodename: trixie\nDate: Sat, 01 Jan 2026 00:00:00 UTC\nSHA256:\n " + SHA.encode() + b" 0 main/binary-amd64/Packages\n"
    assert parse_release(text, "trixie").date.startswith("Sat")
    assert parse_release(text, "stable").codename == "trixie"
    with pytest.raises(VerificationFailed, match="says it is"):
        parse_release(text, "bookworm")


def test_unsigned_inrelease_is_refused() -> None:
    with pytest.raises(VerificationFailed, match="carries no signature"):
        verify_inrelease(b"Origin: Debian\nSuite: stable\n", "/usr/share/keyrings/debian-archive-keyring.gpg")


def test_missing_keyring_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        verify_inrelease(b"-----BEGIN PGP SIGNED MESSAGE-----\n", tmp_path / "nope.gpg")


# -- apt sources ----------------------------------------------------------------------------

def test_apt_sources_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m1.invalid/debian bookworm main\n"
        "deb-src http://src.invalid/debian bookworm main\n")
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/a.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://m2.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb deb-src\nURIs: http://sec.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\nEnabled: no\nTypes: deb\n"
        "URIs: http://off.invalid/\nSuites: bookworm\n")
    (tmp_path / "sources.list.d/b.list.disabled").write_text("deb http://x.invalid/ bookworm main\n")
    assert machine_mirrors("bookworm", tmp_path) == ["http://m1.invalid/debian", "http://m2.invalid/debian"]
    assert machine_mirrors("bookworm-security", tmp_path) == ["http://sec.invalid/debian-security"]
    assert machine_mirrors("sid", tmp_path) == []
    assert parse_list_file("deb [signed-by=/k.gpg] http://h.invalid/d s c1 c2")[0].signed_by == "/k.gpg"
    assert parse_sources_file("Types: deb\nURIs: cdrom:/x\nSuites: s\n") == []


# -- formats ----------------------------------------------------------------------------------

def test_contents_parse_pins_and_refuse_bad_names() -> None:
    c = DebianContents(packages=["python3", "libssl3=3.0.20-1~deb12u1"])
    assert c.requested() == {"python3": None, "libssl3": "3.0.20-1~deb12u1"}
    assert not c.essential and c.sources is None
    assert DebianContents(essential=True).requested() == {}
    for bad in (["Python3"], ["a=b c"], ["x", "x=1"], []):
        with pytest.raises(ValidationError):
            DebianContents(packages=bad)
    with pytest.raises(ValidationError):
        DebianContents(packages=["a"], unknown=1)  # type: ignore[call-arg]
    s = DebianSource(kind="debian", suites=["bookworm"])
    assert s.components == ["main"] and s.keyring.endswith("debian-archive-keyring.gpg")


# -- diff -------------------------------------------------------------------------------------

def pin(name: str, version: str, sha: str = "a", suite: str = "bookworm") -> DebianPackagePin:
    return DebianPackagePin(name=name, version=version, architecture="amd64", source="debian",
                            location=f"debian:pool/main/{name}_{version}.deb", size=1,
                            sha256=sha * 64, suite=suite)


def test_diff_classifies_every_change() -> None:
    old = [pin("libssl3", "3.0.20"), pin("gone", "1"), pin("same", "1"), pin("down", "2"), pin("evil", "1")]
    new = [pin("libssl3", "3.0.22", "b", "bookworm-security"), pin("new", "1"), pin("same", "1"),
           pin("down", "1.9"), pin("evil", "1", "c")]
    d = diff_debian(old, new)
    assert [p.name for p in d.added] == ["new"] and [p.name for p in d.removed] == ["gone"]
    assert [c.new.name for c in d.upgraded] == ["libssl3"]
    assert [c.new.name for c in d.downgraded] == ["down"]
    assert [c.new.name for c in d.hash_changed] == ["evil"]
    text = render_debian_diff(d)
    assert text.splitlines()[0] == ("Debian packages: 1 hash changed, 1 downgraded, 1 upgraded, "
                                    "1 added, 1 removed")
    assert "3.0.20 -> 3.0.22" in text and "debian/bookworm -> debian/bookworm-security" in text
    assert text.splitlines()[1].lstrip().startswith("HASH CHANGED  evil")
    assert render_debian_diff(diff_debian(old, old)) == "Debian packages: no changes"
    assert d.as_json()["upgraded"][0]["new"]["version"] == "3.0.22"  # type: ignore[index]
