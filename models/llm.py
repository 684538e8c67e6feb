"""LLM deployments on ``ray.serve.llm``: a typed file-backed config turned into an ``LLMConfig``.

ML engineers swap the NPC or judge model by editing a YAML file (``models/configs/``):
the model, the engine arguments and the autoscaling are configuration, not code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.catalog import BUNDLED_MODELS
from models.cpu_dtype import FORCE_ENV, DtypeChoice, DtypeSetting, cpu_dtype
from models.merged_adapter import Progress, merge, merged_folder

if TYPE_CHECKING:
    from ray.serve import Application
    from ray.serve.llm import LLMConfig

BUNDLED_PREFIX = "bundled:"
GRACEFUL_SHUTDOWN_S = 90
CONSTRUCTOR_RETRIES = 3
# Whether a CPU engine compiles the model's graph as it starts (torch.compile, vLLM's
# default): measured on a 2-core EPYC, 87 s more per start for decoding 12-18% faster
# (docs/performance.md). The test suite and quick development starts turn it off.
COMPILE_ENV = "SALESBOOST_CPU_COMPILE_GRAPH"
# Where an LLMConfig carries the CPU dtype setting to the replica that starts the engine.
CPU_DTYPE_SETTING_KEY = "salesboost_cpu_dtype"
# A relative adapter path is the repository's (the image holds the repository too).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The LoRA ranks vLLM's engine takes (vllm/config/lora.py).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class PersonaAdapter(BaseModel):
    """A LoRA adapter of the model that the persona's requests use.

    The judge's requests to the same engine stay on the base model: one engine serves both,
    the adapter preloaded at start (vLLM's ``lora_modules``) and chosen per request by name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The name requests choose the adapter by; not the model's own.",
    )
    path: str = Field(
        ...,
        min_length=1,
        description="The adapter's folder (adapter_config.json, "
        "adapter_model.safetensors); relative to the repository.",
    )
    max_rank: int = Field(8, description="vLLM's max_lora_rank: at least the adapter's rank.")
    merge: bool = Field(
        False,
        description="Serve the model with the adapter merged into its weights (a folder of its "
        "own, made once): no LoRA at run time, so the CPU engine keeps torch.compile; the "
        "engine then serves only that model, to the judge too.",
    )

    def folder(self) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def weights_digest(self) -> str:
        """The adapter's weights, so that a retrained adapter is another version."""
        digest = hashlib.sha256()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            digest.update((self.folder() / name).read_bytes())
        return digest.hexdigest()[:16]

    @model_validator(mode="after")
    def _loadable(self) -> PersonaAdapter:
        if self.max_rank not in VLLM_LORA_RANKS:
            raise ValueError(f"max_rank {self.max_rank}: vLLM takes one of {VLLM_LORA_RANKS}")
        folder = self.folder()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if not (folder / name).is_file():
                raise ValueError(f"persona_adapter.path: {folder / name} does not exist")
        rank = json.loads((folder / "adapter_config.json").read_text()).get("r")
        if not isinstance(rank, int) or rank > self.max_rank:
            raise ValueError(f"the adapter's rank {rank} is above max_rank {self.max_rank}")
        return self


class AutoscalingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0, description="Replicas kept warm.")
    max_replicas: int = Field(1, ge=1, description="Upper bound under load.")
    target_ongoing_requests: float = Field(
        16, gt=0, description="Concurrent streams per replica before scaling out."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas={self.max_replicas} is below min_replicas={self.min_replicas}"
            )
        return self


