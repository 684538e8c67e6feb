import os

# No test may reach a model hub: weights come from the bundled packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(session, config, items):
    """The two-node cluster's tests run first, and the browser tests last.

    The two-node cluster starts beside the session's stack, both booting at once, and stops
    before the other tests need the cores (tests/integration/test_multinode.py). The
    browser tests' session-wide Chromium runs under Playwright's sync API, whose event loop
    stays in this thread while it lives: every asyncio test after the first browser test
    then fails with "Cannot run the event loop while another loop is running". A stable
    sort keeps every other test in its order."""

    def place(item) -> int:
        if item.path.name == "test_multinode.py":
            return 0
        return 2 if "browser" in item.path.parts else 1

    items.sort(key=place)
