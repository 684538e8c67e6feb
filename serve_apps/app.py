"""The SalesBoost Serve application builder.

    Gateway ─┬─► TrainingOrchestrator ─┬─► NPC LLM ┐ each model version: an application of its
             │                         ├─► judge LLM ┘ own (build_model_app, ray.serve.llm on
             │                         │   vLLM), reached by the route a turn names
             │                         ├─► Embedder (the semantic checks' sentences)
             │                         └─► KnowledgeService (the seller's chunks for the
             │                             coach and the claims check, beside the reply)
             ├─► ModelLifecycle (which version answers each role; the swap; the replay of
             │                   stored sessions, through the orchestrator and knowledge)
             └─► KnowledgeService (the persona's papers, uploads, search testing,
                   │               versions)
                   ├─► Embedder
                   └─► Reranker (a cross-encoder, only when one is configured)

The same builder serves ``salesboost up``, a Serve config YAML (``cluster/``), a RayService
``serveConfigV2`` and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.deployment_options import DeploymentOptions, deployment_options
from serve_apps.gateway.config import GatewayConfig
from serve_apps.knowledge.config import EmbedderConfig, KnowledgeConfig, RerankerConfig
from serve_apps.orchestrator.config import OrchestratorConfig

if TYPE_CHECKING:
    from ray.serve import Application, Deployment

    from models.encoders import EncoderDeploymentSettings
    from models.llm import LLMDeploymentSettings
    from serve_apps.settings import Settings

MODEL_CONFIGS_DIR = Path(__file__).resolve().parent.parent / "models" / "configs"


def resolve_model_config(name_or_path: str) -> Path:
    """A config file path, or the name of one under ``models/configs`` (``npc_cpu``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = MODEL_CONFIGS_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    raise ValueError(f"LLM config {name_or_path!r} is neither a file nor one of {_known()}")


def _known() -> list[str]:
    return sorted(p.stem for p in MODEL_CONFIGS_DIR.glob("*.yaml"))


class SalesBoostAppArgs(BaseModel):
    """The application's arguments (``args:`` in a Serve config): the model configs, and each
    deployment's typed config, which the builder binds to the deployment as it is."""

    model_config = ConfigDict(extra="forbid")

    npc_llm_config: str = Field(
        "npc_cpu_persona",
        description="NPC model config: a YAML path or a name under models/configs.",
    )
    judge_llm_config: str | None = Field(
        "npc_cpu_persona",
        description="Judge model config for the agents (guided JSON); the same file or "
        "model_id as the NPC shares its deployment; None: agents use rules only.",
    )
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig,
        description="The gateway's settings (over SALESBOOST_* of the build's environment) and "
        "its deployment_options.",
    )
    orchestrator: OrchestratorConfig = Field(
        default_factory=OrchestratorConfig,
        description="How the agents work (agents, or `agents:` at the top level) and the "
        "orchestrator's deployment_options.",
    )
    knowledge: KnowledgeConfig = Field(
        default_factory=KnowledgeConfig,
        description="Search depths (search, or `search:` at the top level), the Qdrant local "
        "folder (<data_dir>/qdrant) and the knowledge service's deployment_options.",
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="Embedder deployment's model (bge-base-en-v1.5 on GPU)."
    )
    reranker_model: str | None = Field(
        None,
        description="A cross-encoder for the Reranker deployment (BAAI/bge-reranker-v2-m3 on "
        "GPU); unset reranks inside Qdrant with late interaction on the bundled embedder.",
    )
    embedder_config: str | None = Field(
        None,
        description="Embedder config (models/configs/embedder_gpu): its model and device; "
        "unset runs embedding_model on CPU.",
    )
    reranker_config: str | None = Field(
        None,
        description="Reranker config (models/configs/reranker_gpu): a cross-encoder and its "
        "device; takes the place of reranker_model.",
    )
    embedder_options: DeploymentOptions = Field(
        default_factory=DeploymentOptions, description="The Embedder's Serve options."
    )
    reranker_options: DeploymentOptions = Field(
        default_factory=DeploymentOptions, description="The Reranker's Serve options."
    )

    @model_validator(mode="before")
    @classmethod
    def _agents_and_search_at_the_top(cls, data: Any) -> Any:
        """``agents:`` and ``search:`` stay where the Serve configs have always had them."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for name, section in (("agents", "orchestrator"), ("search", "knowledge")):
            if name not in data:
                continue
            inner = data.get(section) or {}
            if not isinstance(inner, Mapping):
                continue
            if name in inner:
                raise ValueError(f"set {name} or {section}.{name}, not both")
            data[section] = {**inner, name: data.pop(name)}
        return data

    @classmethod
    def over_settings(cls, args: Mapping[str, Any], settings: Settings) -> SalesBoostAppArgs:
        """``args`` over what the build's environment sets: the gateway's ``SALESBOOST_*``
        settings and the data directory's Qdrant folder (validated once, together)."""
        merged = dict(args)
        gateway = merged.get("gateway") or {}
        if isinstance(gateway, Mapping):
            merged["gateway"] = {**settings.gateway_settings(), **gateway}
        knowledge = merged.get("knowledge") or {}
        if isinstance(knowledge, Mapping):
            merged["knowledge"] = {"qdrant_folder": settings.data_dir / "qdrant", **knowledge}
        return cls.model_validate(merged)

    @field_validator("embedding_model")
    @classmethod
    def _known_embedding_model(cls, value: str) -> str:
        from retrieval.embedder import EMBEDDING_MODELS

        if value not in EMBEDDING_MODELS:
            raise ValueError(
                f"unknown embedding model {value!r}; known: {sorted(EMBEDDING_MODELS)}"
            )
        return value

    def encoder_settings(
        self,
    ) -> tuple[EncoderDeploymentSettings, EncoderDeploymentSettings | None]:
        """The embedder's and the reranker's settings: from their config files when named,
        else the CPU defaults for ``embedding_model`` and ``reranker_model``."""
        from models.encoders import EncoderDeploymentSettings

        if self.embedder_config is not None:
            embedder = EncoderDeploymentSettings.from_file(
                resolve_model_config(self.embedder_config)
            )
            if "embedding_model" in self.model_fields_set and (
                self.embedding_model != embedder.model
            ):
                raise ValueError(
                    f"embedding_model={self.embedding_model!r} disagrees with "
                    f"embedder_config's model {embedder.model!r}: set one of them"
                )
        else:
            embedder = EncoderDeploymentSettings(kind="embedder", model=self.embedding_model)
        if self.reranker_config is not None:
            if self.reranker_model is not None:
                raise ValueError("set reranker_model or reranker_config, not both")
            reranker = EncoderDeploymentSettings.from_file(
                resolve_model_config(self.reranker_config)
            )
        elif self.reranker_model is not None:
            reranker = EncoderDeploymentSettings(kind="reranker", model=self.reranker_model)
        else:
            reranker = None
        for settings, kind in ((embedder, "embedder"), (reranker, "reranker")):
            if settings is not None and settings.kind != kind:
                raise ValueError(f"{kind}_config names a {settings.kind} config")
        return embedder, reranker

    def model_routes(self) -> dict[ModelRole, ModelRoute]:
        """Where the configured versions of the persona and the judge are served (the judge
        shares the persona's application when its config is the same)."""
        from serve_apps.model_lifecycle.changes import route_of

        npc, judge = self.llm_settings()
        routes: dict[ModelRole, ModelRoute] = {"npc": route_of("npc", npc)}
        if judge is not None:
            if judge.model_id == npc.model_id and judge != npc:
                raise ValueError(
                    f"the judge config names the NPC's model_id {npc.model_id!r} with other "
                    "settings: give it its own model_id, or use the NPC's config"
                )
            routes["judge"] = route_of("judge", judge)
        return routes

    def llm_settings(self) -> tuple[LLMDeploymentSettings, LLMDeploymentSettings | None]:
        """The NPC's and the judge's model configs, read from their files."""
        from models.llm import LLMDeploymentSettings

        npc = LLMDeploymentSettings.from_file(resolve_model_config(self.npc_llm_config))
        if self.judge_llm_config is None:
            return npc, None
        return npc, LLMDeploymentSettings.from_file(resolve_model_config(self.judge_llm_config))


