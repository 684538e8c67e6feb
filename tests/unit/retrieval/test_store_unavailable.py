"""A Qdrant server that is down gives a clear error after a bounded number of retries."""

import socket
import time

import pytest

from retrieval.store import KnowledgeStore, StoreUnavailableError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def test_a_server_that_is_down_is_reported_with_where_and_how_often():
    url = f"http://127.0.0.1:{closed_port()}"
    store = KnowledgeStore(url=url, retries=3, timeout_s=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        store.check_health()
    assert url in str(raised.value) and "after 3 tries" in str(raised.value)
    assert time.monotonic() - started < 10
