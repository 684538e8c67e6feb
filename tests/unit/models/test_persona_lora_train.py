"""The persona adapter's training step: packed conversations give every example exactly its
own loss, and the adapter stays within what vLLM's LoRA serves."""

from __future__ import annotations

import random

import pytest
import torch
from pydantic import ValidationError
from transformers import LlamaConfig, LlamaForCausalLM

from models.persona_lora.train import (
    VLLM_LORA_MODULES,
    TokenizedExample,
    TrainConfig,
    learning_rate,
    pack,
    sequence_loss_sum,
    singles,
)


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def conversation(seed: int, turns: int, speaker: str = "p") -> list[TokenizedExample]:
    """Examples of one conversation the way the builder makes them: each turn's tokens are
    the previous turn's, then the new line and the reply (its target)."""
    rng = random.Random(seed)
    ids = [rng.randrange(3, 64) for _ in range(12)]  # the card and the examples
    examples = []
    for turn in range(turns):
        ids = ids + [rng.randrange(3, 64) for _ in range(5)]  # the salesperson's line
        reply = [rng.randrange(3, 64) for _ in range(4)] + [2]  # the reply and <|im_end|>
        examples.append(
            TokenizedExample(f"c{seed}-{turn}", (f"c{seed}", speaker), ids + reply, len(reply))
        )
        ids = ids + reply
    return examples


def test_a_conversation_packs_into_one_sequence_with_every_loss_unchanged():
    model = tiny_llama()
    examples = conversation(1, 4)
    packed = pack(examples)
    assert len(packed) == 1 and len(packed[0].spans) == 4
    assert packed[0].target_tokens == sum(e.target_len for e in examples)
    with torch.no_grad():
        together = float(sequence_loss_sum(model, packed[0]))
        apart = sum(float(sequence_loss_sum(model, s)) for s in singles(examples))
    assert together == pytest.approx(apart, rel=1e-5)


def test_examples_that_are_not_prefixes_stay_apart():
    """A turn whose prompt moved (papers after the history, a cut history) and another
    speaker's turns (colleagues' lines are quoted, not assistant turns) are not merged."""
    examples = conversation(2, 3)
    moved = TokenizedExample("c2-moved", ("c2", "p"), [1, *examples[1].input_ids[1:]], 5)
    colleague = conversation(2, 2, speaker="q")
    sequences = pack([*examples, moved, *colleague])
    assert sorted(len(s.spans) for s in sequences) == [1, 2, 3]
    assert {tuple(sorted(s.example_ids)) for s in sequences} == {
        ("c2-0", "c2-1", "c2-2"),
        ("c2-moved",),
        ("c2-0", "c2-1"),
    }


def test_the_adapter_stays_within_what_vllm_serves():
    config = TrainConfig(out="/tmp/x")
    assert set(config.target_modules) == set(VLLM_LORA_MODULES)
    assert config.vllm_max_lora_rank() == 8
    assert TrainConfig(out="/tmp/x", rank=12).vllm_max_lora_rank() == 16
    with pytest.raises(ValidationError, match="vLLM serves LoRA on"):
        TrainConfig(out="/tmp/x", target_modules=["q_proj", "lm_head"])


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    config = TrainConfig(out="/tmp/x", learning_rate=1e-3, warmup_steps=4)
    rates = [learning_rate(config, step, 20) for step in range(20)]
    assert rates[0] == pytest.approx(2.5e-4) and rates[3] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[3:], rates[4:], strict=False))
    assert learning_rate(config, 20, 20) == pytest.approx(1e-4)


def test_the_written_adapter_loads_in_vllms_lora_loader(tmp_path):
    """What vLLM reads when it loads an adapter (its PEFT config check and weight loader,
    without an engine): the adapter file the training writes, in bf16, every projection of
    every layer, the base model named without this machine's path."""
    import json

    from peft import LoraConfig, get_peft_model
    from vllm.config.lora import LoRAConfig
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper

    from models.persona_lora.train import write_adapter

    config = TrainConfig(out=tmp_path / "adapter", rank=8)
    model = get_peft_model(
        tiny_llama(),
        LoraConfig(r=8, lora_alpha=16, target_modules=config.target_modules, task_type="CAUSAL_LM"),
    )
    written = write_adapter(model, config)
    assert written["dtype"] == "bfloat16" and written["vllm_max_lora_rank"] == 8
    assert sorted(p.name for p in config.out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    adapter_config = json.loads((config.out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "SmolLM2-135M-Instruct"

    helper = PEFTHelper.from_local_dir(str(config.out), 128)
    helper.validate_legal(LoRAConfig(max_lora_rank=config.vllm_max_lora_rank()))
    loaded = LoRAModel.from_local_checkpoint(
        str(config.out), set(VLLM_LORA_MODULES), helper, lora_model_id=1, device="cpu"
    )
    assert len(loaded.loras) == 2 * len(VLLM_LORA_MODULES)  # two layers
    assert all(lora.lora_a.dtype == torch.bfloat16 for lora in loaded.loras.values())
