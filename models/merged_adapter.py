"""A LoRA adapter merged into its model's weights: a model folder of its own.

vLLM's CPU backend turns ``torch.compile`` off when LoRA is on and runs its LoRA kernels per
token, which took the persona's first token from 575 to 1,044 ms (docs/quality.md). Merged,
the engine serves a plain model (``W + B·A·scale`` in each adapted projection) and keeps its
compiled graph; the engine then serves only that model, so a judge on the same engine reads
the merged weights too.

The folder's name holds the adapter's digest, so a retrained adapter is merged again and an
unchanged one once: the local stack prepares it before it starts, and a replica whose node
lacks it (a cluster's worker) merges it as it starts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = "salesboost-merged.json"
Progress = Callable[[str], None]


def merged_folder(models_dir: Path, base: Path, adapter_name: str, digest: str) -> Path:
    return models_dir / "merged" / f"{base.name}+{adapter_name}-{digest}"


def is_merged(folder: Path, digest: str) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("adapter_digest") == digest
    except (OSError, ValueError):
        return False


def merge(base: Path, adapter: Path, out: Path, digest: str, progress: Progress = print) -> Path:
    """Write ``base`` with ``adapter`` merged into ``out`` (idempotent, atomic)."""
    if is_merged(out, digest):
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    progress(f"merging the adapter {adapter} into {base.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".merge-") as tmp:
        staged = Path(tmp) / "model"
        model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.bfloat16)
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        merged.save_pretrained(staged, safe_serialization=True)
        # The tokenizer and chat template are the base model's, file for file.
        for path in base.iterdir():
            if (
                path.is_file()
                and not path.name.endswith(".safetensors")
                and path.name
                not in (
                    "config.json",
                    "generation_config.json",
                )
            ):
                shutil.copy2(path, staged / path.name)
        (staged / MARKER).write_text(
            json.dumps({"base": str(base), "adapter": str(adapter), "adapter_digest": digest})
        )
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return out
