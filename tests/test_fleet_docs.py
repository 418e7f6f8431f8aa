"""The fleet recipes of docs/rebuilder.md are what the engines accept: the GitHub Actions
workflow validates against the published workflow schema, the GitLab pipeline against GitLab's
CI schema, the Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate,
with its bundled schemas: no network), and every script parses. Each check is shown to catch a broken
recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from helpers import REPO
from test_docs import _bash_parses, fenced_blocks, load

DOC = REPO / "docs" / "rebuilder.md"
GITHUB_SCHEMA = REPO / "tests" / "fixtures" / "schemas" / "github-workflow.json"
GITLAB_SCHEMA = REPO / "tests" / "fixtures" / "schemas" / "gitlab-ci.json"
KUBERNETES = "1.33.0"  # a release whose schemas know hostUsers, appArmorProfile, backoffLimitPerIndex


def documents() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {"github": [], "gitlab": [], "kubernetes": []}
    for b in fenced_blocks(DOC):
        if b.lang not in ("yaml", "yml"):
            continue
        data = load(b.text)
        if not isinstance(data, dict):
            continue
        if "apiVersion" in data:
            found["kubernetes"].append(data)
        elif "jobs" in data:
            if True in data:  # YAML 1.1 reads the key `on` as true; the workflow means "on"
                data["on"] = data.pop(True)
            found["github"].append(data)
        elif "stages" in data:
            found["gitlab"].append(data)
    return found


def schema_errors(schema: Path, doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(schema.read_text()))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


def github_errors(workflow: dict[str, Any]) -> list[str]:
    return schema_errors(GITHUB_SCHEMA, workflow)


def kubernetes_errors(manifest: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path))}: {e.message}"]
    return []


def test_the_github_workflow_watches_on_a_schedule_and_fans_out_a_dynamic_matrix() -> None:
    [wf] = documents()["github"]
    assert github_errors(wf) == []
    assert wf["on"]["schedule"]
    watch, rebuild = wf["jobs"]["watch"], wf["jobs"]["rebuild"]
    assert any("imagelock watch" in s.get("run", "") for s in watch["steps"])
    assert rebuild["needs"] == "watch"
    assert "fromJSON(needs.watch.outputs.items)" in rebuild["strategy"]["matrix"]["item"]
    assert rebuild["strategy"]["fail-fast"] is False
    run = "\n".join(s.get("run", "") for s in rebuild["steps"])
    for flag in ("--sign", "--push-attestation", "--skip-if-vouched", "--sign-failures"):
        assert flag in run
    for job in wf["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                _bash_parses("github workflow", step["run"])


def test_the_workflow_schema_catches_a_broken_workflow() -> None:
    [wf] = documents()["github"]
    broken = json.loads(json.dumps(wf))
    broken["jobs"]["rebuild"]["strategy"]["fail_fast"] = False  # a typo of fail-fast
    del broken["jobs"]["watch"]["runs-on"]
    errors = github_errors(broken)
    assert errors and any("fail_fast" in e for e in errors)


def test_the_gitlab_pipeline_shards_the_work_over_a_parallel_matrix() -> None:
    [pipeline] = documents()["gitlab"]
    assert schema_errors(GITLAB_SCHEMA, pipeline) == []
    rebuild = pipeline["rebuild"]
    [axis] = rebuild["parallel"]["matrix"]
    assert len(axis["SHARD"]) == int(pipeline["variables"]["SHARDS"])
    assert rebuild["needs"] == ["watch"] and "work.jsonl" in pipeline["watch"]["artifacts"]["paths"]
    script = "\n".join(rebuild["script"])
    assert "--skip-if-vouched" in script and "--sign-failures" in script
    _bash_parses("gitlab rebuild", script)
    _bash_parses("gitlab watch", "\n".join(pipeline["watch"]["script"]))


def test_the_gitlab_schema_catches_a_broken_pipeline() -> None:
    [pipeline] = documents()["gitlab"]
    broken = json.loads(json.dumps(pipeline))
    broken["rebuild"]["parallel"] = {"matrix": {"SHARD": ["0", "1"]}}  # a list is required
    broken["rebuild"]["artifact"] = {"paths": ["x"]}  # a typo of artifacts
    assert schema_errors(GITLAB_SCHEMA, broken)


def test_the_kubernetes_manifests_validate_and_give_bubblewrap_what_it_needs() -> None:
    manifests = documents()["kubernetes"]
    for m in manifests:
        assert kubernetes_errors(m) == [], m["kind"]
    kinds = {m["kind"]: m for m in manifests}
    assert {"CronJob", "Job", "PersistentVolumeClaim", "ServiceAccount", "Role",
            "RoleBinding"} <= set(kinds)
    job, cron = kinds["Job"], kinds["CronJob"]
    assert job["spec"]["completionMode"] == "Indexed"
    pod = job["spec"]["template"]["spec"]
    assert pod["hostUsers"] is False
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc["seccompProfile"]["type"] == "Unconfined" and sc["procMount"] == "Unmasked"
    assert sc["appArmorProfile"]["type"] == "Unconfined"
    assert "SYS_ADMIN" in sc["capabilities"]["add"]
    assert "JOB_COMPLETION_INDEX" in container["args"][0]
    assert "--skip-if-vouched" in container["args"][0]
    claim = kinds["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # The store is the shared volume for every rebuild pod.
    store = {e["name"]: e.get("value") for e in container["env"]}["IMAGELOCK_STORE"]
    [mount] = [v for v in container["volumeMounts"] if store.startswith(v["mountPath"])]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # The CronJob runs watch and creates the Indexed Job, with the completions it counted.
    watcher = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    script = watcher["containers"][0]["args"][0]
    assert "imagelock watch" in script and "kubectl create -f -" in script
    assert "completions: $n" in script and "s/^  completions: 1$/" in script
    assert "  completions: 1\n" in _job_text()
    _bash_parses("cronjob", script)
    _bash_parses("job", container["args"][0])
    role = kinds["Role"]
    assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
    assert watcher["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]


def _job_text() -> str:
    [text] = [b.text for b in fenced_blocks(DOC)
              if b.lang == "yaml" and "completionMode: Indexed" in b.text]
    return text


@pytest.mark.parametrize("edit", ["typo", "type"])
def test_the_kubernetes_validator_catches_a_broken_manifest(edit: str) -> None:
    job = next(m for m in documents()["kubernetes"] if m["kind"] == "Job")
    broken = json.loads(json.dumps(job))
    pod = broken["spec"]["template"]["spec"]
    if edit == "typo":
        pod["containers"][0]["securityContext"]["procmount"] = "Unmasked"
    else:
        pod["hostUsers"] = "false"
    assert kubernetes_errors(broken)