def _deployment(decorated: object) -> Deployment:
    """A class that ``@serve.deployment`` made a ``Deployment`` (mypy keeps it a class)."""
    from ray.serve import Deployment

    assert isinstance(decorated, Deployment), decorated
    return decorated


def build_app(args: Mapping[str, Any] | None = None) -> Application:
    """The application: ``args`` validated once, here, and each deployment bound with its
    typed config and given the Serve options that config names."""
    from serve_apps.gateway.deployment import Gateway
    from serve_apps.knowledge.deployment import KnowledgeService
    from serve_apps.knowledge.embedder import EmbedderDeployment
    from serve_apps.knowledge.reranker import RerankerDeployment
    from serve_apps.model_lifecycle.deployment import ModelLifecycle
    from serve_apps.orchestrator.deployment import TrainingOrchestrator
    from serve_apps.settings import Settings

    settings = Settings()  # the environment this build runs in
    parsed = SalesBoostAppArgs.over_settings(args or {}, settings)
    # Each model version is an application of its own (build_model_app), so that a swap
    # never restarts this one; the deployments here are given the versions' routes.
    routes = parsed.model_routes()
    embedder_settings, reranker_settings = parsed.encoder_settings()
    embedder_config = EmbedderConfig(
        encoder=embedder_settings, deployment_options=parsed.embedder_options
    )
    embedder = (
        _deployment(EmbedderDeployment)
        .options(**deployment_options(embedder_config))
        .bind(config=embedder_config)
    )
    reranker = None
    if reranker_settings is not None:
        reranker_config = RerankerConfig(
            encoder=reranker_settings, deployment_options=parsed.reranker_options
        )
        reranker = (
            _deployment(RerankerDeployment)
            .options(**deployment_options(reranker_config))
            .bind(config=reranker_config)
        )
    knowledge = (
        _deployment(KnowledgeService)
        .options(**deployment_options(parsed.knowledge))
        .bind(
            config=parsed.knowledge,
            embedder=embedder,
            embedder_settings=embedder_settings,
            reranker=reranker,
            reranker_settings=reranker_settings,
        )
    )
    orchestrator = (
        _deployment(TrainingOrchestrator)
        .options(**deployment_options(parsed.orchestrator))
        .bind(
            config=parsed.orchestrator,
            npc_model=routes["npc"],
            judge_model=routes.get("judge"),
            embedder=embedder,  # the semantic checks use the knowledge service's embedder
            knowledge=knowledge,  # the seller's chunks for the coach and the claims check
        )
    )
    # A replay of stored sessions sends their turns to the orchestrator, with the persona's
    # papers from the knowledge service, as the gateway sends live ones.
    lifecycle = _deployment(ModelLifecycle).bind(
        configured=routes, orchestrator=orchestrator, knowledge=knowledge
    )
    # The gateway tries semantic compliance rules on a sentence with the same embedder.
    return (
        _deployment(Gateway)
        .options(**deployment_options(parsed.gateway))
        .bind(
            config=parsed.gateway,
            orchestrator=orchestrator,
            knowledge=knowledge,
            embedder=embedder,
            models=lifecycle,
            model_routes=routes,
        )
    )


