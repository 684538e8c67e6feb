"""Secrets from the environment or Vault: the real hvac client against a stub Vault server
(an HTTP server in the test that answers the KV v2 read, named as such)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from serve_apps.secret_source import SecretsUnavailableError, resolve_secrets
from serve_apps.settings import Settings

TOKEN = "s.test-token"
GOOD_KEY = "k" * 48


class StubVaultServer:
    """Answers ``GET /v1/<mount>/data/<path>`` like Vault's KV v2, for one token."""

    def __init__(self, secrets: dict[str, str]) -> None:
        stored = secrets
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                requests.append(self.path)
                if self.headers.get("X-Vault-Token") != TOKEN:
                    self._answer(403, {"errors": ["permission denied"]})
                elif self.path.startswith("/v1/secret/data/salesboost"):
                    self._answer(200, {"data": {"data": stored, "metadata": {"version": 1}}})
                else:
                    self._answer(404, {"errors": []})

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture
def vault():
    server = StubVaultServer(
        {"secret_key": GOOD_KEY, "database_url": "postgresql+psycopg://app:pw@db/salesboost"}
    )
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch):
    """The integration stack of the same test session exports its secrets; not here."""
    for name in (
        "SALESBOOST_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "SALESBOOST_MIGRATION_DATABASE_URL",
        "SALESBOOST_QDRANT_API_KEY",
        "SALESBOOST_MODE",
        "SALESBOOST_DATABASE_URL",
        "SALESBOOST_REDIS_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_secrets_missing_from_the_environment_come_from_vault_and_each_read_is_audited(
    vault, caplog
):
    settings = _settings(vault_addr=vault.url, vault_token=TOKEN, redis_url="redis://r:6379")
    with caplog.at_level(logging.INFO, logger="salesboost.audit.secrets"):
        resolved = resolve_secrets(settings)
    assert resolved.secret_key.get_secret_value() == GOOD_KEY
    assert resolved.database_url.endswith("@db/salesboost")
    assert len(vault.requests) == 1  # one read for all of them
    lines = [r.getMessage() for r in caplog.records]
    assert "secret secret_key read from vault secret/salesboost" in lines
    assert "secret redis_url read from the environment" in lines
    assert not any(GOOD_KEY in line or "pw@" in line for line in lines)  # names, never values


def test_the_environment_wins_over_vault(vault):
    settings = _settings(vault_addr=vault.url, vault_token=TOKEN, secret_key="e" * 40)
    assert resolve_secrets(settings).secret_key.get_secret_value() == "e" * 40


def test_an_unreadable_vault_is_a_clear_error(vault):
    settings = _settings(vault_addr=vault.url, vault_token="wrong")
    with pytest.raises(SecretsUnavailableError, match="secret/salesboost.*Vault at http"):
        resolve_secrets(settings)


def test_production_refuses_missing_or_placeholder_secrets(vault):
    placeholder = _settings(mode="production", secret_key="change-me", redis_url="redis://r")
    with pytest.raises(ValueError, match="SALESBOOST_SECRET_KEY is a placeholder"):
        resolve_secrets(placeholder).check_production_ready()
    from_vault = _settings(
        mode="production", vault_addr=vault.url, vault_token=TOKEN, redis_url="redis://r"
    )
    resolve_secrets(from_vault).check_production_ready()  # every secret found: it may start
