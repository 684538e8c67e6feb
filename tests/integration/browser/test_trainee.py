"""A trainee in the browser: invitation, sign-in, an assigned scenario held for three turns with
hints (the knowledge hint with its source), a compliance finding and a connection cut mid-reply,
the scorecard; and a buying committee in assessment mode (two speakers, no hints)."""

from __future__ import annotations

import re

import pytest

from tests.integration.browser.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    check_page,
    check_pages,
    sign_in_as,
)

pytestmark = pytest.mark.integration

REPLY_S = 120_000  # ms: a reply on the CPU model, with the agents beside it


def _replies_done(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('.bubble.theirs.done').length >= n",
        arg=count,
        timeout=REPLY_S,
    )


def _say(page, text: str) -> None:
    page.get_by_label("Your words").fill(text)
    page.get_by_role("button", name="Send").click()


def test_trainee_practises_an_assigned_scenario_through_a_dropped_connection(
    new_context, trainee_with_course
):
    t = trainee_with_course
    context = new_context(DESKTOP)
    page = context.new_page()

    # The invitation link sets the password and signs in.
    page.goto(f"/app/invite#token={t['token']}")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    check_page(page, "invite")
    page.get_by_role("button", name="Set password and sign in").click()
    course = page.get_by_test_id(f"course-{t['course']}")
    course.wait_for()
    assert "Discovery basics" in course.inner_text()
    page.locator(".toast", has_text="New assignment: Discovery basics").wait_for()
    assert "#token" not in page.url

    # Sign out, then in with the password.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    check_page(page, "sign-in")
    page.get_by_label("Company").fill("demo")
    page.get_by_label("E-mail").fill(t["email"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="wrong").wait_for()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    course.wait_for()
    check_page(page, "home")

    # Every WebSocket of the page goes through a route the test can cut.
    sockets = []

    def through_the_test(ws):
        sockets.append((ws, ws.connect_to_server()))

    page.route_web_socket(re.compile(r".*/v1/sessions/.*/stream.*"), through_the_test)
    course.get_by_role("button", name=re.compile("^Start")).click()
    page.wait_for_url(re.compile(r"/app/practice/"))
    page.get_by_test_id("connection").filter(has_text="Connected").wait_for()

    # A price from the seller's documents: the coach quotes them, with the source.
    _say(page, "Hi Priya, thanks for your time. The migration package is 48,000 USD excl. VAT.")
    page.locator(".bubble.theirs.streaming, .bubble.theirs.done").first.wait_for(timeout=REPLY_S)
    _replies_done(page, 1)
    page.get_by_test_id("hints").wait_for(timeout=REPLY_S)
    knowledge = page.locator(".hint-knowledge")
    knowledge.wait_for(timeout=REPLY_S)
    assert "48,000 USD" in knowledge.locator("dd").inner_text()
    source = knowledge.locator(".hint-source").first.inner_text()
    assert re.fullmatch(r"Source: CloudCRM .+, passage \d+", source), source

    _say(page, "We guarantee a 30% return on your CRM spend. What budget do you have?")
    finding = page.locator(".bubble.mine [data-testid=finding]")
    finding.first.wait_for(timeout=REPLY_S)
    assert "guaranteed returns" in finding.first.inner_text()
    _replies_done(page, 2)
    check_page(page, "practice")

    # The third reply: cut the connection at its first painted token.
    _say(page, "Who decides and signs a purchase like this? Could we schedule a meeting?")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.bubble.theirs.streaming .text')]"
        ".some(e => e.textContent.length > 0)",
        timeout=REPLY_S,
    )
    ws, server = sockets[-1]
    server.close()
    ws.close(code=4000, reason="cut by the test")
    _replies_done(page, 3)
    page.get_by_test_id("connection").filter(has_text="Connected").wait_for()
    assert len(sockets) >= 2, "the page did not reconnect"
    seqs = page.eval_on_selector_all("[data-testid=message]", "els => els.map(e => e.dataset.seq)")
    assert len(seqs) == 6, seqs
    assert len(set(seqs)) == 6, f"a turn came twice: {seqs}"
    assert page.locator(".bubble.mine").count() == 3

    # End: the scorecard, and an evidence quote that scrolls to its turn.
    page.get_by_role("button", name="End and score").click()
    page.wait_for_url(re.compile(r"/app/sessions/"), timeout=REPLY_S)
    page.get_by_test_id("scorecard").wait_for(timeout=REPLY_S)
    evidence = page.get_by_test_id("evidence").first
    seq = re.search(r"turn (\d+)", evidence.inner_text()).group(1)
    evidence.click()
    turn = page.locator(f"#turn-{seq}")
    page.wait_for_function(f"() => document.activeElement?.id === 'turn-{seq}'")
    assert turn.is_visible()
    check_page(page, "scorecard")
    report_path = "/app/" + page.url.split("/app/", 1)[1]

    check_pages(
        new_context,
        sign_in_as(t["email"]),
        [
            ("/app/", "home", f"[data-testid=course-{t['course']}]"),
            ("/app/progress", "progress", "[data-testid=sessions]"),
            ("/app/settings", "settings", "main h1"),
            (report_path, "scorecard", "[data-testid=scorecard]"),
        ],
    )


def test_buying_committee_in_assessment_mode_shows_two_speakers_and_no_hints(new_context, invite):
    email, token, _ = invite("trainee")
    page = new_context(PHONE).new_page()
    page.goto(f"/app/invite#token={token}")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    scenario = page.get_by_test_id("scenario-buying-committee")
    scenario.wait_for()
    page.get_by_label("Assessment (no hints)").check()
    scenario.get_by_role("button", name=re.compile("^Start")).click()
    page.wait_for_url(re.compile(r"/app/practice/"))
    page.get_by_test_id("connection").filter(has_text="Connected").wait_for()
    assert page.get_by_test_id("hints-toggle").count() == 0
    assert page.locator("#hints").count() == 0

    _say(page, "Priya, how does your SAP integration and data migration work today?")
    _replies_done(page, 1)
    _say(page, "Marcus, what budget and payback period does finance expect for this?")
    _replies_done(page, 2)
    speakers = page.eval_on_selector_all(".bubble.theirs", "els => els.map(e => e.dataset.speaker)")
    assert set(speakers) == {"skeptical-it-director", "cost-focused-cfo"}, speakers
    names = page.locator(".bubble.theirs .who strong").all_inner_texts()
    assert {"Priya Raman", "Marcus Lee"} <= set(names)
    check_page(page, "practice-committee")
