"""Write Ray's shipped Serve and Serve LLM Grafana dashboards, and SalesBoost's, into a folder.

Ray writes its dashboards into ``<session dir>/metrics/grafana/dashboards/`` only while its
dashboard process runs; this renders the same JSON offline, with the installed Ray's own
generator, so one folder can be imported or provisioned into any Grafana:

    .venv/bin/python cluster/observability/export_ray_dashboards.py OUT_DIR

Ray's ``RAY_GRAFANA_<NAME>_DASHBOARD_UID`` and ``..._GLOBAL_FILTERS`` settings apply, as they
do for Ray's own copy.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

PRODUCT_DASHBOARD = Path(__file__).resolve().parent / "grafana" / "salesboost.json"


def ray_dashboard_generators() -> dict[str, Callable[[], tuple[str, str]]]:
    """File name (as Ray names it) → the installed Ray's generator of (JSON, uid)."""
    # Ray's own module (not a public API): tests/unit/cluster/test_observability_rules.py
    # runs this script, so an upgrade that moves it fails there.
    from ray.dashboard.modules.metrics import grafana_dashboard_factory as factory

    return {
        "serve_grafana_dashboard.json": factory.generate_serve_grafana_dashboard,
        "serve_deployment_grafana_dashboard.json": (
            factory.generate_serve_deployment_grafana_dashboard
        ),
        "serve_llm_grafana_dashboard.json": factory.generate_serve_llm_grafana_dashboard,
    }


def export_dashboards(out_dir: Path) -> dict[str, str]:
    """Write the dashboards into ``out_dir``: file name → dashboard uid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    uids = {}
    for file_name, generate in ray_dashboard_generators().items():
        content, uid = generate()
        (out_dir / file_name).write_text(content)
        uids[file_name] = uid
    shutil.copyfile(PRODUCT_DASHBOARD, out_dir / PRODUCT_DASHBOARD.name)
    uids[PRODUCT_DASHBOARD.name] = json.loads(PRODUCT_DASHBOARD.read_text())["uid"]
    return uids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the dashboards' JSON into")
    args = parser.parse_args()
    for file_name, uid in export_dashboards(args.out_dir).items():
        print(f"{args.out_dir / file_name}  (uid {uid})")


if __name__ == "__main__":
    main()