class LLMDeploymentSettings(BaseModel):
    """One LLM deployment (NPC or judge) as an ML engineer writes it in YAML."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(..., min_length=1, description="Name the model is served under.")
    source: str = Field(
        ...,
        min_length=1,
        description="'bundled:<name>' (prepared under the data dir), a local path, or a hub id.",
    )
    accelerator: Literal["cpu", "gpu"] = Field("cpu", description="Where the engine runs.")
    accelerator_type: str | None = Field(None, description="Ray accelerator type, GPU only.")
    cpus_per_engine: float = Field(1, gt=0, description="CPU bundle for the engine (CPU build).")
    kv_cache_gib: int = Field(1, ge=1, le=256, description="VLLM_CPU_KVCACHE_SPACE (CPU build).")
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = Field(
        "auto",
        description=(
            "The engine's dtype. On the CPU, 'auto' is bfloat16 where the CPU has bf16 "
            "instructions and float32 elsewhere (SALESBOOST_CPU_DTYPE may force one); on a "
            "GPU, 'auto' is the model's own."
        ),
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="vLLM engine arguments, passed through unchanged."
    )
    autoscaling: AutoscalingSettings = Field(default_factory=AutoscalingSettings)
    max_ongoing_requests: int = Field(64, ge=1, description="Streams one replica admits.")
    log_engine_metrics: bool = Field(
        True,
        description="vLLM's engine metrics through Ray's (ray_vllm_*: time to first token, "
        "inter-token latency, queue, KV cache), beside Serve's and the product's.",
    )
    persona_adapter: PersonaAdapter | None = Field(
        None,
        description="A LoRA adapter the persona's requests use; the judge's use the base model.",
    )
    stream_batching_interval_ms: float = Field(
        0,
        ge=0,
        le=1000,
        description=(
            "After the first token (always sent at once), streamed chunks are grouped over "
            "this interval: fewer objects between replicas; 0 sends every token alone."
        ),
    )

    @model_validator(mode="after")
    def _accelerator_consistent(self) -> LLMDeploymentSettings:
        if self.accelerator == "cpu" and self.accelerator_type:
            raise ValueError(f"accelerator_type={self.accelerator_type!r} needs accelerator: gpu")
        if "dtype" in self.engine_kwargs:
            raise ValueError(
                "engine_kwargs.dtype: set 'dtype' at the top level of the config (auto, "
                "bfloat16, float32 or float16), so the CPU's choice is made in one place"
            )
        if self.accelerator == "cpu" and self.dtype == "float16":
            raise ValueError("dtype float16 is for GPUs; on the CPU use auto, bfloat16 or float32")
        if self.persona_adapter is not None and self.persona_adapter.name == self.model_id:
            raise ValueError("persona_adapter.name must differ from model_id")
        if self.source.startswith(BUNDLED_PREFIX):
            name = self.source.removeprefix(BUNDLED_PREFIX)
            if name not in BUNDLED_MODELS:
                raise ValueError(
                    f"source {self.source!r}: known bundled models {list(BUNDLED_MODELS)}"
                )
        return self

    def config_hash(self) -> str:
        """The config's identity: a change of model, engine, sampling or serving options is
        another version of the model."""
        identity = self.model_dump(mode="json")
        if self.persona_adapter is None:
            # Configs without one keep the versions they had before adapters existed.
            del identity["persona_adapter"]
        else:
            identity["persona_adapter"]["weights"] = self.persona_adapter.weights_digest()
        canonical = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    @property
    def version(self) -> str:
        """What a stored reply and a score record: the model served and its config."""
        return f"{self.model_id}@{self.config_hash()}"

    @property
    def app_name(self) -> str:
        """The Serve application that serves this version, beside the product's own."""
        return f"llm-{self.config_hash()}"

    @property
    def deployment_name(self) -> str:
        """The LLM deployment in that application (``ray.serve.llm``'s name, our prefix)."""
        return f"llm-{self.model_id}:" + self.model_id.replace("/", "--").replace(".", "_")

    @classmethod
    def from_file(cls, path: str | Path) -> LLMDeploymentSettings:
        with open(path) as fh:
            return cls.model_validate(yaml.safe_load(fh))

    def resolve_source(self, models_dir: Path) -> str:
        """The path or hub id vLLM should load (the merged folder for a merged adapter)."""
        base = self._base_source(models_dir)
        if self.persona_adapter is not None and self.persona_adapter.merge:
            adapter = self.persona_adapter
            return str(
                merged_folder(models_dir, Path(base), adapter.name, adapter.weights_digest())
            )
        return base

    def _base_source(self, models_dir: Path) -> str:
        if self.source.startswith(BUNDLED_PREFIX):
            bundled = BUNDLED_MODELS[self.source.removeprefix(BUNDLED_PREFIX)]
            return str(bundled.folder(models_dir))
        return self.source

    def prepare_merged(self, models_dir: Path, progress: Progress = print) -> None:
        """Merge the persona's adapter into the model's weights where the config asks for it
        and this node has not yet (the base model must be prepared)."""
        adapter = self.persona_adapter
        if adapter is None or not adapter.merge:
            return
        merge(
            Path(self._base_source(models_dir)),
            adapter.folder(),
            Path(self.resolve_source(models_dir)),
            adapter.weights_digest(),
            progress,
        )

    def _runtime_adapter(self) -> PersonaAdapter | None:
        """The adapter the engine applies per request (none when merged into the weights)."""
        adapter = self.persona_adapter
        return adapter if adapter is not None and not adapter.merge else None

    def dtype_choice(self, forced: DtypeSetting | None = None) -> DtypeChoice | None:
        """The CPU engine's dtype on this machine and why (None on a GPU); ``forced`` stands
        for SALESBOOST_CPU_DTYPE when given."""
        if self.accelerator != "cpu":
            return None
        return cpu_dtype(self.dtype, forced)  # type: ignore[arg-type]

    def resolved_engine_kwargs(self) -> dict[str, Any]:
        """``engine_kwargs`` with the dtype this machine runs the model in."""
        choice = self.dtype_choice()
        dtype = choice.dtype if choice is not None else self.dtype
        kwargs = {**self.engine_kwargs, "dtype": dtype}
        if self.accelerator == "cpu" and not cpu_graph_compiled():
            kwargs.setdefault("enforce_eager", True)
        if (adapter := self._runtime_adapter()) is not None:
            kwargs.update(enable_lora=True, max_lora_rank=adapter.max_rank, max_loras=1)
        return kwargs

    def persona_lora_request(self) -> Any:
        """What the persona's requests to a vLLM engine of this process carry: its adapter
        (None without one). A benchmark's direct engine; a deployment names it instead."""
        if (adapter := self._runtime_adapter()) is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter.name, 1, str(adapter.folder()))

    def persona_model_id(self) -> str:
        """The name the persona's requests give: a LoRA adapter's, or the model's."""
        adapter = self._runtime_adapter()
        return adapter.name if adapter is not None else self.model_id

    def vllm_engine_kwargs(self, models_dir: Path) -> dict[str, Any]:
        """The engine arguments both the deployment and the direct baseline use."""
        return {"model": self.resolve_source(models_dir), **self.resolved_engine_kwargs()}

    def engine_env(self) -> dict[str, str]:
        if self.accelerator != "cpu":
            return {}
        env = {"VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib)}
        if os.environ.get(FORCE_ENV):
            env[FORCE_ENV] = os.environ[FORCE_ENV]
        return env

    def to_llm_config(self, models_dir: Path, *, start_tries: int | None = None) -> LLMConfig:
        """``start_tries``: replicas that may fail to start before the deployment fails
        (``CONSTRUCTOR_RETRIES`` when None)."""
        from ray.serve.llm import LLMConfig

        bundle = {"CPU": self.cpus_per_engine}
        if self.accelerator == "gpu":
            bundle = {"CPU": 1, "GPU": 1}
        engine_kwargs = self.resolved_engine_kwargs()
        if (adapter := self._runtime_adapter()) is not None:
            # Preloaded as the engine starts (a front-end argument Ray Serve LLM passes on):
            # Ray's own dynamic LoRA loading takes only cloud storage URIs.
            engine_kwargs["lora_modules"] = [{"name": adapter.name, "path": str(adapter.folder())}]
        return LLMConfig(
            model_loading_config={
                "model_id": self.model_id,
                "model_source": self.resolve_source(models_dir),
            },
            engine_kwargs=engine_kwargs,
            accelerator_type=self.accelerator_type,
            # The default bundle asks for a GPU, and a CPU replica would wait for it forever.
            placement_group_config={"bundles": [bundle]},
            runtime_env={"env_vars": self.engine_env()},
            deployment_config={
                "max_ongoing_requests": self.max_ongoing_requests,
                # A version that is swapped out stops taking requests and finishes the
                # replies it has (a reply with its retries lasts well under a minute on CPU).
                "graceful_shutdown_timeout_s": GRACEFUL_SHUTDOWN_S,
                # A version that cannot start (a missing model, too little memory) fails its
                # deployment after a few tries, not Serve's default 20: a swap to it stops in
                # minutes and the old version keeps answering.
                "max_constructor_retry_count": start_tries or CONSTRUCTOR_RETRIES,
                "autoscaling_config": {
                    "min_replicas": self.autoscaling.min_replicas,
                    "max_replicas": self.autoscaling.max_replicas,
                    "target_ongoing_requests": self.autoscaling.target_ongoing_requests,
                },
            },
            experimental_configs={
                "stream_batching_interval_ms": self.stream_batching_interval_ms,
                # The replica chooses again on its own node's CPU (a cluster's nodes differ),
                # under the same setting (engine_env carries a forcing SALESBOOST_CPU_DTYPE).
                CPU_DTYPE_SETTING_KEY: self.dtype if self.accelerator == "cpu" else None,
            },
            log_engine_metrics=self.log_engine_metrics,
        )


def build_llm_app(
    settings: LLMDeploymentSettings, models_dir: Path, *, start_tries: int | None = None
) -> Application:
    from ray.serve.llm import build_llm_deployment

    from models import compat
    from models.llm_server import FirstTokenAtOnceLLMServer

    compat.install()  # on another release, fail here, before any replica starts
    return build_llm_deployment(
        settings.to_llm_config(models_dir, start_tries=start_tries),
        name_prefix=f"llm-{settings.model_id}:",
        deployment_cls=FirstTokenAtOnceLLMServer,
    )


def cpu_graph_compiled() -> bool:
    """Whether CPU engines compile the model's graph (``SALESBOOST_CPU_COMPILE_GRAPH``, true
    unless set false), read as the ``Settings`` field that writes it reads a boolean."""
    from pydantic import TypeAdapter, ValidationError

    value = os.environ.get(COMPILE_ENV, "true")
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        raise ValueError(f"{COMPILE_ENV}={value!r}: expected true or false") from None
