"""Load tests: locust users over the product's HTTP API and conversation WebSocket, the
profiles that mix them, and the report ``salesboost loadtest`` writes (loadtests/README.md).

Only ``users`` and ``run`` import locust, which monkey-patches the standard library with
gevent on import: they run in a process of their own (``python -m loadtests.run``), never in
one that drives Ray. ``profile`` and ``report`` are plain Python.
"""
