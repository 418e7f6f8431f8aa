"""Pinned wheels installed as image entries, offline: wheels are built by this file at test time.

The story: a vendor's lock pins wheels; `build` installs them the way pip would (site-packages,
dist-info with RECORD/INSTALLER/REQUESTED, console scripts for the image's interpreter) but
deterministically (hash-based bytecode naming in-image paths, compiled by the image's own Python
in a sandbox, never the host's; no staging or host path anywhere), and refuses a wheel that would
write outside its directories or whose bytes are not the pinned ones.

The "image" whose Python compiles the bytecode here is made of this machine's Debian interpreter
(/usr/bin/python3.11, its libraries and the .py files of its standard library) as layer entries:
the sandbox sees only those entries, never the host's tree, and the test process runs under
another Python (the setup's).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import marshal
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from imagelock.core.errors import EXIT_FETCH_FAILED, InputError, IntegrityError, UnsafeContentError
from imagelock.fetch.python_index import Indexes, fetch_wheel
from imagelock.fetch.store import Store
from imagelock.formats.python import PythonContents, WheelPin, expand_platform_tags
from imagelock.inputs.python.bytecode import compile_in_image, stage_root
from imagelock.inputs.python.wheels import wheel_entries, with_bytecode
from imagelock.lock.python import requirements_path
from imagelock.sandbox.bwrap import available
from imagelock.tar.entry import BytesContent, Entry, FileContent
from pydantic import ValidationError

PY = "3.11"  # the Python of the image: this machine's Debian /usr/bin/python3.11
NODOT = PY.replace(".", "")
SITE = f"usr/local/lib/python{PY}/dist-packages"
INTERP = f"/usr/bin/python{PY}"

HELLO_INIT = b'''"""hello: a tiny package."""
KINDS = frozenset({"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"})


def greet() -> str:
    return "hello" if "alpha" in {"alpha", "omega", "sigma", "kappa"} else "?"


def main() -> int:
    print(greet(), len(KINDS))
    return 0
'''


# --- a tiny wheel builder -----------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    out: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    *,
    console_scripts: dict[str, str] | None = None,
    executable: frozenset[str] = frozenset(),
    raw_members: dict[str, bytes] | None = None,
    extra_record_rows: list[str] | None = None,
    tag: str = "py3-none-any",
) -> Path:
    """A valid wheel (METADATA, WHEEL, RECORD, entry points); `raw_members` skip RECORD checks."""
    dist = name.replace("-", "_")
    di = f"{dist}-{version}.dist-info"
    members = dict(files)
    members[f"{di}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{di}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              f"Tag: {tag}\n").encode()
    if console_scripts:
        members[f"{di}/entry_points.txt"] = ("[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in console_scripts.items())).encode()
    rows = [f"{p},{_record_hash(d)},{len(d)}" for p, d in members.items()]
    rows += [*(extra_record_rows or []), f"{di}/RECORD,,"]
    members[f"{di}/RECORD"] = ("\n".join(rows) + "\n").encode()
    members.update(raw_members or {})
    path = out / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if member in executable else 0o100644) << 16
            zf.writestr(info, data)
    return path


def pin_for(store: Store, wheel: Path, *, requested: bool = True) -> WheelPin:
    sha, size = store.add_file(wheel)
    dist, version = wheel.name.split("-")[:2]
    name = dist.replace("_", "-").lower()
    return WheelPin(name=name, version=version, filename=wheel.name, sha256=sha, size=size,
                    location=f"pypi:{name}/{wheel.name}", requested=requested)


HOST_PYTHON = Path(f"/usr/bin/python{PY}")
_no_image_python = pytest.mark.skipif(
    not HOST_PYTHON.is_file() or not available(),
    reason=f"needs Debian's {HOST_PYTHON} (apt-get install python3) and bubblewrap")


def needs_image_python(test: Callable[..., None]) -> Callable[..., None]:
    """A test that compiles bytecode: the image's Python runs in a bubblewrap sandbox."""
    return pytest.mark.tools(_no_image_python(test))


