"""models.compat: the Ray Serve LLM and vLLM internals the LLM server uses still exist in the
pinned releases with the signatures it uses, and ``install()`` refuses another release."""

from __future__ import annotations

import inspect

import pytest
from ray.serve.llm.deployment import LLMServer

from models import compat
from models.llm_server import FirstTokenAtOnceLLMServer


def test_the_running_releases_are_the_pinned_ones():
    assert compat.running_versions() == compat.PINNED


def _own_private_methods(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if name.startswith("_") and not name.startswith("__") and callable(value)
    ]


def test_every_private_method_overridden_exists_upstream_with_the_same_parameters():
    """An upstream rename would leave an override that is never called."""
    overridden = _own_private_methods(compat.LLMServerCompat)
    assert overridden == ["_batch_output_stream"]
    for name in overridden:
        upstream = getattr(LLMServer, name, None)
        assert callable(upstream), name
        ours = inspect.signature(getattr(compat.LLMServerCompat, name)).parameters
        assert ours.keys() == inspect.signature(upstream).parameters.keys(), name


def test_the_llm_server_overrides_no_private_method_itself():
    """It goes through models.compat, which the test above keeps honest."""
    assert _own_private_methods(FirstTokenAtOnceLLMServer) == []


def test_the_private_members_read_exist_as_used():
    assert list(inspect.signature(LLMServer._batch_output_stream).parameters) == [
        "self",
        "generator",
    ]
    interval = inspect.signature(LLMServer._get_batch_interval_ms).parameters
    assert list(interval) == ["self", "stream"]
    assert interval["stream"].default is True
    assert "self._llm_config = llm_config" in inspect.getsource(LLMServer._init_shared)
    assert inspect.iscoroutinefunction(LLMServer.start)


def test_the_vllm_engine_keeps_its_client_where_engine_client_reads_it():
    from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine

    assert "self._engine_client = " in inspect.getsource(VLLMEngine)


def test_the_vllm_engine_client_hands_out_its_tokenizer_and_model_config():
    from vllm.v1.engine.async_llm import AsyncLLM

    assert callable(AsyncLLM.get_tokenizer)
    assert not inspect.iscoroutinefunction(AsyncLLM.get_tokenizer)  # called without await
    assert list(inspect.signature(AsyncLLM.get_tokenizer).parameters) == ["self"]
    assert "self.model_config = " in inspect.getsource(AsyncLLM.__init__)


@pytest.fixture
def not_installed(monkeypatch):
    monkeypatch.setattr(compat, "_installed", False)


def test_install_is_idempotent(not_installed, monkeypatch):
    compat.install()
    monkeypatch.setattr(compat, "running_versions", lambda: pytest.fail("checked twice"))
    compat.install()


def test_install_refuses_another_release_naming_the_patch_and_both_versions(
    not_installed, monkeypatch
):
    monkeypatch.setattr(compat, "running_versions", lambda: {"ray": "2.61.0", "vllm": "0.32.0"})
    with pytest.raises(compat.IncompatibleReleaseError) as raised:
        compat.install()
    message = str(raised.value)
    assert "models.compat" in message
    assert "ray 2.60.0" in message and "ray 2.61.0" in message
    assert "vllm" not in message.split("found")[1]
    assert compat._installed is False
