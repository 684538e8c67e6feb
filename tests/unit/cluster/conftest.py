"""Shared, expensive parts of the cluster tests: the KubeRay CRDs (about 1 s each to parse)
and the SalesBoost application built from each profile's Serve config (no Ray started)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO.parent / "shared" / "schemas" / "kuberay"


class _NoRayContext:
    """``ray.get_runtime_context()`` as a driver without Ray sees it: Ray Serve LLM asks it
    for the default runtime env while building, and would otherwise start a local Ray."""

    runtime_env: dict[str, Any] = {}


@functools.cache
def crd_schema(crd_file: str, version: str = "v1") -> dict:
    assert (SCHEMAS / crd_file).is_file(), f"KubeRay CRDs not found under {SCHEMAS}"
    crd = yaml.safe_load((SCHEMAS / crd_file).read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return schema["schema"]["openAPIV3Schema"]


def strict(schema: Any) -> Any:
    """A copy that rejects unknown fields, as `kubectl --validate=strict` does (plain
    jsonschema accepts them: the CRDs have no additionalProperties: false)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@functools.cache
def built_deployments(serve_config_file: str) -> dict[str, Any]:
    """Deployment name → Ray Serve ``Deployment`` as the builders make them for every
    application of ``serve_config_file`` (the product's and its model versions', as
    ``salesboost up`` and the renderer add them), before the file's ``deployments:``
    overrides."""
    import ray
    from ray.serve._private.build_app import build_app as ray_build_app

    from cluster.serve_config import with_model_applications
    from serve_apps.app import build_app, build_model_app

    builders = {
        "serve_apps.app:build_app": build_app,
        "serve_apps.app:build_model_app": build_model_app,
    }
    config = with_model_applications(yaml.safe_load((REPO / serve_config_file).read_text()))
    # The test session's stack may already have Ray up in this process; building must not
    # start one where there was none.
    ray_was_up = ray.is_initialized()
    deployments: dict[str, Any] = {}
    with mock.patch.object(ray, "get_runtime_context", return_value=_NoRayContext()):
        for spec in config["applications"]:
            builder = builders[spec["import_path"]]
            built = ray_build_app(
                builder(spec.get("args") or {}), name=spec["name"], default_runtime_env={}
            )
            deployments.update({d.name: d for d in built.deployments})
    assert ray.is_initialized() == ray_was_up
    return deployments


@pytest.fixture
def no_ray_context():
    # Per test: Ray's own log filter asks the runtime context for the job id, so a patch
    # left in place would break every log line after it in the session.
    import ray

    with mock.patch.object(ray, "get_runtime_context", return_value=_NoRayContext()):
        yield
