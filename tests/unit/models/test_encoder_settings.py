"""Embedder and reranker configs: what validates, and what makes another version."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.encoders import EncoderDeploymentSettings
from retrieval.embedder import EMBEDDING_MODELS, Embedder
from serve_apps.app import MODEL_CONFIGS_DIR


def embedder(**fields) -> EncoderDeploymentSettings:
    return EncoderDeploymentSettings(kind="embedder", **fields)


def test_an_embedder_version_is_what_shapes_its_vectors():
    bundled = embedder(model="all-MiniLM-L6-v2")
    assert bundled.version == EMBEDDING_MODELS["all-MiniLM-L6-v2"].version
    assert bundled.version.startswith("all-MiniLM-L6-v2@")
    # Another longest input, pooling or query instruction: another version.
    for other in ({"max_length": 128}, {"pooling": "cls"}, {"query_instruction": "query: "}):
        assert embedder(model="all-MiniLM-L6-v2", **other).version != bundled.version
    # How it runs is not: batch size, and the registry's own values written out.
    assert embedder(model="all-MiniLM-L6-v2", batch_size=8).version == bundled.version
    assert embedder(model="all-MiniLM-L6-v2", dim=384, max_length=256).version == bundled.version
    candidate = EncoderDeploymentSettings.from_file(
        MODEL_CONFIGS_DIR / "embedder_cpu_candidate.yaml"
    )
    assert candidate.version != bundled.version and candidate.embedding_spec().max_length == 128


def test_an_embedder_records_what_loads_it_again():
    record = embedder(model="all-MiniLM-L6-v2", max_length=128, batch_size=8).embedder_record()
    assert record.dim == 384
    assert record.settings == {
        "kind": "embedder",
        "model": "all-MiniLM-L6-v2",
        "batch_size": 8,
        "max_length": 128,
    }
    again = EncoderDeploymentSettings.model_validate(record.settings)
    assert again.version == record.version
    # The in-process embedder records the same version for the same model.
    assert Embedder().record == embedder(model="all-MiniLM-L6-v2").embedder_record()


def test_a_model_folder_is_named_by_its_absolute_path_with_its_shape(tmp_path):
    folder = embedder(model=str(tmp_path), dim=768, pooling="cls")
    spec = folder.embedding_spec()
    assert (spec.name, spec.source, spec.dim, spec.max_length) == (
        tmp_path.name,
        str(tmp_path),
        768,
        512,
    )
    assert folder.version.startswith(f"{tmp_path.name}@")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "all-MiniLM-L6-v2", "dim": 768}, "gives 384-dimensional vectors"),
        ({"model": "e5-small-v2"}, "nor the absolute path of a model folder"),
        ({"model": "models/e5"}, "nor the absolute path of a model folder"),
        ({"model": "/models/e5", "dim": 384}, "pooling: required for a model folder"),
        ({"model": "all-MiniLM-L6-v2", "use_fp16": True}, "use_fp16=true needs accelerator"),
        ({"model": "all-MiniLM-L6-v2", "pooling": "max"}, "pooling"),
        ({"model": "all-MiniLM-L6-v2", "normalize": False}, "normalize"),
    ],
)
def test_an_embedder_config_that_describes_no_model_is_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        embedder(**fields)


def test_reranker_configs():
    late = EncoderDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "reranker_cpu.yaml")
    assert late.version == "late-interaction" and not late.is_cross_encoder
    gpu = EncoderDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "reranker_gpu.yaml")
    assert gpu.is_cross_encoder and gpu.reranker_max_length == 512
    assert gpu.version.startswith("bge-reranker-v2-m3@")
    longer = gpu.model_copy(update={"max_length": 1024})
    assert longer.version != gpu.version
    with pytest.raises(ValidationError, match="an embedder's settings"):
        EncoderDeploymentSettings(kind="reranker", model="BAAI/bge-reranker-v2-m3", dim=1024)
    with pytest.raises(ValidationError, match="late-interaction has no model"):
        EncoderDeploymentSettings(kind="reranker", model="late-interaction", max_length=512)