def debian_python_image(patch: dict[str, bytes] | None = None) -> list[Entry]:
    """A layer holding this machine's Debian Python as an image would: the interpreter, the
    libraries it links and its standard library's sources (no bytecode, as dpkg unpacks it).
    `patch` replaces standard library files by in-image path."""
    files = {f"usr/bin/python{PY}": HOST_PYTHON}
    for lib in ("libm.so.6", "libz.so.1", "libexpat.so.1", "libc.so.6"):
        files[f"usr/lib/x86_64-linux-gnu/{lib}"] = Path("/usr/lib/x86_64-linux-gnu", lib)
    files["usr/lib64/ld-linux-x86-64.so.2"] = Path("/usr/lib64/ld-linux-x86-64.so.2")
    skip = {"test", "dist-packages", "site-packages", "__pycache__", "idlelib", "tkinter"}
    for d, dirs, names in os.walk(f"/usr/lib/python{PY}"):
        dirs[:] = [x for x in dirs if x not in skip]
        files.update({f"{d}/{n}".lstrip("/"): Path(d, n) for n in names if n.endswith(".py")})
    out = [Entry("lib64", "symlink", 0o777, linkname="usr/lib64")]
    for path, host in sorted(files.items()):
        real = Path(os.path.realpath(host))
        if path in (patch or {}):
            tmp = Path(os.environ.get("TMPDIR", "/tmp"))
            real = Path(os.path.realpath(tmp)) / f"imagelock-test-{os.getpid()}-{real.name}"
            real.write_bytes((patch or {})[path])
        out.append(Entry(path, "file", 0o755 if "/bin/" in f"/{path}" else 0o644,
                         content=FileContent(real, real.stat().st_size)))
    return out


def install(pins: list[WheelPin], store: Store, staging: Path, *, python_version: str = PY,
            compile: bool = True, image: Sequence[Entry] | None = None,
            interpreter: str | None = None) -> tuple[list[Entry], list[str]]:
    """Install as a build does: the wheels placed, then compiled by the image's Python (by
    default this machine's Debian Python as an image layer)."""
    interp = interpreter or f"/usr/bin/python{python_version}"
    entries, notices, installed = wheel_entries(
        pins, store, staging,
        site_packages=f"/usr/local/lib/python{python_version}/dist-packages",
        scripts_dir="/usr/local/bin", interpreter=interp, python_version=python_version,
    )
    if not compile:
        return entries, notices
    base = list(debian_python_image()) if image is None else list(image)
    compiled = compile_in_image([base, entries], installed.modules, interpreter=interp,
                                python_version=python_version, source_date_epoch=0,
                                workdir=staging / "bytecode")
    if compiled.failed:
        notices.append(compiled.note())
    return sorted(with_bytecode(entries, installed, compiled.pycs), key=lambda e: e.path), notices


def read(e: Entry) -> bytes:
    assert e.content is not None
    with e.content.open() as f:
        return f.read()


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    d = tmp_path / "wheels"
    d.mkdir()
    return d


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def hello(wheels: Path) -> Path:
    return make_wheel(
        wheels, "hello", "1.0",
        {
            "hello/__init__.py": HELLO_INIT,
            "hello/util.py": b"import os\nSEP = os.sep\n",
            "hello/broken_py2.py": b"print 'old syntax'\n",
            "hello/data.txt": b"data\n",
            "hello/tool.sh": b"#!/bin/sh\necho tool\n",
            "hello-1.0.data/scripts/hello-legacy": b"#!python\nimport hello\nhello.main()\n",
        },
        console_scripts={"hello": "hello:main"},
        executable=frozenset({"hello/tool.sh"}),
    )


@pytest.fixture
def dep(wheels: Path) -> Path:
    return make_wheel(wheels, "dep-lib", "2.0.1", {"dep_lib/__init__.py": b"VALUE = 42\n"})


# --- install --------------------------------------------------------------------------------


