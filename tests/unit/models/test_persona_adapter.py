"""A model config's persona adapter: what the engine is told, what the persona asks for, and
when it is another version."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.llm import LLMDeploymentSettings
from serve_apps.app import MODEL_CONFIGS_DIR
from serve_apps.model_lifecycle.changes import route_of


def _adapter(folder: Path, rank: int = 8, weights: bytes = b"weights") -> Path:
    """An adapter folder as peft writes it (the weights' bytes are all the config reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def _settings(adapter: dict | None) -> LLMDeploymentSettings:
    raw = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_cpu.yaml").model_dump()
    return LLMDeploymentSettings.model_validate({**raw, "persona_adapter": adapter})


def test_the_engine_preloads_the_adapter_and_the_persona_asks_for_it(tmp_path):
    folder = _adapter(tmp_path / "persona")
    settings = _settings({"name": "persona", "path": str(folder)})

    config = settings.to_llm_config(Path("/models"))
    assert config.engine_kwargs["enable_lora"] is True
    assert config.engine_kwargs["max_lora_rank"] == 8
    assert config.engine_kwargs["lora_modules"] == [{"name": "persona", "path": str(folder)}]
    # A direct engine (the benchmarks) gets the engine's part; its requests carry the adapter.
    direct = settings.vllm_engine_kwargs(Path("/models"))
    assert direct["enable_lora"] is True and "lora_modules" not in direct
    assert settings.persona_lora_request().lora_name == "persona"

    # One engine: the persona on its adapter, the judge on the base model.
    assert route_of("npc", settings).model_id == "persona"
    assert route_of("judge", settings).model_id == settings.model_id
    assert route_of("npc", settings).app_name == route_of("judge", settings).app_name


def test_without_an_adapter_nothing_changes():
    settings = _settings(None)
    assert "enable_lora" not in settings.to_llm_config(Path("/models")).engine_kwargs
    assert route_of("npc", settings).model_id == settings.model_id
    assert settings.persona_lora_request() is None


def test_retrained_weights_are_another_version(tmp_path):
    settings = _settings({"name": "persona", "path": str(_adapter(tmp_path / "a", weights=b"1"))})
    before = settings.config_hash()
    assert settings.version != _settings(None).version
    assert settings.config_hash() == before  # read again: the same weights, the same version
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"2")  # trained again in place
    assert settings.config_hash() != before


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ({"name": "persona", "path": "no/such/folder"}, "does not exist"),
        ({"name": "smollm2-135m-instruct", "path": "{folder}"}, "must differ from model_id"),
        ({"name": "persona", "path": "{folder}", "max_rank": 12}, "vLLM takes one of"),
        ({"name": "persona", "path": "{big}"}, "above max_rank"),
        ({"name": "a persona", "path": "{folder}"}, "pattern"),
    ],
)
def test_an_adapter_that_cannot_load_is_refused_with_the_field(tmp_path, adapter, message):
    folder, big = _adapter(tmp_path / "ok"), _adapter(tmp_path / "big", rank=16)
    adapter = {k: str(v).format(folder=folder, big=big) for k, v in adapter.items()}
    if "max_rank" in adapter:
        adapter["max_rank"] = int(adapter["max_rank"])
    with pytest.raises(ValidationError, match=message):
        _settings(adapter)


def test_a_merged_adapter_is_served_as_a_model_folder_of_its_own(tmp_path):
    folder = _adapter(tmp_path / "persona")
    settings = _settings({"name": "persona", "path": str(folder), "merge": True})
    source = Path(settings.resolve_source(Path("/models")))
    assert source.parent == Path("/models/merged")
    assert source.name.startswith("SmolLM2-135M-Instruct+persona-")
    # No LoRA at run time: the engine serves the merged model under the model's own name.
    assert "enable_lora" not in settings.to_llm_config(Path("/models")).engine_kwargs
    assert settings.persona_lora_request() is None
    assert route_of("npc", settings).model_id == settings.model_id
    # The merge is part of the version, beside the weights.
    assert settings.version != _settings({"name": "persona", "path": str(folder)}).version


def test_merging_writes_the_adapted_weights_once(tmp_path):
    """peft's merge on a tiny Llama: the merged model answers as base + adapter does."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from models.merged_adapter import is_merged, merge

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(base_dir)
    (base_dir / "tokenizer.json").write_text("{}")  # copied beside the merged weights
    lora = get_peft_model(
        LlamaForCausalLM.from_pretrained(base_dir),
        LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        ),
    )
    lora.save_pretrained(adapter_dir)

    out = merge(base_dir, adapter_dir, tmp_path / "merged", "d1", progress=lambda _: None)
    assert is_merged(out, "d1") and not is_merged(out, "d2")
    assert (out / "tokenizer.json").is_file()
    tokens = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        expected = PeftModel.from_pretrained(
            LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.bfloat16), adapter_dir
        )(tokens).logits
        merged = LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.bfloat16)(tokens).logits
    assert torch.allclose(merged.float(), expected.float(), atol=0.05)
    written = (out / "model.safetensors").stat().st_mtime_ns
    merge(base_dir, adapter_dir, tmp_path / "merged", "d1", progress=lambda _: None)
    assert (out / "model.safetensors").stat().st_mtime_ns == written  # done once
