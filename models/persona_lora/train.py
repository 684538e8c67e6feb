"""Train the persona's LoRA adapter of the bundled SmolLM2-135M-Instruct, on the CPU.

    python -m models.persona_lora.train --out DIR [--epochs 3 --rank 8 --max-steps N ...]

Each example is the persona's prompt exactly as production builds it (``npc_messages``,
rendered with the model's chat template and ``continue_final_message``, see
``models/persona_lora/data.py``) followed by the reply and ``<|im_end|>``; the loss is on
the reply's tokens and the end-of-turn token only (the prompt is context, not a target).
Learning the end-of-turn token is what teaches the model to stop after one to three
sentences instead of running into the token budget.

The adapter stays within what vLLM's LoRA serves (``vllm/lora/peft_helper.py``): plain LoRA
(no DoRA, no bias, no rsLoRA), rank at most ``max_lora_rank`` (16 by default in vLLM), on the
Llama projections vLLM packs (q/k/v into qkv_proj, gate/up into gate_up_proj, o_proj,
down_proj). It is written as ``adapter_config.json`` + ``adapter_model.safetensors`` (bf16 by
default: half the size, and the engine computes in bf16 on a CPU with bf16 instructions),
with ``training.json`` beside it: the loss curve, the data's hash, the hyperparameters and
the CPU it ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.catalog import SMOLLM2_135M_INSTRUCT
from models.cpu_dtype import cpu_dtype, detect_cpu
from models.persona_lora.data import (
    TRAIN_FILE,
    VALID_FILE,
    PersonaExample,
    file_sha256,
    load_examples,
    render_prompt,
    target_text,
)

REPO = Path(__file__).resolve().parents[2]
# The Llama projections vLLM applies LoRA to (LlamaForCausalLM.packed_modules_mapping plus
# o_proj and down_proj); an adapter with any other module fails to load there.
VLLM_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# vLLM's max_lora_rank takes one of these (vllm/config/lora.py MaxLoRARanks); an adapter of
# rank r is served by the smallest one that is at least r.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def default_model_dir() -> Path:
    """The prepared (dequantized) bundled model, where ``salesboost`` puts it."""
    models_dir = Path(os.environ.get("SALESBOOST_MODELS_DIR", REPO / ".data" / "models"))
    return SMOLLM2_135M_INSTRUCT.folder(models_dir)


class TrainConfig(BaseModel):
    """Everything that decides the adapter; written into training.json."""

    model_config = ConfigDict(extra="forbid")

    model_dir: Path = Field(default_factory=default_model_dir)
    train_file: Path = TRAIN_FILE
    valid_file: Path = VALID_FILE
    out: Path
    epochs: float = Field(3, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    max_minutes: float | None = Field(None, gt=0, description="Stop after this much training.")
    rank: int = Field(8, ge=1, le=64)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(VLLM_LORA_MODULES))
    learning_rate: float = Field(3e-4, gt=0)
    warmup_steps: int = Field(5, ge=0)
    sequences_per_step: int = Field(
        2, ge=1, description="Sequences per optimizer step (a packed one holds ~5 examples)."
    )
    pack: bool = Field(True, description="Earlier turns as spans of their conversation's last.")
    seed: int = 0
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    # One core is left to the rest of the machine: on the 2-core box the serving stack shares,
    # a second torch thread made a step no faster when idle (forward of 624 tokens 2.4 s
    # against 2.5 s) and several times slower when vLLM was busy on the other core.
    threads: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=1)
    eval_every: int = Field(
        0, ge=0, description="Validation loss every N steps (0: at start and end)."
    )
    eval_limit: int | None = Field(None, ge=1, description="Validation examples used (all: None).")
    save_dtype: Literal["bfloat16", "float32"] = "bfloat16"

    @field_validator("target_modules")
    @classmethod
    def _served_by_vllm(cls, modules: list[str]) -> list[str]:
        unknown = sorted(set(modules) - set(VLLM_LORA_MODULES))
        if unknown or not modules:
            raise ValueError(
                f"target modules {unknown or modules}: vLLM serves LoRA on {VLLM_LORA_MODULES}"
            )
        return modules

    def vllm_max_lora_rank(self) -> int:
        """The engine's ``max_lora_rank`` this adapter needs."""
        return next(r for r in VLLM_MAX_LORA_RANKS if r >= self.rank)