class ModelAppArgs(BaseModel):
    """A model version's application: its config, by name or path, or inline (a swap)."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(None, description="A YAML path or a name under models/configs.")
    settings: dict[str, Any] | None = Field(None, description="The config itself.")
    start_tries: int | None = Field(
        None,
        ge=1,
        le=20,
        description="Replicas that may fail to start before the deployment fails (the "
        "model config's default when unset; a candidate gets one).",
    )

    @model_validator(mode="after")
    def _one(self) -> ModelAppArgs:
        if (self.config is None) == (self.settings is None):
            raise ValueError("give the model's config or its settings, one of them")
        return self

    def llm_settings(self) -> LLMDeploymentSettings:
        from models.llm import LLMDeploymentSettings

        if self.settings is not None:
            return LLMDeploymentSettings.model_validate(self.settings)
        assert self.config is not None
        return LLMDeploymentSettings.from_file(resolve_model_config(self.config))


def build_model_app(args: Mapping[str, Any] | None = None) -> Application:
    """One model version's application: its LLM deployment alone, named by its config."""
    from models.llm import build_llm_app
    from serve_apps.settings import Settings

    app_args = ModelAppArgs.model_validate(args or {})
    return build_llm_app(
        app_args.llm_settings(), Settings().models_dir, start_tries=app_args.start_tries
    )
