"""Secrets from the environment or HashiCorp Vault, each read written to the audit log.

The environment wins; what it lacks is read once from Vault's KV v2 store (one request), and
every secret taken from either source is logged by name and source (never its value) on
the ``salesboost.audit.secrets`` logger. Production then refuses to start when a secret is
still missing or is a placeholder (``Settings.check_production_ready``).
"""

from __future__ import annotations

import logging
from typing import Any, get_args

from pydantic import SecretStr

from serve_apps.settings import Settings

audit = logging.getLogger("salesboost.audit.secrets")

# The settings that are secrets: read through here, never printed.
SECRET_FIELDS = (
    "secret_key",
    "database_url",
    "migration_database_url",
    "redis_url",
    "qdrant_api_key",
)


class SecretsUnavailableError(RuntimeError):
    """Vault was configured but could not be read; the message says where and why."""


def read_vault(settings: Settings, client: Any | None = None) -> dict[str, str]:
    """The key/value pairs stored at the configured KV v2 path."""
    import hvac

    token = settings.vault_token.get_secret_value() if settings.vault_token else None
    client = client or hvac.Client(url=settings.vault_addr, token=token, timeout=10)
    try:
        response = client.secrets.kv.v2.read_secret_version(
            path=settings.vault_path,
            mount_point=settings.vault_mount,
            raise_on_deleted_version=True,
        )
    except Exception as exc:
        raise SecretsUnavailableError(
            f"could not read {settings.vault_mount}/{settings.vault_path} from Vault at "
            f"{settings.vault_addr}: {type(exc).__name__}: {exc}"
        ) from exc
    return {str(k): str(v) for k, v in (response.get("data", {}).get("data") or {}).items()}


def resolve_secrets(settings: Settings) -> Settings:
    """These settings with every secret filled in from its source, each read audited."""
    from_vault: dict[str, str] = {}
    if settings.vault_addr:
        from_vault = read_vault(settings)
    updates: dict[str, str | SecretStr] = {}
    for name in SECRET_FIELDS:
        if getattr(settings, name):
            audit.info("secret %s read from the environment", name)
        elif name in from_vault:
            # model_copy does not validate: a SecretStr field gets its type here.
            holds_secret_str = SecretStr in get_args(Settings.model_fields[name].annotation)
            updates[name] = SecretStr(from_vault[name]) if holds_secret_str else from_vault[name]
            audit.info(
                "secret %s read from vault %s/%s", name, settings.vault_mount, settings.vault_path
            )
    return settings.model_copy(update=updates) if updates else settings
