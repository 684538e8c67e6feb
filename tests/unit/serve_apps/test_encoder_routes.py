"""The encoder routes' validation: a config that does not validate is a 422 naming its field,
before anything reaches the knowledge service."""

from __future__ import annotations

import pytest

from serve_apps.gateway.errors import APIError
from serve_apps.gateway.routes.encoders import _encoder_settings


@pytest.mark.parametrize(
    ("config", "kind", "message"),
    [
        (
            {"model": "all-MiniLM-L6-v2", "dim": 768},
            "embedder",
            "body.config: Value error, dim=768",
        ),
        ({"model": "all-MiniLM-L6-v2", "normalize": False}, "embedder", "body.config.normalize"),
        ({"model": "all-MiniLM-L6-v2", "batch_size": 0}, "embedder", "body.config.batch_size"),
        ({"kind": "reranker", "model": "late-interaction"}, "embedder", "reranker; this swaps"),
        ({"model": "BAAI/bge-reranker-v2-m3", "pooling": "cls"}, "reranker", "embedder's"),
        ({f"k{n}": n for n in range(65)}, "embedder", "not an encoder config"),
    ],
)
def test_a_bad_config_is_a_422_naming_its_field(config, kind, message):
    with pytest.raises(APIError) as refused:
        _encoder_settings(config, kind)
    assert refused.value.status == 422 and message in refused.value.message


def test_a_good_config_goes_on_as_its_fields():
    assert _encoder_settings({"model": "all-MiniLM-L6-v2", "max_length": 128}, "embedder") == {
        "kind": "embedder",
        "model": "all-MiniLM-L6-v2",
        "max_length": 128,
    }
    assert _encoder_settings({"model": "late-interaction"}, "reranker") == {
        "kind": "reranker",
        "model": "late-interaction",
    }
