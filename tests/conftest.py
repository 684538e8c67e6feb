import os

# No test may reach a model hub: weights come from the bundled packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(session, config, items):
    """The browser tests run last. Their session-wide Chromium runs under Playwright's sync
    API, whose event loop stays in this thread while it lives: every asyncio test after the
    first browser test then fails with "Cannot run the event loop while another loop is
    running". A stable sort keeps every other test in its order."""
    items.sort(key=lambda item: "browser" in item.path.parts)
