"""The user guides say true things: every YAML example parses (and specs and policies validate
as imagelock reads them), every `imagelock COMMAND --flag` they show exists, the CI recipes are
well-formed pipelines whose shell parses, and relative links lead somewhere."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from helpers import REPO
from imagelock.cli import app
from imagelock.formats.load import load_yaml_model
from imagelock.formats.policy import Policy
from imagelock.formats.spec import Spec

DOCS = sorted((REPO / "docs").glob("*.md"))
README = REPO / "README.md"
CI_DOC = REPO / "docs" / "ci.md"
GUIDES = [REPO / "docs" / f"{name}.md" for name in ("vendor", "rebuilder", "consumer", "ci")]

# Examples in guides this file does not own that are known not to validate. The marker is a
# piece of the block's text: fix the example and the entry stops matching (delete it then).
KNOWN_INVALID: dict[tuple[str, str], str] = {}


# --- reading the docs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: where it starts, its info string and its text."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n"))
        i += 1
    return blocks


def prose(path: Path) -> str:
    """The text outside fenced code blocks (the fences' lines blanked, line numbers kept)."""
    out, inside, fence = [], False, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _FENCE.match(line)
        if m and (not inside or m.group(2)[0] == fence):
            inside, fence = not inside, m.group(2)[0]
            out.append("")
        else:
            out.append("" if inside else line)
    return "\n".join(out)


_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def inline_code(path: Path) -> list[str]:
    return [m.group(2).strip() for m in _CODE_SPAN.finditer(prose(path))]


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys, as imagelock's own loader does."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate key {dupes.pop()!r}",
                                                node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)


YAML_BLOCKS = [b for p in [*DOCS, README] for b in fenced_blocks(p) if b.lang in ("yaml", "yml")]


# --- (a) YAML examples ------------------------------------------------------------------------