@needs_image_python
def test_wheels_install_into_site_packages_with_dist_info(
        store: Store, hello: Path, dep: Path, tmp_path: Path) -> None:
    pins = [pin_for(store, hello), pin_for(store, dep, requested=False)]
    entries, _ = install(pins, store, tmp_path / "staging")
    by_path = {e.path: e for e in entries}
    for p in ("hello/__init__.py", "hello/util.py", "hello/data.txt", "dep_lib/__init__.py",
              "hello-1.0.dist-info/METADATA", "hello-1.0.dist-info/RECORD",
              "dep_lib-2.0.1.dist-info/RECORD"):
        assert f"{SITE}/{p}" in by_path, p
    assert read(by_path[f"{SITE}/hello-1.0.dist-info/INSTALLER"]) == b"imagelock\n"
    assert f"{SITE}/hello-1.0.dist-info/REQUESTED" in by_path
    assert f"{SITE}/dep_lib-2.0.1.dist-info/REQUESTED" not in by_path  # came in as a dependency
    assert not any(p.endswith("direct_url.json") for p in by_path)
    assert all((e.type, e.uid, e.gid) == ("file", 0, 0) for e in entries)
    assert {e.mode for e in entries} == {0o644, 0o755}
    assert by_path[f"{SITE}/hello/tool.sh"].mode == 0o755  # executable in the wheel, as pip keeps it
    assert by_path[f"{SITE}/hello/__init__.py"].mode == 0o644
    assert [e.path for e in entries] == sorted(e.path for e in entries)


@needs_image_python
def test_record_lists_every_installed_file_relative_to_site_packages(
        store: Store, hello: Path, tmp_path: Path) -> None:
    entries, _ = install([pin_for(store, hello)], store, tmp_path / "staging")
    by_path = {e.path: e for e in entries}
    rows = [line.split(",") for line in read(by_path[f"{SITE}/hello-1.0.dist-info/RECORD"])
            .decode().splitlines()]
    listed = {os.path.normpath(f"/{SITE}/{r[0]}").lstrip("/") for r in rows}
    assert listed == set(by_path)
    record = {r[0]: r for r in rows}
    assert "../../../bin/hello" in record
    script = by_path["usr/local/bin/hello"]
    assert record["../../../bin/hello"][1] == _record_hash(read(script))
    assert record["hello-1.0.dist-info/RECORD"][1:] == ["", ""]
    assert record[f"hello/__pycache__/__init__.cpython-{NODOT}.pyc"][1:] == ["", ""]


