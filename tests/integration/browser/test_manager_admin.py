"""Managers and admins in the browser: the heatmap and the score distribution, a session
reviewed (a comment on a turn, an adjusted score the trainee then sees), a course assigned to
a team and a person; people invited and imported, a document uploaded, searched and an
earlier version restored; a team made and its members changed, a compliance rule tried on
sentences, a knowledge base's chunking set, the audit log filtered by the server; rubrics,
personas and scenarios edited in forms that show the server's refusals at their fields; and a
trainee refused the pages and the API."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from tests.integration.browser.conftest import (
    DEMO_ADMIN,
    DESKTOP,
    PASSWORD,
    PHONE,
    check_page,
    check_pages,
    sign_in_as,
)

pytestmark = pytest.mark.integration


def _accept(base_url: str, token: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.post(
            "/v1/auth/accept-invite", json={"invitation_token": token, "password": PASSWORD}
        )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def reviewed_team(base_url, invite):
    """A team with a manager and a trainee who holds one scored session (assessment mode)."""
    team = f"Review {uuid.uuid4().hex[:6]}"
    trainee, trainee_token, trainee_id = invite("trainee", teams=[team])
    manager, manager_token, _ = invite("manager", teams=[team])
    _accept(base_url, trainee_token)
    _accept(base_url, manager_token)
    as_trainee = {"X-Dev-Tenant": "demo", "X-Dev-User": trainee}
    with httpx.Client(base_url=base_url, headers=as_trainee, timeout=300) as http:
        created = http.post(
            "/v1/sessions", json={"scenario": "crm-discovery-call", "mode": "assessment"}
        )
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        ws_base = base_url.replace("http", "ws", 1)
        query = f"dev_tenant=demo&dev_user={trainee}"
        with connect(f"{ws_base}/v1/sessions/{session_id}/stream?{query}") as ws:
            text = "Hi Priya, what budget do you have, and who decides on the CRM?"
            ws.send(json.dumps({"type": "turn", "client_turn_id": "r-1", "text": text}))
            while json.loads(ws.recv(timeout=120))["type"] != "reply_done":
                pass
        ended = http.post(f"/v1/sessions/{session_id}/end")
        assert ended.status_code == 200, ended.text
        assert ended.json()["evaluation"] is not None
    return {
        "team": team,
        "trainee": trainee,
        "trainee_id": trainee_id,
        "manager": manager,
        "session": session_id,
    }


def test_manager_reviews_a_session_and_the_trainee_sees_the_review(new_context, reviewed_team):
    r = reviewed_team
    page = sign_in_as(r["manager"])(new_context(DESKTOP).new_page())
    page.goto("/app/manager")
    heatmap = page.get_by_test_id("heatmap")
    heatmap.wait_for()
    assert r["team"] in heatmap.inner_text()
    check_page(page, "manager-overview")
    page.get_by_role("link", name="Browser Trainee").first.click()
    page.get_by_test_id("sessions").wait_for()
    check_page(page, "manager-trainee")
    page.get_by_test_id("sessions").get_by_role("link").first.click()
    page.get_by_test_id("scorecard").wait_for()

    page.get_by_role("button", name="Comment on turn 1").click()
    page.get_by_label("Comment on turn 1").fill("Good: budget and decision in one question.")
    page.get_by_role("button", name="Add comment").click()
    page.get_by_test_id("comment").filter(has_text="budget and decision").wait_for()
    page.get_by_label("Your score (0–100)").fill("85")
    page.get_by_label("Reason").fill("The judge missed the acknowledgement in turn 1.")
    page.get_by_role("button", name="Save adjusted score").click()
    page.get_by_test_id("adjusted-score").filter(has_text="85").wait_for()
    check_page(page, "manager-review")

    # The trainee sees the review beside the AI's score.
    trainee = sign_in_as(r["trainee"])(new_context(PHONE).new_page())
    trainee.goto(f"/app/sessions/{r['session']}")
    trainee.get_by_test_id("adjusted-score").filter(has_text="85").wait_for()
    assert "budget and decision" in trainee.get_by_test_id("comment").first.inner_text()
    assert trainee.get_by_role("button", name="Save adjusted score").count() == 0
    check_page(trainee, "trainee-review")

    drill_down = f"/app/manager/trainees/{r['trainee_id']}"
    check_pages(
        new_context,
        sign_in_as(r["manager"]),
        [
            ("/app/manager", "manager-overview", "[data-testid=heatmap]"),
            (drill_down, "manager-trainee", "[data-testid=sessions]"),
            (f"/app/sessions/{r['session']}", "manager-review", "[data-testid=adjusted-score]"),
        ],
    )


def test_a_manager_sees_the_score_distribution_at_both_sizes(new_context, base_url, reviewed_team):
    """The AI scores of the team's sessions as bars; the numbers in a table for screen readers."""
    r = reviewed_team
    as_manager = {"X-Dev-Tenant": "demo", "X-Dev-User": r["manager"]}
    with httpx.Client(base_url=base_url, headers=as_manager, timeout=30) as http:
        ai_score = http.get(f"/v1/sessions/{r['session']}/report").json()["evaluation"]["score"]
    low = min(int(ai_score) // 10 * 10, 90)
    scored_range = f"{low}–{100 if low == 90 else low + 9}"
    for viewport in (PHONE, DESKTOP):
        page = sign_in_as(r["manager"])(new_context(viewport).new_page())
        page.goto("/app/manager")
        chart = page.get_by_test_id("score-distribution")
        chart.wait_for()
        bars = chart.get_by_role("img")
        expect(bars).to_have_accessible_name("Scored sessions per AI score range")
        expect(bars).to_have_accessible_description(re.compile(r"^1 scored session, [01] passed"))
        assert chart.locator("rect.bar").count() == 1
        row = chart.locator("tbody tr").filter(has_text=scored_range)
        expect(row.locator("td")).to_have_text("1")
        check_page(page, "manager-score-distribution")


def test_a_manager_assigns_a_course_to_a_team_and_a_person(new_context, base_url, reviewed_team):
    r = reviewed_team
    slug = f"assign-{uuid.uuid4().hex[:6]}"
    title = f"Assignment drill {slug}"
    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        created = http.post(
            "/v1/courses",
            json={"slug": slug, "title": title, "scenarios": ["crm-discovery-call"]},
        )
        assert created.status_code == 201, created.text
    page = sign_in_as(r["manager"])(new_context(PHONE).new_page())
    page.goto("/app/admin/content")
    page.get_by_role("tab", name="Courses").click()
    page.get_by_role("button", name=title).click()
    listed = page.get_by_test_id("assignment-list")
    listed.get_by_text("Not assigned yet.").wait_for()

    # The server's refusal shows at the field it is about.
    team = page.get_by_label("Team", exact=True)
    team.fill("No such team")
    page.get_by_role("button", name="Assign", exact=True).click()
    page.locator("#assign-team-error").filter(has_text="No team 'No such team'").wait_for()
    assert team.get_attribute("aria-invalid") == "true"
    check_page(page, "course-assignments-refused")

    team.fill(r["team"])
    page.get_by_label("Deadline (optional)").fill("2031-05-01T17:00")
    page.get_by_role("button", name="Assign", exact=True).click()
    listed.get_by_text(f"Team {r['team']}").wait_for()
    assert "due 1 May 2031" in listed.inner_text()
    assert page.locator("#assign-team-error").count() == 0
    page.get_by_label("One person").check()
    person = page.get_by_role("combobox", name="Person")
    person.select_option(label=f"Browser Trainee ({r['trainee']})")
    page.get_by_role("button", name="Assign", exact=True).click()
    listed.get_by_text("Browser Trainee").wait_for()
    # The deadline stays in the form for the next assignment.
    assert listed.inner_text().count("due 1 May 2031") == 2
    check_page(page, "course-assignments")

    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        stored = http.get(f"/v1/courses/{slug}/assignments").json()
    assert {(a["team"], a["user_id"]) for a in stored} == {
        (r["team"], None),
        (None, r["trainee_id"]),
    }


def test_admin_invites_imports_uploads_searches_and_restores(new_context, base_url, invite):
    admin, token, _ = invite("admin")
    _accept(base_url, token)
    page = sign_in_as(admin)(new_context(DESKTOP).new_page())

    page.goto("/app/admin/people")
    page.get_by_test_id("people").wait_for()
    email = f"invited-{uuid.uuid4().hex[:6]}@demo.salesboost.local"
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Name").fill("Invited Person")
    page.get_by_role("button", name="Invite", exact=True).click()
    assert "/app/invite#token=" in page.get_by_test_id("invite-link").inner_text()
    ok = f"ok-{uuid.uuid4().hex[:6]}@demo.salesboost.local"
    csv = f"email,display_name,role,team\n{ok},Ok,trainee,\nnot-an-email,Bad,trainee,\n"
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    report = page.get_by_test_id("import-report")
    report.wait_for()
    assert "1 invited" in report.inner_text() and "1 refused" in report.inner_text()
    assert "Refused: email" in report.locator("tr.import-invalid").inner_text()
    check_page(page, "admin-people")

    page.goto("/app/admin/knowledge")
    status = page.get_by_test_id("kb-status")
    status.wait_for()
    before = int(re.search(r"Live version (\d+)", status.inner_text()).group(1))
    word = f"zorblax{uuid.uuid4().hex[:4]}"
    document = f"# Browser test sheet\n\nThe {word} connector syncs CRM contacts nightly.\n"
    page.get_by_label("Upload a document").set_input_files(
        files=[{"name": f"{word}.md", "mimeType": "text/markdown", "buffer": document.encode()}]
    )
    page.get_by_role("status").filter(has_text="is indexed").wait_for(timeout=120_000)
    page.get_by_label("Query").fill(f"{word} connector")
    page.get_by_role("button", name="Search").click()
    hits = page.get_by_test_id("search-hits")
    hits.wait_for()
    assert "Browser test sheet" in hits.inner_text()
    assert "reranked: #" in hits.inner_text()
    page.get_by_role("button", name="Re-index into a new version").click()
    page.get_by_test_id("kb-status").filter(
        has_text=re.compile(rf"Live version (?!{before}\b)\d+")
    ).wait_for(timeout=180_000)
    page.get_by_role("button", name=f"Make version {before} live").click()
    page.get_by_test_id("kb-status").filter(has_text=f"Live version {before} ").wait_for()
    check_page(page, "admin-knowledge")

    check_pages(
        new_context,
        sign_in_as(admin),
        [
            ("/app/admin/people", "admin-people", "[data-testid=people]"),
            ("/app/admin/content", "admin-content", "[role=tab]"),
            ("/app/admin/knowledge", "admin-knowledge", "[data-testid=kb-status]"),
            ("/app/admin/audit", "admin-audit", "[data-testid=audit] tbody tr"),
        ],
    )


def test_admin_runs_teams_tries_a_rule_sets_chunking_and_filters_the_audit_log(
    new_context, base_url, invite
):
    admin, token, _ = invite("admin")
    _accept(base_url, token)
    _, _, member_id = invite("trainee")
    tag = uuid.uuid4().hex[:6]
    kb = f"browser-chunks-{tag}"
    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        chunking = {"chunk_words": 150, "overlap_words": 30}
        assert http.put(f"/v1/knowledge-bases/{kb}", json={"chunking": chunking}).status_code == 200
    page = sign_in_as(admin)(new_context(PHONE).new_page())

    # Teams: one made (a second of the same name refused at the field), a member added and
    # taken off again.
    page.goto("/app/admin/people")
    page.get_by_test_id("teams").wait_for()
    team = f"Browser crew {tag}"
    card = page.get_by_test_id("team").filter(has=page.get_by_role("heading", name=team))
    for _ in range(2):
        page.get_by_label("New team").fill(team)
        page.get_by_role("button", name="Create team").click()
        card.wait_for()
    page.locator("#team-name-error").filter(has_text="exists already").wait_for()
    assert page.get_by_label("New team").get_attribute("aria-invalid") == "true"
    card.get_by_label(f"Add to {team}").select_option(value=member_id)
    card.get_by_role("button", name=f"Add to {team}").click()
    remove = card.get_by_role("button", name=f"Remove Browser Trainee from {team}")
    remove.wait_for()
    check_page(page, "admin-teams")
    remove.click()
    card.get_by_text("No members yet.").wait_for()
    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        stored = [t for t in http.get("/v1/teams").json() if t["name"] == team]
    assert [t["members"] for t in stored] == [[]]

    # A compliance rule tried as the form holds it, before it is saved: a regular expression,
    # one the server refuses (said at the pattern's field), then a semantic rule, saved.
    page.goto("/app/admin/content")
    page.get_by_role("tab", name="Compliance rules").click()
    page.get_by_role("button", name="New compliance rule").click()
    editor = page.get_by_test_id("rule-editor")
    editor.get_by_label("Slug").fill(f"try-{tag}")
    editor.get_by_label("Description").fill("No guarantees.")
    pattern = editor.get_by_label("Pattern (regular expression)")
    pattern.fill("(?i)guarantee")
    page.get_by_label("Sentence", exact=True).fill("Hello. We guarantee a 20% saving in year one.")
    page.get_by_role("button", name="Try it").click()
    findings = page.get_by_test_id("try-findings")
    findings.filter(has_text=f"Breaks try-{tag}").wait_for()
    assert "We guarantee a 20% saving in year one." in findings.inner_text()
    page.get_by_label("Sentence", exact=True).fill("We expect a saving.")
    page.get_by_role("button", name="Try it").click()
    page.get_by_role("status").filter(has_text="The sentence keeps the rule.").wait_for()
    pattern.fill("(unclosed")
    page.get_by_role("button", name="Try it").click()
    page.locator("#rule-pattern-error").filter(has_text="regular expression").wait_for()
    assert pattern.get_attribute("aria-invalid") == "true"
    assert "the field marked in the rule" in page.get_by_test_id("try-rule").inner_text()
    editor.get_by_label("Kind").select_option("semantic")
    editor.get_by_label("Similarity threshold").fill("0.62")
    editor.get_by_label("Example 1").fill("This price is only valid if you sign today.")
    editor.get_by_label("Description").fill("No pressure tactics.")
    page.get_by_label("Sentence", exact=True).fill("This price only holds if you sign today.")
    page.get_by_role("button", name="Try it").click()
    findings.filter(has_text="similarity 0.").wait_for()
    assert page.locator("#rule-pattern-error").count() == 0
    check_page(page, "admin-try-rule")
    editor.get_by_role("button", name="Save", exact=True).click()
    editor.get_by_role("status").filter(has_text="Saved.").wait_for()
    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        saved = http.get(f"/v1/compliance-rules/try-{tag}").json()
    assert (saved["kind"], saved["threshold"], saved["pattern"]) == ("semantic", 0.62, None)
    assert saved["examples"] == ["This price is only valid if you sign today."]

    # Chunking: a refusal at the field, then saved and shown in the status line.
    page.goto("/app/admin/knowledge")
    page.get_by_role("combobox", name="Knowledge base").select_option(kb)
    page.get_by_test_id("kb-status").filter(
        has_text="chunks of 150 words, 30 overlapping"
    ).wait_for()
    page.get_by_label("Words per chunk").fill("100")
    overlap = page.get_by_label("Words repeated from the previous chunk")
    overlap.fill("100")
    page.get_by_role("button", name="Save chunking").click()
    page.locator("#chunking-chunking-overlap_words-error").filter(
        has_text="must be shorter than a chunk"
    ).wait_for()
    assert overlap.get_attribute("aria-invalid") == "true"
    overlap.fill("20")
    page.get_by_role("button", name="Save chunking").click()
    page.get_by_test_id("kb-status").filter(
        has_text="chunks of 100 words, 20 overlapping"
    ).wait_for()
    page.get_by_role("status").filter(has_text="Saved.").wait_for()
    check_page(page, "admin-chunking")
    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        chunking = http.get(f"/v1/knowledge-bases/{kb}").json()["chunking"]
    assert (chunking["chunk_words"], chunking["overlap_words"]) == (100, 20)

    # The audit log, filtered by the server.
    page.goto("/app/admin/audit")
    rows = page.get_by_test_id("audit").locator("tbody tr")
    rows.first.wait_for()
    page.get_by_label("Action", exact=True).fill("team.create")
    page.get_by_label("Target contains").fill(tag)
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1, timeout=30_000)
    assert team in rows.inner_text() and "team.create" in rows.inner_text()
    page.get_by_label("Action", exact=True).fill("")
    tomorrow = (datetime.now() + timedelta(days=1)).date().isoformat()
    page.get_by_label("From", exact=True).fill(tomorrow)
    page.get_by_role("button", name="Show").click()
    rows.filter(has_text="No actions match.").wait_for()
    page.get_by_label("To", exact=True).fill(datetime.now().date().isoformat())
    page.get_by_role("button", name="Show").click()
    page.locator("#audit-to-error").filter(has_text="Must be later than from").wait_for()
    check_page(page, "admin-audit-filtered")