def _kind(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    if data.get("version") == 1 and "image" in data:
        return "spec"
    if "rebuilders" in data or "vendors" in data:
        return "policy"
    return None


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.where)
def test_yaml_example_parses_and_validates(block: Block, tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    try:
        data = load(block.text)
    except yaml.YAMLError as e:
        pytest.fail(f"{block.where}: the YAML does not parse: {e}")
    kind = _kind(data)
    if kind is None:
        return
    for (doc, marker), fix in KNOWN_INVALID.items():
        if block.where.startswith(doc + ":") and marker in block.text:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{doc}: {fix}"))
    # Through the loader imagelock itself uses, so the errors are the ones a user would see.
    path = tmp_path / ("imagelock.yaml" if kind == "spec" else "policy.yaml")
    path.write_text(block.text, encoding="utf-8")
    load_yaml_model(path, Spec if kind == "spec" else Policy, kind)


def test_the_guides_show_a_valid_spec_and_valid_policies() -> None:
    kinds = [(b.path.name, _kind(load(b.text))) for b in YAML_BLOCKS]
    assert ("vendor.md", "spec") in kinds
    assert sum(1 for k in kinds if k == ("consumer.md", "policy")) >= 2


# --- (b) commands and flags -------------------------------------------------------------------


def cli() -> tuple[set[str], dict[str, set[str]]]:
    """The top-level options and, per command, the options the real CLI accepts."""
    group: Any = typer.main.get_command(app)  # click's Group (typer may vendor click)

    def opts(cmd: Any) -> set[str]:
        names = {o for p in cmd.params if p.param_type_name == "option"
                 for o in (*p.opts, *p.secondary_opts)}
        return names | {"--help"}

    commands = {name: opts(cmd) for name, cmd in group.commands.items()}
    assert commands, "the typer app lists no commands"
    return opts(group), commands


_STOP = {"|", "||", "&&", ";", "->", ">", ">>", "2>", "2>&1", "<", "<<", "&"}
_FLAG = re.compile(r"^(--?[A-Za-z][\w-]*)(=.*)?$")
# `pip install imagelock`, "Install imagelock", and Python's `from imagelock import api`.
_NOT_AN_INVOCATION_AFTER = {"install", "uninstall", "show", "from"}


@dataclass(frozen=True)
class Invocation:
    where: str
    command: str | None  # None: options given to `imagelock` itself
    flags: tuple[str, ...]
    text: str


_OPENERS = "`\"'($["
_CLOSERS = "`\"',)];"


def _program(tokens: list[str], i: int) -> bool:
    """Whether tokens[i] starts an imagelock invocation: `imagelock`, `.../imagelock`, an argv
    list's `"imagelock",`, or `python -m imagelock.cli`."""
    tok = tokens[i].lstrip(_OPENERS).rstrip(_CLOSERS)
    if tok == "imagelock" or tok.endswith("/imagelock"):
        return not (i and tokens[i - 1].lower() in _NOT_AN_INVOCATION_AFTER)
    return tok == "imagelock.cli" and i > 0 and tokens[i - 1].strip(_OPENERS + _CLOSERS) == "-m"


def invocations(where: str, text: str) -> Iterator[Invocation]:
    """Every `imagelock WORD ...` in a piece of shell, YAML, Python or prose-in-code."""
    text = text.replace("\\\n", " ")
    for line in text.splitlines():
        # `run(["imagelock", ...` is an invocation too: an opening bracket ends a token.
        tokens = re.sub(r"([(\[])", r"\1 ", line).split()
        for i in range(len(tokens)):
            if not _program(tokens, i):
                continue
            rest = []
            for t in tokens[i + 1:]:
                if t in _STOP or t.startswith("#"):
                    break
                rest.append(t.lstrip(_OPENERS).rstrip(_CLOSERS))
                if t.endswith((";", "`", ")", "]")):
                    break
            if not rest:
                continue
            first = rest[0]
            if _FLAG.match(first):
                command, args = None, rest
            elif re.fullmatch(r"[a-z][a-z-]*", first):
                command, args = first, rest[1:]
            else:  # a placeholder such as COMMAND
                continue
            flags = tuple(m.group(1) for a in args if (m := _FLAG.match(a)))
            yield Invocation(where, command, flags, line.strip())


def all_invocations() -> list[Invocation]:
    found: list[Invocation] = []
    for path in [*DOCS, README]:
        rel = path.relative_to(REPO)
        for b in fenced_blocks(path):
            found += invocations(b.where, b.text)
        for span in inline_code(path):
            found += invocations(f"{rel} (inline)", span)
    return found


def test_every_command_and_flag_in_the_docs_exists() -> None:
    top, commands = cli()
    found = all_invocations()
    problems = []
    for inv in found:
        if inv.command is None:
            known = top
        elif inv.command not in commands:
            problems.append(f"{inv.where}: no command `imagelock {inv.command}` "
                            f"(commands: {', '.join(sorted(commands))}): {inv.text}")
            continue
        else:
            known = commands[inv.command]
        for flag in inv.flags:
            if flag not in known:
                problems.append(f"{inv.where}: `imagelock {inv.command or ''}` has no option "
                                f"{flag} (it has {', '.join(sorted(known))}): {inv.text}")
    assert not problems, "\n".join(problems)
    # The scan really found the guides' commands (a broken scanner would pass vacuously).
    assert len(found) > 50
    for guide in GUIDES:
        assert any(i.where.startswith(str(guide.relative_to(REPO))) for i in found), guide


def test_the_scanner_catches_a_wrong_command_and_a_wrong_flag() -> None:
    text = ("imagelock rebuild --image oci:x --sgin k\nimagelock sbom x\npip install imagelock\n"
            'subprocess.run(["imagelock", "atach", "r", "f"])\n'
            "python -m imagelock.cli verfiy x --policy p\n")
    found = list(invocations("t", text))
    assert [(i.command, i.flags) for i in found] == [("rebuild", ("--image", "--sgin")),
                                                      ("sbom", ()), ("atach", ()),
                                                      ("verfiy", ("--policy",))]
    _top, commands = cli()
    assert "--sgin" not in commands["rebuild"]
    assert not {"sbom", "atach", "verfiy"} & set(commands)


# --- internal modules: the docs show the CLI and the public API, never the package's insides ---

# The public Python API (docs/api.md); `-m imagelock.cli` is the CLI itself.
PUBLIC_MODULES = {"imagelock", "imagelock.api", "imagelock.cli"}
# Pages about the internals themselves, which name them on purpose.
INTERNALS_PAGES = {"architecture.md": "the map of the package",
                   "isolation.md": "a maintainer's look into the sandbox module it documents"}
_IMPORT = re.compile(r"(?:^|[\s;(])(?:from\s+(imagelock(?:\.\w+)*)\s+import\b|import\s+"
                     r"(imagelock(?:\.\w+)*)|-m\s+(imagelock(?:\.\w+)*))")


def internal_imports(text: str) -> list[str]:
    """The imagelock modules other than the public ones that a piece of code imports or runs."""
    found = []
    for m in _IMPORT.finditer(text):
        module = next(g for g in m.groups() if g)
        if module not in PUBLIC_MODULES:
            found.append(module)
    return found


def test_code_blocks_show_no_internal_modules() -> None:
    problems = []
    for path in [*DOCS, README]:
        if path.name in INTERNALS_PAGES:
            continue
        for b in fenced_blocks(path):
            for module in internal_imports(b.text):
                problems.append(f"{b.where}: `{module}` is internal and may move; show the CLI "
                                "or imagelock.api instead")
    assert not problems, "\n".join(problems)


def test_the_import_scanner_catches_internal_modules() -> None:
    text = ("from imagelock.trust.gate import push_attestation\nimport imagelock.api\n"
            "python -m imagelock.formats.schema\nfrom imagelock import api\n"
            "python -m imagelock.cli verify\n")
    assert internal_imports(text) == ["imagelock.trust.gate", "imagelock.formats.schema"]


def test_spec_examples_with_accounts_install_base_passwd() -> None:
    # build/debian/accounts.py refuses accounts without base-passwd (it provides root and the
    # system groups): an example that omits it fails for whoever copies it.
    problems = []
    for b in YAML_BLOCKS:
        data = load(b.text)
        if not isinstance(data, dict) or not data.get("accounts"):
            continue
        packages = ((data.get("contents") or {}).get("debian") or {}).get("packages") or []
        if not any(str(p).split("=")[0] == "base-passwd" for p in packages):
            problems.append(f"{b.where}: accounts without base-passwd in the Debian packages")
    assert not problems, "\n".join(problems)


# --- (c) the CI recipes -----------------------------------------------------------------------


def ci_documents() -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    github: list[tuple[str, dict[str, Any]]] = []
    gitlab: list[tuple[str, dict[str, Any]]] = []
    for b in fenced_blocks(CI_DOC):
        if b.lang not in ("yaml", "yml"):
            continue
        data = load(b.text)
        assert isinstance(data, dict), b.where
        (github if "jobs" in data else gitlab).append((b.where, data))
    return github, gitlab


def _bash_parses(where: str, script: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    r = subprocess.run([bash, "-n"], input=script, text=True, capture_output=True, check=False)
    assert r.returncode == 0, f"{where}: the shell does not parse:\n{r.stderr}\n{script}"


def test_github_actions_workflows_are_well_formed() -> None:
    github, _ = ci_documents()
    assert len(github) >= 3
    for where, wf in github:
        keys: set[object] = set(wf)
        assert "on" in keys or True in keys, f"{where}: no trigger"  # YAML 1.1 reads `on` as True
        jobs = wf["jobs"]
        assert isinstance(jobs, dict) and jobs, where
        for name, job in jobs.items():
            assert "runs-on" in job, f"{where}: job {name} has no runs-on"
            for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
                assert need in jobs, f"{where}: job {name} needs unknown job {need}"
            steps = job["steps"]
            assert isinstance(steps, list) and steps, f"{where}: job {name} has no steps"
            for step in steps:
                assert ("uses" in step) != ("run" in step), f"{where}: {name}: {step}"
                if "run" in step:
                    _bash_parses(f"{where} {name}", step["run"])


_GITLAB_KEYWORDS = {"stages", "variables", "default", "include", "workflow", "image", "cache",
                    "before_script", "after_script", "services"}


def gitlab_jobs(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Jobs with `extends` merged in (hidden `.templates` are not jobs themselves)."""
    jobs = {}
    for name, job in pipeline.items():
        if name in _GITLAB_KEYWORDS or name.startswith("."):
            continue
        merged: dict[str, Any] = {}
        for base in [job.get("extends")] if isinstance(job.get("extends"), str) else job.get("extends", []):
            merged.update(pipeline[base])
        merged.update({k: v for k, v in job.items() if k != "extends"})
        jobs[name] = merged
    return jobs


def test_gitlab_pipelines_are_well_formed() -> None:
    _, gitlab = ci_documents()
    assert len(gitlab) >= 3
    for where, pipeline in gitlab:
        stages = pipeline.get("stages", ["build", "test", "deploy"])
        jobs = gitlab_jobs(pipeline)
        assert jobs, f"{where}: no jobs"
        before = pipeline.get("default", {}).get("before_script", [])
        for name, job in jobs.items():
            assert job.get("stage", "test") in stages, f"{where}: {name}: unknown stage"
            for need in job.get("needs", []):
                assert need in jobs, f"{where}: {name} needs unknown job {need}"
            script = job["script"]
            assert isinstance(script, list) and all(isinstance(s, str) for s in script), where
            _bash_parses(f"{where} {name}", "\n".join([*job.get("before_script", before), *script]))


def _scripts(doc: dict[str, Any]) -> str:
    """All the shell of one pipeline, as one text."""
    if "jobs" in doc:
        return "\n".join(s.get("run", "") for j in doc["jobs"].values() for s in j["steps"])
    out = [*doc.get("default", {}).get("before_script", [])]
    for job in gitlab_jobs(doc).values():
        out += job.get("script", [])
    return "\n".join(out)


def test_each_ci_system_has_a_recipe_for_each_role() -> None:
    github, gitlab = ci_documents()
    for system, docs in (("GitHub Actions", github), ("GitLab CI", gitlab)):
        scripts = [_scripts(d) for _, d in docs]
        assert any("imagelock lock --check" in s and "--sign" in s and "imagelock push" in s
                   for s in scripts), f"{system}: no vendor recipe"
        assert any("imagelock rebuild" in s and "--sign" in s and "--push-attestation" in s
                   for s in scripts), f"{system}: no rebuilder recipe"
        assert any("imagelock verify" in s for s in scripts), f"{system}: no consumer gate"


def test_the_deployment_gate_cannot_swallow_a_refusal() -> None:
    github, gitlab = ci_documents()
    for where, doc in github + gitlab:
        text = _scripts(doc)
        for line in text.splitlines():
            if "imagelock verify" in line:
                assert "||" not in line and not line.rstrip().endswith("&"), f"{where}: {line}"
        if "imagelock verify" not in text:
            continue
        if "jobs" in doc:
            jobs = doc["jobs"]
            gates = [n for n, j in jobs.items()
                     if any("imagelock verify" in s.get("run", "") for s in j["steps"])]
            for n in gates:
                assert not jobs[n].get("continue-on-error")
                assert not any(s.get("continue-on-error") for s in jobs[n]["steps"])
            deploy = [n for n, j in jobs.items() if n not in gates]
        else:
            jobs = gitlab_jobs(doc)
            gates = [n for n, j in jobs.items() if "imagelock verify" in "\n".join(j["script"])]
            assert not any(jobs[n].get("allow_failure") for n in gates), where
            deploy = [n for n in jobs if n not in gates]
        # Deployment waits for the gate.
        for n in deploy:
            needs = jobs[n].get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            assert set(gates) <= set(needs), f"{where}: {n} does not wait for {gates}"


# --- links ------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            out.add(slug if n == 0 else f"{slug}-{n}")
            seen[slug] = n + 1
    return out


@pytest.mark.parametrize("path", [*DOCS, README], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_somewhere(path: Path) -> None:
    problems = []
    for m in re.finditer(r"\]\(([^)\s]+)\)", prose(path)):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not problems, f"{path.relative_to(REPO)}:\n" + "\n".join(problems)