@needs_image_python
def test_console_script_runs_with_the_image_interpreter(
        store: Store, hello: Path, tmp_path: Path) -> None:
    entries, _ = install([pin_for(store, hello)], store, tmp_path / "staging")
    by_path = {e.path: e for e in entries}
    script = by_path["usr/local/bin/hello"]
    assert script.mode == 0o755
    body = read(script)
    assert body.startswith(f"#!{INTERP}\n".encode())
    legacy = by_path["usr/local/bin/hello-legacy"]  # a .data/scripts file with `#!python`
    assert legacy.mode == 0o755 and read(legacy).startswith(f"#!{INTERP}\n".encode())
    # Run it as the image would (the tree materialised somewhere else).
    root = tmp_path / "image"
    for e in entries:
        (root / e.path).parent.mkdir(parents=True, exist_ok=True)
        (root / e.path).write_bytes(read(e))
    r = subprocess.run([sys.executable, str(root / "usr/local/bin/hello")], check=False, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(root / SITE)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello 8\n"


@needs_image_python
def test_bytecode_is_hash_based_and_names_the_in_image_source(
        store: Store, hello: Path, tmp_path: Path) -> None:
    entries, notices = install([pin_for(store, hello)], store, tmp_path / "staging")
    by_path = {e.path: e for e in entries}
    pyc = read(by_path[f"{SITE}/hello/__pycache__/__init__.cpython-{NODOT}.pyc"])
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked on import
    assert pyc[8:16] == importlib.util.source_hash(HELLO_INIT)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == f"/{SITE}/hello/__init__.py"
    nested = [c for c in code.co_consts if hasattr(c, "co_filename")]
    assert nested and all(c.co_filename == f"/{SITE}/hello/__init__.py" for c in nested)
    namespace: dict[str, object] = {}
    exec(code, namespace)  # noqa: S102 - the module under test, built by this test
    assert namespace["greet"]() == "hello"  # type: ignore[operator]
    # A module this Python cannot compile stays source only, and says so.
    assert f"{SITE}/hello/__pycache__/broken_py2.cpython-{NODOT}.pyc" not in by_path
    assert any("1 module did not compile" in n and "broken_py2.py" in n for n in notices)


@needs_image_python
def test_two_installs_give_identical_bytes_and_no_staging_path(
        store: Store, hello: Path, dep: Path, tmp_path: Path) -> None:
    pins = [pin_for(store, hello), pin_for(store, dep)]

    def snapshot(staging: Path) -> dict[str, tuple[int, bytes]]:
        entries, _ = install(pins, store, staging)
        return {e.path: (e.mode, read(e)) for e in entries}

    a_dir, b_dir = tmp_path / "a" / "staging-one", tmp_path / "b" / "another-staging-dir"
    os.environ["PYTHONHASHSEED"] = "random"  # the caller's seed must not reach the bytecode
    try:
        a = snapshot(a_dir)
    finally:
        del os.environ["PYTHONHASHSEED"]
    b = snapshot(b_dir)
    assert a == b
    for root in (a_dir, b_dir, tmp_path):
        for path, (_, data) in a.items():
            assert str(root).encode() not in data, path
            assert b"staging" not in data, path


@needs_image_python
def test_bytecode_comes_from_the_image_python_not_the_host(
        store: Store, hello: Path, tmp_path: Path) -> None:
    """The image's own standard library compiles: a py_compile patched in the image (and only
    there) shows in every .pyc, whatever Python runs imagelock."""
    lib = Path(f"/usr/lib/python{PY}/py_compile.py").read_bytes()
    marker = b"# compiled by the image\n"
    line = b"        source_hash = importlib.util.source_hash(source_bytes)"
    patched = lib.replace(line, b"        source_bytes += " + repr(marker).encode() + b"\n" + line)
    assert patched != lib
    image = debian_python_image({f"usr/lib/python{PY}/py_compile.py": patched})
    entries, _ = install([pin_for(store, hello)], store, tmp_path / "staging", image=image)
    pyc = read(next(e for e in entries if e.path.endswith("__init__.cpython-311.pyc")))
    assert pyc[8:16] == importlib.util.source_hash(HELLO_INIT + marker)
    assert sys.executable != str(HOST_PYTHON)  # the test itself runs under another Python


@needs_image_python
def test_an_image_without_python_is_refused_with_a_hint(
        store: Store, hello: Path, tmp_path: Path) -> None:
    no_python = [e for e in debian_python_image() if not e.path.startswith("usr/bin/")]
    with pytest.raises(InputError, match=r"the image has no /usr/bin/python3\.11") as e:
        install([pin_for(store, hello)], store, tmp_path / "staging", image=no_python)
    assert e.value.exit_code == 2 and e.value.hint is not None
    assert "compile: false" in e.value.hint and "python3" in e.value.hint


@needs_image_python
def test_wheels_for_another_python_than_the_image_s_are_refused_naming_both(
        store: Store, hello: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"/usr/bin/python3\.11 is cpython 3\.11, but the lock "
                       r"installs the wheels for CPython 3\.12"):
        install([pin_for(store, hello)], store, tmp_path / "staging", python_version="3.12",
                interpreter="/usr/bin/python3.11")


def test_staging_the_tree_for_the_compiler_never_writes_through_a_symlink(tmp_path: Path) -> None:
    """The tree never has an entry below a symlink; were one there anyway, staging the image's
    tree for its Python must not write through the link onto the host."""
    host = tmp_path / "host"
    host.mkdir()
    index = {"opt": Entry("opt", "symlink", 0o777, linkname=str(host)),
             "opt/evil.py": Entry("opt/evil.py", "file", content=BytesContent(b"x = 1\n"))}
    (tmp_path / "root").mkdir()
    with pytest.raises(UnsafeContentError, match="outside the image root"):
        stage_root(index, tmp_path / "root", keep={"opt/evil.py"})
    assert list(host.iterdir()) == []


def test_compile_false_installs_sources_only(store: Store, hello: Path, tmp_path: Path) -> None:
    entries, notices = install([pin_for(store, hello)], store, tmp_path / "staging", compile=False)
    assert not any(e.path.endswith(".pyc") for e in entries) and notices == []


@needs_image_python
def test_same_file_from_two_wheels_must_agree(store: Store, wheels: Path, tmp_path: Path) -> None:
    ns = b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    a = make_wheel(wheels, "ns-a", "1", {"ns/__init__.py": ns, "ns/a.py": b""})
    b = make_wheel(wheels, "ns-b", "1", {"ns/__init__.py": ns, "ns/b.py": b""})
    entries, _ = install([pin_for(store, a), pin_for(store, b)], store, tmp_path / "s1")
    assert sum(e.path == f"{SITE}/ns/__init__.py" for e in entries) == 1
    c = make_wheel(wheels, "ns-c", "1", {"ns/__init__.py": b"# mine\n"})
    with pytest.raises(InputError, match=r"ns_a-1-py3-none-any.whl and ns_c-1-py3-none-any.whl both "
                       r"install /usr/local/lib/.*/ns/__init__.py"):
        install([pin_for(store, a), pin_for(store, c)], store, tmp_path / "s2")


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["../evil.py", "hello/../../evil.py", "/etc/cron.d/evil",
                                    "hello-1.0.data/data/../../../etc/evil"])
