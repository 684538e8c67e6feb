"""Reading a Serve config file the way Ray Serve will: ``ServeDeploySchema``, then the
SalesBoost application's own arguments, with errors that name the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

SALESBOOST_IMPORT_PATH = "serve_apps.app:build_app"


class ServeConfigError(ValueError):
    """A Serve config or a model config it names is not usable (file and field named)."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        self.path = str(path)
        self.field = field
        self.detail = message
        super().__init__(f"{path}: {field}: {message}")


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def raise_first(path: Path | str, exc: ValidationError, prefix: str = "") -> None:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    field = _field(loc)
    if prefix:
        field = prefix if field == "(top level)" else f"{prefix}.{field}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    raise ServeConfigError(path, field, f"{first['msg']}{more}") from exc


def load_serve_config(path: Path) -> dict[str, Any]:
    """The file as a dict, checked against ``ray.serve.schema.ServeDeploySchema``."""
    from ray.serve.schema import ServeDeploySchema

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ServeConfigError(path, "(file)", "no such file") from None
    except yaml.YAMLError as exc:
        raise ServeConfigError(path, "(file)", f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ServeConfigError(path, "(top level)", "must be a mapping with 'applications'")
    try:
        ServeDeploySchema.model_validate(data)
    except ValidationError as exc:
        raise_first(path, exc)
    return data


def salesboost_apps(path: Path, config: dict[str, Any]) -> list[tuple[int, Any]]:
    """Each SalesBoost application in ``config`` with its parsed, validated arguments."""
    from serve_apps.app import SalesBoostAppArgs

    apps = []
    for index, app in enumerate(config["applications"]):
        if app.get("import_path") != SALESBOOST_IMPORT_PATH:
            continue
        try:
            apps.append((index, SalesBoostAppArgs.model_validate(app.get("args") or {})))
        except ValidationError as exc:
            raise_first(path, exc, prefix=f"applications[{index}].args")
    return apps


def model_configs(path: Path, config: dict[str, Any]) -> list[tuple[str, Path, Any]]:
    """Every model config a SalesBoost application names: (field, file, parsed settings)."""
    from models.encoders import EncoderDeploymentSettings
    from models.llm import LLMDeploymentSettings
    from serve_apps.app import resolve_model_config

    out: list[tuple[str, Path, Any]] = []
    for index, args in salesboost_apps(path, config):
        for name, kind in (
            ("npc_llm_config", LLMDeploymentSettings),
            ("judge_llm_config", LLMDeploymentSettings),
            ("embedder_config", EncoderDeploymentSettings),
            ("reranker_config", EncoderDeploymentSettings),
        ):
            value = getattr(args, name)
            field = f"applications[{index}].args.{name}"
            if value is None:
                continue
            try:
                file = resolve_model_config(value)
            except ValueError as exc:
                raise ServeConfigError(path, field, str(exc)) from None
            try:
                out.append((field, file, kind.from_file(file)))
            except ValidationError as exc:
                raise_first(file, exc)
        try:
            args.encoder_settings()
        except ValueError as exc:
            raise ServeConfigError(path, f"applications[{index}].args", str(exc)) from None
    return out


def check_accelerators(path: Path, config: dict[str, Any], accelerator: str) -> None:
    """Refuse a model config that runs on another accelerator than the profile offers, and
    GPU resources asked of a CPU-only cluster."""
    for field, file, settings in model_configs(path, config):
        if settings.accelerator != accelerator:
            raise ServeConfigError(
                file,
                "accelerator",
                f"is {settings.accelerator!r} but the {accelerator.upper()} profile's Serve "
                f"config {path} names this file in {field}",
            )
    if accelerator == "cpu":
        for index, app in enumerate(config["applications"]):
            for d_index, deployment in enumerate(app.get("deployments") or []):
                gpus = (deployment.get("ray_actor_options") or {}).get("num_gpus") or 0
                if gpus:
                    raise ServeConfigError(
                        path,
                        f"applications[{index}].deployments[{d_index}].ray_actor_options.num_gpus",
                        f"{deployment.get('name')} asks for {gpus} GPU in a CPU profile",
                    )


def with_model_applications(config: dict[str, Any]) -> dict[str, Any]:
    """The config with an application for each model version its SalesBoost applications
    name (``npc_llm_config``, ``judge_llm_config``), once each, beside them: each version is
    an application of its own so that a swap adds or retires one without touching the rest.
    A version runs with the runtime env of the application that names it."""
    from serve_apps.app import SalesBoostAppArgs
    from serve_apps.model_lifecycle.serve_control import MODEL_APP_IMPORT_PATH

    config = dict(config)
    applications = list(config["applications"])
    present = {app["name"] for app in applications}
    for app in config["applications"]:
        if app.get("import_path") != SALESBOOST_IMPORT_PATH:
            continue
        args = SalesBoostAppArgs.model_validate(app.get("args") or {})
        for name in (args.npc_llm_config, args.judge_llm_config):
            if name is None:
                continue
            settings = _llm_settings(name)
            if settings.app_name in present:
                continue
            present.add(settings.app_name)
            entry: dict[str, Any] = {
                "name": settings.app_name,
                "route_prefix": None,
                "import_path": MODEL_APP_IMPORT_PATH,
                "args": {"config": name},
            }
            if app.get("runtime_env"):
                entry["runtime_env"] = copy.deepcopy(app["runtime_env"])
            applications.append(entry)
    config["applications"] = applications
    return config


def _llm_settings(name: str) -> Any:
    from models.llm import LLMDeploymentSettings
    from serve_apps.app import resolve_model_config

    return LLMDeploymentSettings.from_file(resolve_model_config(name))
