"""Model deployments that ML engineers swap by configuration.

Heavy imports (torch, vllm, ray.serve.llm) live inside functions so that
``import models`` stays fast and works on a machine without a model.
"""
