"""The serving cluster: Serve config files, the KubeRay manifests rendered from them, the
local stack that ``salesboost up`` runs (``local_stack.py``) and a local multi-node Ray
cluster for ``salesboost up --nodes N``.

One source of truth: ``salesboost up`` deploys a Serve config file (``serve_local.yaml``)
and ``salesboost cluster render`` embeds the same file in a RayService.
"""