def test_content_is_edited_in_forms_with_the_servers_refusals_at_their_fields(
    new_context, base_url, invite
):
    """A rubric refused at one check's field, fixed and saved; a persona refused at its slug,
    fixed and saved with its lists; a scenario that seats it after a seeded persona (moved up)
    and scores with the new rubric. The API stores what the forms showed."""
    admin, token, _ = invite("admin")
    _accept(base_url, token)
    tag = uuid.uuid4().hex[:6]
    page = sign_in_as(admin)(new_context(PHONE).new_page())
    page.goto("/app/admin/content")

    page.get_by_role("tab", name="Rubrics").click()
    page.get_by_role("button", name="New rubric").click()
    editor = page.get_by_test_id("rubric-editor")
    editor.get_by_label("Slug").fill(f"rubric-{tag}")
    editor.get_by_label("Name", exact=True).fill(f"Budget talk {tag}")
    criterion = editor.get_by_role("group", name="Criterion 1")
    criterion.get_by_label("Skill").fill("budget")
    criterion.get_by_label("Criterion name").fill("Budget")
    first = criterion.get_by_role("group", name="Check 1 of criterion 1")
    first.get_by_label("Question").fill("Did the trainee ask about the budget?")
    first.get_by_label("Kind").select_option("pattern")
    pattern = first.get_by_label("Pattern (regular expression)")
    pattern.fill("(budget")
    editor.get_by_role("button", name="Save", exact=True).click()
    refusal = page.locator("#rubric-criteria-0-checks-0-pattern-error")
    refusal.filter(has_text="Not a valid regular expression").wait_for()
    assert pattern.get_attribute("aria-invalid") == "true"
    assert pattern.get_attribute("aria-describedby") == "rubric-criteria-0-checks-0-pattern-error"
    check_page(page, "admin-rubric-refused")
    pattern.fill("(?i)budget")
    editor.get_by_role("button", name="Add check to criterion 1").click()
    second = criterion.get_by_role("group", name="Check 2 of criterion 1")
    second.get_by_label("Question").fill("Did the trainee ask three questions?")
    second.get_by_label("Kind").select_option("questions")
    second.get_by_label("At least this many questions").fill("3")
    second.get_by_label("Check weight").fill("2")
    editor.get_by_role("button", name="Save", exact=True).click()
    editor.get_by_role("status").filter(has_text="Saved.").wait_for()
    assert refusal.count() == 0
    page.get_by_test_id("content-list").get_by_role("button", name=f"Budget talk {tag}").wait_for()
    check_page(page, "admin-rubric")

    page.get_by_role("tab", name="Personas").click()
    page.get_by_role("button", name="New persona").click()
    editor = page.get_by_test_id("persona-editor")
    slug = editor.get_by_label("Slug")
    slug.fill(f"Buyer {tag}")
    editor.get_by_label("Name", exact=True).fill(f"Dana Buyer {tag}")
    editor.get_by_label("Role").fill("Procurement lead")
    editor.get_by_label("Company").fill("Northwind")
    editor.get_by_label("Personality").fill("Brisk; wants numbers first.")
    editor.get_by_role("button", name="Add goal").click()
    editor.get_by_label("Goal 1").fill("Cut licence costs")
    editor.get_by_role("button", name="Add hidden item").click()
    editor.get_by_label("Hidden item 1").fill("The budget is 40k")
    editor.get_by_role("button", name="Save", exact=True).click()
    page.locator("#persona-slug-error").filter(has_text="should match pattern").wait_for()
    assert slug.get_attribute("aria-invalid") == "true"
    slug.fill(f"buyer-{tag}")
    editor.get_by_role("button", name="Save", exact=True).click()
    editor.get_by_role("status").filter(has_text="Saved.").wait_for()
    assert page.locator("#persona-slug-error").count() == 0
    check_page(page, "admin-persona")

    page.get_by_role("tab", name="Scenarios").click()
    page.get_by_role("button", name="New scenario").click()
    editor = page.get_by_test_id("scenario-editor")
    editor.get_by_label("Slug").fill(f"renewal-{tag}")
    editor.get_by_label("Title").fill(f"Renewal {tag}")
    editor.get_by_label("Product").fill("CloudCRM, at renewal")
    editor.get_by_label("Stage").select_option("objection handling")
    editor.get_by_label("Difficulty").select_option("hard")
    editor.get_by_label("Description").fill("Procurement pushes back on the renewal price.")
    editor.get_by_label("Seller's knowledge base").select_option("product")
    editor.get_by_label("Rubric").select_option(f"rubric-{tag}")
    add = editor.get_by_label("Add a persona")
    for persona in (f"buyer-{tag}", "skeptical-it-director"):
        add.select_option(persona)
        editor.get_by_role("button", name="Add persona", exact=True).click()
    editor.get_by_role("button", name="Up Priya Raman").click()
    editor.get_by_role("button", name="Save", exact=True).click()
    editor.get_by_role("status").filter(has_text="Saved.").wait_for()
    check_page(page, "admin-scenario")

    with httpx.Client(base_url=base_url, headers=DEMO_ADMIN, timeout=30) as http:
        rubric = http.get(f"/v1/rubrics/rubric-{tag}").json()
        persona = http.get(f"/v1/personas/buyer-{tag}").json()
        scenario = http.get(f"/v1/scenarios/renewal-{tag}").json()
    checks = rubric["criteria"][0]["checks"]
    assert (checks[0]["kind"], checks[0]["pattern"]) == ("pattern", "(?i)budget")
    assert (checks[1]["kind"], checks[1]["min_count"], checks[1]["weight"]) == ("questions", 3, 2)
    assert (persona["goals"], persona["hidden"], persona["facts"]) == (
        ["Cut licence costs"],
        ["The budget is 40k"],
        [],
    )
    assert scenario["personas"] == ["skeptical-it-director", f"buyer-{tag}"]
    assert (scenario["rubric"], scenario["knowledge_base"], scenario["stage"]) == (
        f"rubric-{tag}",
        "product",
        "objection handling",
    )
    assert scenario["customer_knowledge_base"] is None


def test_a_trainee_is_refused_manager_and_admin_pages_and_the_api(new_context, base_url, invite):
    trainee, token, _ = invite("trainee")
    _accept(base_url, token)
    page = sign_in_as(trainee)(new_context(PHONE).new_page())
    for path in ("/app/manager", "/app/admin/people", "/app/admin/audit"):
        page.goto(path)
        refused = page.get_by_test_id("refused")
        refused.wait_for()
        assert "Not available to you" in refused.inner_text()
    assert page.get_by_role("link", name="Team").count() == 0
    check_page(page, "refused")
    with httpx.Client(base_url=base_url, timeout=30) as http:
        pair = http.post(
            "/v1/auth/login", json={"tenant": "demo", "email": trainee, "password": PASSWORD}
        ).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        refused_paths = (
            "/v1/analytics/heatmap",
            "/v1/analytics/score-distribution",
            "/v1/users",
            "/v1/audit-events",
        )
        for path in refused_paths:
            assert http.get(path, headers=bearer).status_code == 403, path
