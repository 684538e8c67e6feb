"""The third-party internals the product leans on still exist in the pinned releases.

Each is used on purpose and in one place: Ray's cached auth config and token
(``cluster/local.py``), Ray Serve LLM's private stream batching and engine client, and that
client's tokenizer (``models/llm_server.py``). An upgrade that renames one fails here, not in
a conversation. (qdrant-client's local mode: tests/unit/retrieval/test_compat.py.)
"""

import inspect


def test_ray_serve_llm_private_methods_that_the_llm_server_overrides_exist():
    from ray.serve.llm.deployment import LLMServer

    for name in ("_batch_output_stream", "_get_batch_interval_ms", "start", "tokenize"):
        assert callable(getattr(LLMServer, name, None)), name
    parameters = inspect.signature(LLMServer._batch_output_stream).parameters
    assert list(parameters) == ["self", "generator"]
    assert "self._llm_config = llm_config" in inspect.getsource(LLMServer._init_shared)


def test_the_vllm_engine_keeps_its_client_where_engine_info_reads_it():
    from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine

    assert "self._engine_client = " in inspect.getsource(VLLMEngine)


def test_the_vllm_engine_client_hands_out_its_tokenizer():
    from vllm.v1.engine.async_llm import AsyncLLM

    assert callable(AsyncLLM.get_tokenizer)
    assert not inspect.iscoroutinefunction(AsyncLLM.get_tokenizer)  # called without await


def test_the_auth_refresh_that_the_local_cluster_calls_exists():
    """cluster/local.py refreshes Ray's cached config and token after naming a new
    cluster's token, as Ray's own _enable_token_auth does."""
    from ray._private.authentication import authentication_token_setup
    from ray._raylet import AuthenticationTokenLoader, Config

    assert callable(Config.initialize)
    assert callable(AuthenticationTokenLoader.instance().reset_cache)
    assert 'Config.initialize("")' in inspect.getsource(authentication_token_setup)
