"""What ops see of the product: traces (under Ray Serve's own spans), metrics (through Ray's
metrics, beside ``ray_serve_*`` and ``ray_vllm_*``) and JSON logs.

A leaf beside ``serve_apps.contracts``: the deployments import it, it imports none of them.
"""
