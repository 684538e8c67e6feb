"""The rendered KubeRay manifests: valid against the CRDs, the Serve config inside valid for
Ray Serve, secrets only by reference, and what is committed is what `render` makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cluster.render import PROFILES, SECRET_NAME, URL_WITH_PASSWORD, render
from tests.unit.cluster.conftest import REPO, crd_schema, strict

K8S = REPO / "cluster" / "k8s"


@pytest.fixture(scope="module", params=PROFILES)
def rendered(request) -> tuple[str, dict[str, str]]:
    return request.param, render(request.param)


def _docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def _rayservice(files: dict[str, str]) -> dict:
    (doc,) = _docs(files["rayservice.yaml"])
    return doc


def test_rayservice_validates_against_the_kuberay_crd(rendered):
    _, files = rendered
    manifest = _rayservice(files)
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    schema = strict(crd_schema("ray.io_rayservices.yaml"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(manifest), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def test_the_strict_schema_catches_a_misspelt_field(rendered):
    _, files = rendered
    manifest = _rayservice(files)
    manifest["spec"]["rayClusterConfg"] = manifest["spec"].pop("rayClusterConfig")
    schema = strict(crd_schema("ray.io_rayservices.yaml"))
    assert list(jsonschema.Draft7Validator(schema).iter_errors(manifest))


def test_serve_config_v2_is_a_valid_serve_deploy_config(rendered):
    from ray.serve.schema import ServeDeploySchema

    _, files = rendered
    config = ServeDeploySchema.model_validate(
        yaml.safe_load(_rayservice(files)["spec"]["serveConfigV2"])
    )
    assert config.proxy_location.value == "EveryNode"
    assert config.http_options.host == "0.0.0.0"
    # Serve applies request_timeout_s to a whole WebSocket: it would end conversations.
    assert config.http_options.request_timeout_s is None


def test_serve_config_v2_is_the_profiles_serve_config(rendered):
    """One source of truth: the applications are the file's, unchanged, and after them an
    application for each model version they name (each version is one of its own)."""
    from cluster.serve_config import with_model_applications

    profile, files = rendered
    values = yaml.safe_load((REPO / "cluster" / "values" / f"{profile}.yaml").read_text())
    source = yaml.safe_load((REPO / values["serve_config"]).read_text())
    embedded = yaml.safe_load(_rayservice(files)["spec"]["serveConfigV2"])
    assert embedded["applications"][: len(source["applications"])] == source["applications"]
    assert embedded["applications"] == with_model_applications(source)["applications"]
    versions = embedded["applications"][len(source["applications"]) :]
    assert versions and all(
        v["import_path"] == "serve_apps.app:build_model_app" and v["route_prefix"] is None
        for v in versions
    )


def test_every_import_path_imports(rendered):
    import importlib

    _, files = rendered
    config = yaml.safe_load(_rayservice(files)["spec"]["serveConfigV2"])
    for app in config["applications"]:
        module, _, name = app["import_path"].partition(":")
        assert callable(getattr(importlib.import_module(module), name)), app["import_path"]


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_every_secret_is_a_secret_key_ref(rendered):
    profile, files = rendered
    seen_refs = 0
    for name, text in files.items():
        assert not URL_WITH_PASSWORD.search(text), f"{name}: a URL with a password"
        for doc in _docs(text):
            for path, node in _walk(doc):
                is_env = "name" in node and ("value" in node or "valueFrom" in node)
                if is_env and SECRET_NAME.search(node["name"]):
                    assert "value" not in node, f"{name}{path}: {node['name']} by value"
                    assert "secretKeyRef" in node["valueFrom"], f"{name}{path}"
                    seen_refs += 1
            gcs = doc.get("spec", {}).get("rayClusterConfig", {}).get("gcsFaultToleranceOptions")
            if gcs:
                assert "value" not in gcs["redisPassword"]
                assert "secretKeyRef" in gcs["redisPassword"]["valueFrom"]
                assert "externalStorageNamespace" not in gcs  # kuberay#1296
    config = yaml.safe_load(_rayservice(files)["spec"]["serveConfigV2"])
    for app in config["applications"]:
        for key in (app.get("runtime_env") or {}).get("env_vars", {}):
            assert not SECRET_NAME.search(key), f"serveConfigV2 carries {key}"
    assert seen_refs >= 4, profile  # database, redis, signing key, qdrant key in every pod


def test_committed_manifests_are_what_render_makes(rendered):
    """The drift check: edit cluster/serve_*.yaml or cluster/values/*.yaml, then run
    `salesboost cluster render --profile <p> --out cluster/k8s/` and commit both."""
    profile, files = rendered
    committed = {p.name: p.read_text() for p in sorted((K8S / profile).glob("*.yaml"))}
    assert sorted(committed) == sorted(files), f"cluster/k8s/{profile}/ has other files"
    for name, text in files.items():
        assert committed[name] == text, (
            f"cluster/k8s/{profile}/{name} differs from what render makes: run "
            f"`salesboost cluster render --profile {profile} --out cluster/k8s/`"
        )


def test_head_runs_no_replicas_and_workers_autoscale(rendered):
    _, files = rendered
    cluster = _rayservice(files)["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["enableInTreeAutoscaling"] is True
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_readiness_is_serves_own_health(rendered):
    _, files = rendered
    spec = _rayservice(files)["spec"]
    cluster = spec["rayClusterConfig"]
    for template in [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]:
        (container,) = template["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/-/healthz", "port": 8000}
        assert template["spec"]["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["runAsNonRoot"] is True


def test_ingress_keeps_websockets_open_and_reaches_the_serve_service(rendered):
    _, files = rendered
    service = _rayservice(files)["spec"]["serveService"]
    (ingress,) = _docs(files["ingress.yaml"])
    annotations = ingress["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["number"] == service["spec"]["ports"][0]["port"]


def test_a_pod_disruption_budget_covers_each_worker_group(rendered):
    _, files = rendered
    cluster = _rayservice(files)["spec"]["rayClusterConfig"]
    budgets = _docs(files["pdb.yaml"])
    for group in cluster["workerGroupSpecs"]:
        labels = group["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, group["groupName"]
        assert matching[0]["apiVersion"] == "policy/v1"


def test_render_writes_the_profiles_folder(tmp_path: Path):
    from cluster.render import write

    written = write("cpu", tmp_path)
    assert sorted(p.name for p in written) == sorted(render("cpu"))
    assert all(p.parent == tmp_path / "cpu" for p in written)