def test_hostile_wheel_member_is_refused_by_name(
        store: Store, wheels: Path, tmp_path: Path, member: str) -> None:
    bad = make_wheel(wheels, "hello", "1.0", {"hello/__init__.py": b""},
                     raw_members={member: b"pwned\n"})
    with pytest.raises(UnsafeContentError, match=f"member '{member}'") as e:
        install([pin_for(store, bad)], store, tmp_path / "staging")
    assert e.value.exit_code == 2
    assert not (tmp_path / "evil.py").exists()


def test_record_with_an_absolute_path_is_refused(store: Store, wheels: Path, tmp_path: Path) -> None:
    bad = make_wheel(wheels, "hello", "1.0", {"hello/__init__.py": b""},
                     extra_record_rows=["/etc/passwd,,"])
    with pytest.raises(UnsafeContentError, match="RECORD lists '/etc/passwd'"):
        install([pin_for(store, bad)], store, tmp_path / "staging")


def test_wheel_whose_bytes_are_not_the_pinned_ones_is_refused(
        store: Store, hello: Path, dep: Path, tmp_path: Path) -> None:
    pin = pin_for(store, hello)
    obj = store.path_for(pin.sha256)
    obj.chmod(0o644)
    obj.write_bytes(dep.read_bytes())  # the store object was swapped behind our back
    with pytest.raises(IntegrityError) as e:
        install([pin], store, tmp_path / "staging")
    assert e.value.exit_code == EXIT_FETCH_FAILED == 3
    assert "hello-1.0-py3-none-any.whl" in e.value.message


def test_wheel_with_another_project_inside_is_refused(
        store: Store, hello: Path, dep: Path, tmp_path: Path) -> None:
    real = pin_for(store, dep)
    lying = WheelPin(name="hello", version="1.0", filename=hello.name, sha256=real.sha256,
                     size=real.size, location=f"pypi:hello/{hello.name}", requested=True)
    with pytest.raises(InputError, match="holds dep_lib-2.0.1.dist-info, not hello 1.0"):
        install([lying], store, tmp_path / "staging")


# --- fetching by file name from configured indexes (offline: file:// indexes) ----------------


