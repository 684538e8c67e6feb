"""The third-party internals the product leans on still exist in the pinned releases.

Each is used on purpose and in one place: Ray's cached auth config and token
(``cluster/local.py``). An upgrade that renames one fails here, not in a conversation. (Ray
Serve LLM and vLLM: tests/unit/models/test_compat.py; qdrant-client's local mode:
tests/unit/retrieval/test_compat.py.)
"""

import inspect


def test_the_auth_refresh_that_the_local_cluster_calls_exists():
    """cluster/local.py refreshes Ray's cached config and token after naming a new
    cluster's token, as Ray's own _enable_token_auth does."""
    from ray._private.authentication import authentication_token_setup
    from ray._raylet import AuthenticationTokenLoader, Config

    assert callable(Config.initialize)
    assert callable(AuthenticationTokenLoader.instance().reset_cache)
    assert 'Config.initialize("")' in inspect.getsource(authentication_token_setup)
