"""Adding and retiring a model version's Serve application, the way ``serve deploy`` does.

Serve keeps the config it was last given (the applications, each with its arguments and
options); a version is one more application in it. Applying the config again with an
application added starts only that one: the product's application keeps its arguments, so
its code version and its replicas are untouched (Serve restarts an application's
deployments only when its import path, runtime env or arguments change). Applying it with
an application left out deletes that one, and Serve lets its replicas finish the requests
they hold (``graceful_shutdown_timeout_s`` of the LLM deployment).

The controller is reached as the named actor Serve itself uses, with ``await``: the public
client's calls block on ``ray.get``, which would stall this replica's event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

MODEL_APP_IMPORT_PATH = "serve_apps.app:build_model_app"
PRODUCT_APP = "salesboost"
# A candidate whose replica fails to start fails its change at once: a model that is not
# there or does not fit fails the same way again (each try costs a replica and an engine
# start, most of a minute on CPU), and the old version keeps answering meanwhile.
CANDIDATE_START_TRIES = 1


class ServeApplicationError(RuntimeError):
    """An application failed to deploy or did not come up in time (Serve's message)."""


def model_application(settings_json: dict[str, Any], app_name: str, runtime_env: dict) -> dict:
    """The config entry of one model version's application: not exposed over HTTP, the
    model's settings as its arguments (validated again by the builder)."""
    return {
        "name": app_name,
        "route_prefix": None,
        "import_path": MODEL_APP_IMPORT_PATH,
        "args": {"settings": settings_json, "start_tries": CANDIDATE_START_TRIES},
        "runtime_env": runtime_env,
    }


class ServeControl:
    def __init__(self) -> None:
        import ray
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        self._controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)

    async def _details(self) -> Any:
        from ray.serve.schema import ServeInstanceDetails

        raw = await self._controller.get_serve_instance_details.remote()
        return ServeInstanceDetails(**raw)

    async def applications(self) -> dict[str, dict[str, Any]]:
        """The deployed config of each application, as Serve keeps it."""
        details = await self._details()
        return {
            name: app.deployed_app_config.model_dump(exclude_unset=True)
            for name, app in details.applications.items()
            if app.deployed_app_config is not None
        }

    async def apply(self, applications: list[dict[str, Any]]) -> None:
        """Deploy exactly these applications (as ``serve deploy`` of a file holding them)."""
        from ray.serve.schema import ServeDeploySchema

        details = await self._details()
        schema = ServeDeploySchema.model_validate(
            {
                "proxy_location": details.proxy_location,
                "http_options": details.http_options.model_dump(exclude_unset=True)
                if details.http_options
                else None,
                "applications": applications,
            }
        )
        await self._controller.apply_config.remote(schema)

    async def add(self, application: dict[str, Any]) -> None:
        apps = await self.applications()
        apps[application["name"]] = application
        await self.apply(list(apps.values()))

    async def remove(self, name: str) -> None:
        apps = await self.applications()
        if apps.pop(name, None) is not None:
            await self.apply(list(apps.values()))

    async def wait_running(self, name: str, timeout_s: float) -> None:
        """Until the application runs; its failure or the timeout as an error with Serve's
        own message."""
        deadline = time.monotonic() + timeout_s
        while True:
            details = await self._details()
            app = details.applications.get(name)
            status = str(app.status) if app else "NOT_STARTED"
            if status.endswith("RUNNING") and not status.endswith("NOT_RUNNING"):
                return
            if status.endswith("DEPLOY_FAILED") or status.endswith("UNHEALTHY"):
                raise ServeApplicationError(f"{name}: {status}: {app.message if app else ''}")
            if time.monotonic() > deadline:
                message = app.message if app else "not started"
                raise ServeApplicationError(
                    f"{name} not running after {timeout_s:.0f} s: {message}"
                )
            await asyncio.sleep(2)

    async def runtime_env(self) -> dict[str, Any]:
        """The product application's runtime env: a model version runs with the same."""
        return dict((await self.applications()).get(PRODUCT_APP, {}).get("runtime_env") or {})
