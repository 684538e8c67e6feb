"""The web app in Debian's Chromium, driven by Playwright, against the real stack.

One browser for the whole test session; each test opens its own contexts (phone and
desktop). Every page a test visits can be checked with :func:`check_page`: a screenshot at
390×844 and 1280×800 under ``test-artifacts/browser/``, no horizontal scroll on the phone,
and axe-core (from ``web/node_modules``) with no serious or critical violation.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from loadtests.bench.ui import CHROMIUM, CHROMIUM_ARGS, sign_in_through_the_page

REPO = Path(__file__).resolve().parents[3]
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO / "test-artifacts" / "browser"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
PASSWORD = "a-long-browser-password"
DEMO_ADMIN = {"X-Dev-Tenant": "demo", "X-Dev-User": "admin@demo.salesboost.local"}


@pytest.fixture(scope="session")
def browser(stack) -> Iterator:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make install` installs it (apt-get install chromium)")
    if not (REPO / "web" / "dist" / "index.html").exists():
        pytest.fail("the web app is not built: `make install` builds web/dist")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser, base_url):
    """Open a browser context (a fresh profile) at the phone's or the desktop's size."""
    opened = []

    def open_context(viewport=DESKTOP):
        context = browser.new_context(
            base_url=base_url,
            viewport=viewport,
            device_scale_factor=1,
            locale="en-GB",
            # axe-core is injected as an inline script, which the pages' CSP refuses.
            bypass_csp=True,
        )
        context.set_default_timeout(30_000)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


def check_page(page, name: str) -> None:
    """Screenshot, no horizontal scroll at phone width, and no serious axe violation."""
    width = page.viewport_size["width"]
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    if width <= PHONE["width"]:
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px at {width}px"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{name} at {width}px: {json.dumps(serious, indent=1)}"


def check_pages(context_at, sign_in, pages: list[tuple[str, str, str]]) -> None:
    """Sign in once per size (phone, desktop) and check each ``(path, name, selector)``: the
    page is opened and checked once ``selector`` shows."""
    for viewport in (PHONE, DESKTOP):
        page = sign_in(context_at(viewport).new_page())
        for path, name, selector in pages:
            page.goto(path)
            page.locator(selector).first.wait_for()
            page.wait_for_load_state("networkidle")
            check_page(page, name)


@pytest.fixture(scope="session")
def invite(base_url):
    """Invite a new person as the demo admin: (email, invitation token, user id)."""

    def invite_one(role: str = "trainee", teams: list[str] | None = None) -> tuple[str, str, str]:
        email = f"{role}-{uuid.uuid4().hex[:8]}@demo.salesboost.local"
        with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
            for team in teams or []:
                created = http.post("/v1/teams", json={"name": team})
                assert created.status_code in (201, 409), created.text
            response = http.post(
                "/v1/users/invite",
                json={
                    "email": email,
                    "display_name": f"Browser {role.title()}",
                    "role": role,
                    "teams": teams or [],
                },
            )
        assert response.status_code == 201, response.text
        body = response.json()
        return email, body["invitation_token"], body["user"]["id"]

    return invite_one


@pytest.fixture(scope="session")
def trainee_with_course(base_url, invite):
    """A trainee who has set no password yet, with a published course assigned (due soon)."""
    email, token, user_id = invite("trainee", teams=["Browser team"])
    slug = f"browser-{uuid.uuid4().hex[:6]}"
    due = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        course = http.post(
            "/v1/courses",
            json={
                "slug": slug,
                "title": "Discovery basics",
                "scenarios": ["crm-discovery-call"],
                "mode": "practice",
                "status": "published",
            },
        )
        assert course.status_code == 201, course.text
        assigned = http.post(
            f"/v1/courses/{slug}/assignments", json={"user_id": user_id, "due_at": due}
        )
        assert assigned.status_code == 201, assigned.text
    return {"email": email, "token": token, "user_id": user_id, "course": slug}


def sign_in_as(email: str, password: str = PASSWORD):
    """A function that signs a fresh page in through the sign-in form."""

    return lambda page: sign_in_through_the_page(page, email, password)
