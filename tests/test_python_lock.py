"""Locking real requirements from the indexes pip is configured with on this machine.

Whatever those indexes are (a public index, a mirror, local `file://` directories), the pins must
name wheels by project and file name only, hash to what was fetched, be found again by name from
the configuration, and come out the same when locked twice. Requirements no wheel satisfies must
fail with the list of what exists.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.parse
from pathlib import Path

import pytest
from imagelock.core.errors import InputError
from imagelock.fetch.python_index import fetch_wheel, indexes_for, pip_config
from imagelock.fetch.store import Store
from imagelock.formats.python import PythonContents, WheelPin
from imagelock.lock.python import lock_python

pytestmark = pytest.mark.network

REQS = ["six", "idna", "certifi", "pyyaml"]


def contents(reqs: list[str], **kw: object) -> PythonContents:
    return PythonContents(requirements=reqs, **{"python_version": "3.11", **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("pystore"))


@pytest.fixture(scope="module")
def pins(store: Store, tmp_path_factory: pytest.TempPathFactory) -> list[WheelPin]:
    return lock_python(contents(REQS), tmp_path_factory.mktemp("ctx"), store)


def test_lock_pins_every_wheel_of_the_set(pins: list[WheelPin]) -> None:
    assert [p.name for p in pins] == sorted(REQS)
    assert all(p.requested for p in pins)
    pyyaml = next(p for p in pins if p.name == "pyyaml")
    assert "cp311-cp311-manylinux" in pyyaml.filename and "x86_64" in pyyaml.filename


def test_every_pin_hashes_to_the_file_fetched_by_name(pins: list[WheelPin], store: Store,
                                                      tmp_path: Path) -> None:
    for p in pins:
        data = store.path_for(p.sha256).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (p.sha256, p.size)
    # A fresh store: every wheel is found again by file name from pip's configuration alone.
    fresh = Store(tmp_path / "fresh")
    indexes = indexes_for("pypi")
    for p in pins:
        assert fetch_wheel(p, fresh, indexes).read_bytes() == store.path_for(p.sha256).read_bytes()


def test_lock_is_stable_when_repeated(pins: list[WheelPin], store: Store, tmp_path: Path) -> None:
    again = lock_python(contents(list(reversed(REQS))), tmp_path, store)
    assert [p.model_dump() for p in again] == [p.model_dump() for p in pins]


def test_pins_name_no_host_and_no_local_path(pins: list[WheelPin]) -> None:
    cfg = pip_config()
    hosts = {urllib.parse.urlparse(u).netloc for u in cfg.index_urls} - {""}
    paths = {urllib.parse.urlparse(u).path.rstrip("/") for u in cfg.index_urls if u.startswith("file:")}
    paths |= {f.rstrip("/") for f in cfg.find_links if "://" not in f}
    for p in pins:
        text = p.model_dump_json()
        assert "://" not in text
        assert p.location == f"pypi:{p.name}/{p.filename}"
        for h in hosts:
            assert h not in text
        for local in paths:
            assert local not in text


def test_requirements_file_locks_like_the_list(pins: list[WheelPin], store: Store,
                                               tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# pinned elsewhere\n" + "\n".join(REQS) + "\n")
    c = PythonContents(requirements_file="requirements.txt", python_version="3.11")
    assert lock_python(c, tmp_path, store) == pins


def test_a_mirror_override_is_used_for_resolution(pins: list[WheelPin], store: Store,
                                                  tmp_path: Path) -> None:
    """--mirror pypi=URL replaces pip's indexes: a local index holding only six is enough."""
    six = next(p for p in pins if p.name == "six")
    files = tmp_path / "files"
    files.mkdir()
    shutil.copyfile(store.path_for(six.sha256), files / six.filename)
    page = tmp_path / "simple" / "six"
    page.mkdir(parents=True)
    (page / "index.html").write_text(f'<a href="../../files/{six.filename}">{six.filename}</a>')
    mirror = (tmp_path / "simple").as_uri()
    assert lock_python(contents(["six"]), tmp_path, store, {"pypi": [mirror]}) == [six]
    with pytest.raises(InputError, match="idna"):
        lock_python(contents(["idna==3.20"]), tmp_path, store, {"pypi": [mirror]})


def test_sdist_only_project_is_refused_listing_its_versions(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        lock_python(contents(["docopt"]), tmp_path, store)
    assert "docopt has only source distributions (versions 0.6.2" in e.value.message
    assert e.value.hint is not None and "source_builds: [docopt]" in e.value.hint
    assert e.value.exit_code == 2


def test_no_wheel_for_the_target_lists_the_wheels_that_exist(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        lock_python(contents(["pyyaml"], python_version="3.99"), tmp_path, store)
    msg = e.value.message
    assert "pyyaml: no wheel fits cp399/cp399/linux/amd64" in msg
    assert "6.0" in msg and "manylinux" in msg and "x86_64" in msg


def test_version_no_wheel_satisfies_names_the_versions_that_have_one(store: Store,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"six>=999: wheels for cp311/cp311/linux/amd64 exist "
                       r"only for versions 1\.17\.0"):
        lock_python(contents(["six>=999"]), tmp_path, store)


def test_markers_are_evaluated_for_the_image_not_the_build(store: Store, tmp_path: Path) -> None:
    """pip alone would evaluate `python_version` and `platform_machine` for the build's Python."""
    reqs = ['six; python_version >= "3.12"', 'idna; platform_machine == "aarch64"']
    assert lock_python(contents(reqs), tmp_path, store) == []
    py313 = lock_python(contents(reqs, python_version="3.13"), tmp_path, store)
    assert [p.name for p in py313] == ["six"]
    arm = lock_python(contents([*reqs, "pyyaml"], python_version="3.13"), tmp_path, store,
                      platform="linux/arm64")
    assert [p.name for p in arm] == ["idna", "pyyaml", "six"]
    assert "cp313-cp313-manylinux" in arm[1].filename and "aarch64" in arm[1].filename