def test_fetch_finds_the_wheel_by_name_on_a_local_simple_index(
        store: Store, hello: Path, tmp_path: Path) -> None:
    sha = hashlib.sha256(hello.read_bytes()).hexdigest()
    files = tmp_path / "index" / "files"
    files.mkdir(parents=True)
    (files / hello.name).write_bytes(hello.read_bytes())
    page = tmp_path / "index" / "simple" / "hello"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        f'<html><body><a href="../../files/{hello.name}#sha256={sha}">{hello.name}</a></body></html>')
    pin = WheelPin(name="hello", version="1.0", filename=hello.name, sha256=sha,
                   size=hello.stat().st_size, location=f"pypi:hello/{hello.name}", requested=True)
    empty = tmp_path / "empty-index"
    empty.mkdir()
    indexes = Indexes([empty.as_uri(), (tmp_path / "index" / "simple").as_uri()], [])
    assert indexes.wheel_urls(pin) == [(files / hello.name).as_uri()]
    assert fetch_wheel(pin, store, indexes).read_bytes() == hello.read_bytes()


def test_fetch_from_find_links_refuses_other_bytes(store: Store, hello: Path, dep: Path,
                                                   tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / hello.name).write_bytes(dep.read_bytes())  # right name, wrong content
    pin = WheelPin(name="hello", version="1.0", filename=hello.name,
                   sha256=hashlib.sha256(hello.read_bytes()).hexdigest(),
                   size=hello.stat().st_size, location=f"pypi:hello/{hello.name}", requested=True)
    with pytest.raises(IntegrityError) as e:
        fetch_wheel(pin, store, Indexes([], [str(links)]))
    assert e.value.exit_code == 3
    assert not store.has(pin.sha256)


# --- the spec's python contents and the pin format --------------------------------------------


def test_pin_location_is_project_and_file_never_a_host() -> None:
    ok = {"name": "six", "version": "1.17.0", "filename": "six-1.17.0-py2.py3-none-any.whl",
          "sha256": "0" * 64, "size": 1, "requested": True}
    WheelPin(location="pypi:six/six-1.17.0-py2.py3-none-any.whl", **ok)  # type: ignore[arg-type]
    for bad in ("https://files.example/six-1.17.0-py2.py3-none-any.whl",
                "pypi://host/six/six-1.17.0-py2.py3-none-any.whl",
                "pypi:host.example/packages/six-1.17.0-py2.py3-none-any.whl",
                "pypi:six/other-1.0-py3-none-any.whl"):
        with pytest.raises(ValidationError):
            WheelPin(location=bad, **ok)  # type: ignore[arg-type]


def test_python_contents_defaults_follow_debian() -> None:
    c = PythonContents(requirements=["six"], python_version="3.11")
    assert c.site_packages_dir() == "/usr/local/lib/python3.11/dist-packages"
    assert c.interpreter_path() == "/usr/bin/python3.11"
    assert c.abi_tag() == "cp311"
    tags = c.platform_tags("linux/amd64")
    assert tags[0] == "manylinux_2_36_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert "manylinux2014_x86_64" in tags and "manylinux_2_28_x86_64" in tags
    assert expand_platform_tags(["manylinux_2_28_aarch64"])[-2:] == [
        "manylinux_2_17_aarch64", "manylinux2014_aarch64"]


@pytest.mark.parametrize("req", ["--index-url=http://x/simple", "pkg @ https://x/pkg.whl",
                                 "not a requirement!", "-e ."])
def test_requirements_that_bypass_the_index_are_refused(req: str) -> None:
    with pytest.raises(ValidationError):
        PythonContents(requirements=[req], python_version="3.11")


def test_requirements_file_with_an_index_option_is_refused(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n--extra-index-url http://elsewhere/simple\n")
    c = PythonContents(requirements_file="requirements.txt", python_version="3.11")
    with pytest.raises(InputError, match="--extra-index-url") as e:
        requirements_path(c, tmp_path)
    assert e.value.line == 2