@dataclass(frozen=True)
class TokenizedExample:
    id: str
    group: tuple[str, str]  # (conversation, speaker): the examples that may share a sequence
    input_ids: list[int]  # prompt, then the reply and the end-of-turn token
    target_len: int  # the last ``target_len`` tokens are the ones the loss is on


def tokenize(tokenizer: Any, example: PersonaExample) -> TokenizedExample:
    """The prompt and the target tokenized apart, as the engine sees them: it tokenizes the
    rendered prompt alone and generates the reply's tokens after it."""
    prompt = tokenizer(render_prompt(tokenizer, example), add_special_tokens=False).input_ids
    target = tokenizer(target_text(example), add_special_tokens=False).input_ids
    return TokenizedExample(
        id=example.id,
        group=(example.conversation, example.speaker),
        input_ids=[*prompt, *target, tokenizer.eos_token_id],
        target_len=len(target) + 1,
    )


@dataclass(frozen=True)
class TrainSequence:
    """One forward pass: token ids and the spans ``[start, end)`` the loss is on."""

    input_ids: list[int]
    spans: tuple[tuple[int, int], ...]
    example_ids: tuple[str, ...]

    @property
    def target_tokens(self) -> int:
        return sum(end - start for start, end in self.spans)


def pack(examples: Sequence[TokenizedExample]) -> list[TrainSequence]:
    """Examples whose tokens are exactly a prefix of a longer example's become spans of that
    one sequence. The earlier turns of a conversation are (same speaker, nothing in the
    prompt moved): the last turn's prompt holds every earlier prompt and reply, token for
    token. With causal attention each span's loss is then exactly its own example's, for a
    quarter of the tokens. An example that is not a prefix (the persona's papers sit after
    the history, a long history is cut) stays a sequence of its own; the check is on the
    tokens, so nothing is merged on trust."""
    groups: dict[tuple[str, str], list[TokenizedExample]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    sequences: list[TrainSequence] = []
    for members in groups.values():
        chains: list[tuple[list[int], list[TokenizedExample]]] = []
        for example in sorted(members, key=lambda e: len(e.input_ids), reverse=True):
            size = len(example.input_ids)
            for ids, held in chains:
                if ids[:size] == example.input_ids:
                    held.append(example)
                    break
            else:
                chains.append((example.input_ids, [example]))
        for ids, held in chains:
            held.sort(key=lambda e: len(e.input_ids))
            sequences.append(
                TrainSequence(
                    input_ids=ids,
                    spans=tuple((len(e.input_ids) - e.target_len, len(e.input_ids)) for e in held),
                    example_ids=tuple(e.id for e in held),
                )
            )
    return sequences


def singles(examples: Sequence[TokenizedExample]) -> list[TrainSequence]:
    """Every example as its own sequence (``--no-pack``)."""
    return [
        TrainSequence(e.input_ids, ((len(e.input_ids) - e.target_len, len(e.input_ids)),), (e.id,))
        for e in examples
    ]


def sequence_loss_sum(model: Any, sequence: TrainSequence) -> Any:
    """The summed cross-entropy of the target tokens. The 49k-word head runs only on the
    positions that predict a target token: over the whole prompt it would be a quarter of
    the forward pass for nothing."""
    import torch
    import torch.nn.functional as F

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    input_ids = torch.tensor([sequence.input_ids])
    hidden = causal_lm.model(input_ids=input_ids).last_hidden_state[0]
    # position i predicts token i + 1
    positions = torch.cat([torch.arange(start - 1, end - 1) for start, end in sequence.spans])
    labels = torch.cat([input_ids[0, start:end] for start, end in sequence.spans])
    logits = causal_lm.lm_head(hidden[positions]).float()
    return F.cross_entropy(logits, labels, reduction="sum")


def evaluate(model: Any, sequences: Sequence[TrainSequence], autocast: Any) -> float:
    """Mean loss per target token."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad(), autocast():
        for sequence in sequences:
            total += float(sequence_loss_sum(model, sequence))
            tokens += sequence.target_tokens
    model.train()
    return total / max(tokens, 1)


def batches(
    sequences: Sequence[TrainSequence], size: int, rng: random.Random
) -> Iterator[list[TrainSequence]]:
    order = list(sequences)
    rng.shuffle(order)
    for start in range(0, len(order), size):
        yield order[start : start + size]


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(total_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _file_sha256_large(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def write_adapter(model: Any, config: TrainConfig) -> dict[str, Any]:
    """adapter_config.json + adapter_model.safetensors in ``config.out``, in ``save_dtype``,
    with the base model named by its bundled name (not this machine's path)."""
    import torch
    from safetensors.torch import load_file, save_file

    config.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(config.out))
    weights_path = config.out / "adapter_model.safetensors"
    dtype = torch.bfloat16 if config.save_dtype == "bfloat16" else torch.float32
    tensors = {name: t.to(dtype).contiguous() for name, t in load_file(weights_path).items()}
    save_file(tensors, weights_path, metadata={"format": "pt"})
    adapter_config_path = config.out / "adapter_config.json"
    adapter_config = json.loads(adapter_config_path.read_text())
    adapter_config["base_model_name_or_path"] = SMOLLM2_135M_INSTRUCT.name
    adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
    adapter_config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    (config.out / "README.md").unlink(missing_ok=True)  # peft's empty model card template
    return {
        "files": ["adapter_config.json", "adapter_model.safetensors"],
        "bytes": weights_path.stat().st_size,
        "dtype": config.save_dtype,
        "tensors": len(tensors),
        "parameters": sum(t.numel() for t in tensors.values()),
        "vllm_max_lora_rank": config.vllm_max_lora_rank(),
    }


def train(config: TrainConfig) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    choice = cpu_dtype(config.dtype)
    bf16 = choice.dtype == "bfloat16"

    tokenizer = AutoTokenizer.from_pretrained(str(config.model_dir))
    train_examples = [tokenize(tokenizer, row) for row in load_examples(config.train_file)]
    valid_examples = [tokenize(tokenizer, row) for row in load_examples(config.valid_file)]
    valid_examples = valid_examples[: config.eval_limit]
    group = pack if config.pack else singles
    train_set, valid_set = group(train_examples), group(valid_examples)

    # The frozen base in the compute dtype; the adapter's weights (and Adam's state) in
    # float32, with bf16 autocast for the matmuls where the CPU computes bf16 natively.
    base = AutoModelForCausalLM.from_pretrained(
        str(config.model_dir), dtype=torch.bfloat16 if bf16 else torch.float32
    )
    model: Any = get_peft_model(
        base,
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=config.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    trainable = [p for p in model.parameters() if p.requires_grad]

    def autocast() -> Any:
        if bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    steps_per_epoch = math.ceil(len(train_set) / config.sequences_per_step)
    total_steps = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)

    print(
        f"{len(train_examples)} train examples in {len(train_set)} sequences, "
        f"{len(valid_examples)} valid in {len(valid_set)}; {total_steps} steps of "
        f"{config.sequences_per_step} sequences, rank {config.rank}, "
        f"{sum(p.numel() for p in trainable)} trainable parameters, {choice.describe()}, "
        f"{config.threads} threads",
        flush=True,
    )
    curve: list[dict[str, Any]] = []
    valid_curve = [{"step": 0, "loss": evaluate(model, valid_set, autocast)}]
    print(f"step 0 valid loss {valid_curve[-1]['loss']:.4f}", flush=True)

    rng = random.Random(config.seed)
    step, seen = 0, 0
    started = time.perf_counter()
    stopped_by = "epochs"
    model.train()
    while step < total_steps:
        for batch in batches(train_set, config.sequences_per_step, rng):
            if step >= total_steps:
                break
            step_started = time.perf_counter()
            tokens = sum(sequence.target_tokens for sequence in batch)
            loss_total = 0.0
            for sequence in batch:
                with autocast():
                    loss = sequence_loss_sum(model, sequence) / tokens
                loss.backward()
                loss_total += float(loss.detach())
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, 1.0))
            lr = learning_rate(config, step, total_steps)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            examples = sum(len(sequence.spans) for sequence in batch)
            seen += examples
            seconds = time.perf_counter() - step_started
            curve.append(
                {
                    "step": step,
                    "epoch": round(seen / len(train_examples), 3),
                    "loss": round(loss_total, 5),
                    "lr": lr,
                    "grad_norm": round(grad_norm, 4),
                    "sequences": len(batch),
                    "examples": examples,
                    "tokens": sum(len(sequence.input_ids) for sequence in batch),
                    "target_tokens": tokens,
                    "seconds": round(seconds, 3),
                }
            )
            print(
                f"step {step}/{total_steps} loss {loss_total:.4f} lr {lr:.2e} {seconds:.1f}s "
                f"({examples} examples, {curve[-1]['tokens']} tokens)",
                flush=True,
            )
            if config.eval_every and step % config.eval_every == 0 and step < total_steps:
                valid_curve.append({"step": step, "loss": evaluate(model, valid_set, autocast)})
                print(f"step {step} valid loss {valid_curve[-1]['loss']:.4f}", flush=True)
            elapsed_min = (time.perf_counter() - started) / 60
            if config.max_minutes is not None and elapsed_min >= config.max_minutes:
                stopped_by = "max_minutes"
                total_steps = step
                break
    if config.max_steps is not None and step == config.max_steps and stopped_by == "epochs":
        stopped_by = "max_steps"
    train_seconds = time.perf_counter() - started
    valid_curve.append({"step": step, "loss": evaluate(model, valid_set, autocast)})
    print(f"step {step} valid loss {valid_curve[-1]['loss']:.4f}", flush=True)

    adapter = write_adapter(model, config)
    step_tokens = sum(c["tokens"] for c in curve)
    report = {
        "config": json.loads(config.model_dump_json()),
        "data": {
            "train_file": _shown(config.train_file),
            "train_sha256": file_sha256(config.train_file),
            "train_examples": len(train_examples),
            "train_sequences": len(train_set),
            "valid_file": _shown(config.valid_file),
            "valid_sha256": file_sha256(config.valid_file),
            "valid_examples_used": len(valid_examples),
            "example_tokens_mean": round(
                sum(len(e.input_ids) for e in train_examples) / len(train_examples), 1
            ),
            "target_tokens_mean": round(
                sum(e.target_len for e in train_examples) / len(train_examples), 1
            ),
            "sequence_tokens_mean": round(
                sum(len(s.input_ids) for s in train_set) / len(train_set), 1
            ),
            "tokens_per_epoch": sum(len(s.input_ids) for s in train_set),
            "tokens_max": max(len(s.input_ids) for s in train_set),
        },
        "base_model": {
            "name": SMOLLM2_135M_INSTRUCT.name,
            "safetensors_sha256": _file_sha256_large(config.model_dir / "model.safetensors"),
        },
        "cpu": {**detect_cpu().as_meta(), "dtype": choice.dtype, "reason": choice.reason},
        "versions": _versions(),
        "result": {
            "steps": step,
            "stopped_by": stopped_by,
            "examples_seen": seen,
            "epochs_seen": round(seen / len(train_examples), 3),
            "train_seconds": round(train_seconds, 1),
            "seconds_per_step": round(train_seconds / max(step, 1), 2),
            "seconds_per_example": round(train_seconds / max(seen, 1), 3),
            "seconds_per_1k_tokens": round(1000 * train_seconds / max(step_tokens, 1), 3),
            "first_loss": curve[0]["loss"] if curve else None,
            "last_loss": curve[-1]["loss"] if curve else None,
        },
        "loss_curve": curve,
        "valid_curve": valid_curve,
        "adapter": adapter,
    }
    (config.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"adapter and training.json in {config.out}", flush=True)
    return report


def _shown(path: Path) -> str:
    """A path as training.json records it: relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the adapter is written")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--train-file", type=Path)
    parser.add_argument("--valid-file", type=Path)
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--rank", type=int)
    parser.add_argument("--alpha", type=int)
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--target-modules", nargs="+")
    parser.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate")
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--sequences-per-step", type=int)
    parser.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--threads", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--eval-limit", type=int)
    parser.add_argument("--save-dtype", choices=["bfloat16", "float32"])
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return TrainConfig(**given)


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
