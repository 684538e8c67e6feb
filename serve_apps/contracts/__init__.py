"""What crosses a deployment boundary, in one leaf package.

- ``wire``: the conversation WebSocket's frames (client frames, server events).
- ``turn``: the gateway → orchestrator hop (a turn's request, its streamed chunks, the cards
  of a scenario, persona and trainee) and the evaluation report.
- ``specs``: personas, scenarios, rubrics and compliance rules as data (the admin API's
  bodies, the seed files, the stored rows' validated shape).
- ``knowledge``: what the knowledge service returns (retrieved chunks, search traces).

This package imports nothing from the rest of ``serve_apps`` (the import-linter contract in
``pyproject.toml`` keeps it so): the gateway, the orchestrator, the database seed and the
tests all depend on it, and it depends on none of them.
"""
