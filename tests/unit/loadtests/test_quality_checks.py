"""The new check kinds (semantic, knowledge claims), the reviewer's rules, the trimming of a
reply cut at the token limit, and bench quality's arithmetic on a small fixed input.

The semantic checks run on the real bundled embedder (all-MiniLM-L6-v2, in-process, as the
bench does); the quality goals themselves live in ``salesboost bench quality``, not here.
"""

import pytest

from loadtests.bench.quality import (
    agreement,
    compliance_scores,
    distribution,
    precision_recall,
    probe_summary,
    reviewer_scores,
)
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import ComplianceRuleSpec, RubricCheck, RubricSpec
from serve_apps.contracts.turn import (
    EvaluationRequest,
    PersonaCard,
    ScenarioCard,
    TranscriptTurn,
)
from serve_apps.orchestrator.agents.claims import Figure, agrees, figures
from serve_apps.orchestrator.agents.compliance import ComplianceChecker, whole_sentences
from serve_apps.orchestrator.agents.evaluator import Evaluator
from serve_apps.orchestrator.agents.reviewer import (
    CONTRADICTS,
    INSTRUCTIONS,
    LEAKS,
    RUNS_ON,
    SELLER,
    money_amounts,
    rule_issues,
)
from serve_apps.orchestrator.npc_prompt import npc_messages, persona_decoding, trim_reply

PRIYA = PersonaCard(
    slug="it",
    name="Priya Raman",
    role="IT Director",
    company="Northwind Logistics (1,200 employees)",
    personality="Skeptical",
    facts=["Northwind runs about 300 CRM users across sales and customer service"],
    hidden=["The budget ceiling is 180,000 USD for the first year"],
    objections=["Your price is higher than the competitor"],
)
SCENARIO = ScenarioCard(
    title="t", product="CloudCRM Enterprise", stage="qualification", difficulty="m", description="d"
)


@pytest.fixture(scope="module")
def matcher():
    from serve_apps.orchestrator.semantic import LocalSentenceEmbedder, SemanticMatcher

    return SemanticMatcher(LocalSentenceEmbedder())


# --- trimming and the prompt ----------------------------------------------------------------


def test_a_reply_cut_mid_sentence_ends_at_its_last_whole_sentence():
    assert trim_reply("We run SAP. The budget is 1.5 million and") == ("We run SAP.", True)
    assert trim_reply("Is it U.S. based? Yes.") == ("Is it U.S. based? Yes.", False)
    assert trim_reply('He said "no." Then') == ('He said "no."', True)
    assert trim_reply("no sentence end at all") == ("no sentence end at all", False)


def test_the_persona_continues_its_own_named_line_and_stops_at_a_new_speaker():
    from serve_apps.contracts.turn import TurnRequest

    request = TurnRequest(
        session_id="s",
        tenant_id="t",
        reply_to_seq=1,
        persona=PRIYA,
        scenario=SCENARIO,
        trainee_text="What do you use today?",
    )
    messages = npc_messages(request)
    assert messages[0]["content"].startswith("I am Priya Raman, IT Director")
    assert messages[-1] == {"role": "assistant", "content": "Priya:"}
    assert any(m["content"].startswith("Priya: Everyone says that.") for m in messages)
    assert "\nSalesperson:" in persona_decoding(PRIYA, []).stop


# --- reviewer rules -------------------------------------------------------------------------


def test_the_reviewer_catches_seller_speak_contradictions_leaks_and_running_on():
    def issues(reply, question="What do you use today?"):
        return rule_issues(reply, persona=PRIYA, question=question, product=SCENARIO.product)

    assert SELLER in issues("We're providing a 30-day sandbox with sample data.")
    assert SELLER in issues("CloudCRM offers flexible pricing.")
    assert CONTRADICTS in issues("We have about 50 users on it.")
    assert CONTRADICTS in issues("We're a small business, really.")
    assert issues("About 1,200 employees, and roughly 300 CRM users.") == []
    assert LEAKS in issues("Our ceiling is 180,000 USD.", "Tell me about your team.")
    assert LEAKS not in issues("Our ceiling is 180,000 USD.", "What is your budget ceiling?")
    assert RUNS_ON in issues("Yes. " * 6)


def test_the_reviewer_catches_a_sum_far_beyond_the_card_and_another_signer():
    """What the merged persona said on the held-out probes (tests/evalsets/heldout)."""
    card = PRIYA.model_copy(
        update={
            "facts": [*PRIYA.facts, "Security review by the CISO is mandatory for any new vendor"],
            "hidden": [*PRIYA.hidden, "The CFO must sign anything over 150,000 USD"],
        }
    )

    def contradicts(reply, question="Is there a budget set aside?"):
        return CONTRADICTS in rule_issues(reply, persona=card, question=question)

    assert money_amounts("$4 million, or 180k dollars, USD 1,500 and ten thousand euros") == [
        4_000_000,
        180_000,
        1_500,
        10_000,
    ]
    assert contradicts("The CIO wants $4 million upfront.")
    assert contradicts("I've got about ten million dollars allocated for the project.")
    assert not contradicts("Around 500,000 dollars over three years, all in.")
    assert not contradicts("Your list price of 65 dollars a user is steep.")
    who = "Who has to approve the spend in the end?"
    assert contradicts("The CIO, whichever makes the decision.", who)
    assert contradicts("The CEO.", who)
    assert contradicts("No, and the CEO signed off on it too.", "Have you run a pilot?")
    assert not contradicts("The CFO signs, but the CIO has a say.", who)
    assert not contradicts("Our CISO will want a security review first.", who)
    assert not contradicts("I decide with my team.", who)
    assert not contradicts("The CEO likes the idea.", "What did your team say?")
    cfo = card.model_copy(update={"role": "Chief Financial Officer"})
    assert CONTRADICTS not in rule_issues(
        "Anything over 150,000 USD needs my signature. Below that, the IT director decides.",
        persona=cfo,
        question="Could you walk me through your approval process?",
    )


def test_the_reviewer_catches_its_own_correction_repeated_to_the_salesperson():
    """What the 135M model said after a retry with feedback (bench quality, temperature 0.3)."""

    def issues(reply):
        return rule_issues(reply, persona=PRIYA, question="How does that sound?", product="")

    assert INSTRUCTIONS in issues(
        "One to three short spoken sentences that answer the customer's question about my company."
    )
    assert INSTRUCTIONS in issues("It does indeed speak as the seller, not the customer.")
    assert INSTRUCTIONS in issues("My previous response was incorrect; a corrected version:")
    assert issues("Three sentences is all I need from you in writing.") == []


# --- semantic kinds -------------------------------------------------------------------------


def test_semantic_specs_need_examples():
    with pytest.raises(ValueError, match="examples"):
        RubricCheck(question="Asked who decides?", kind="semantic")
    with pytest.raises(ValueError, match="examples"):
        ComplianceRuleSpec(slug="x", description="no pressure", kind="semantic")


async def test_a_semantic_rubric_check_counts_a_paraphrase_with_a_whole_sentence(matcher):
    # The demo rubric's check, as its admin wrote it (db/seed/demo_tenant.yaml).
    import yaml

    from db.seed import DEMO_TENANT_FILE

    (demo,) = yaml.safe_load(DEMO_TENANT_FILE.read_text())["rubrics"]
    (decides,) = [
        c for crit in demo["criteria"] for c in crit["checks"] if "who decides" in c["question"]
    ]
    rubric = RubricSpec.model_validate(
        {
            "slug": "r",
            "name": "R",
            "criteria": [{"skill": "qualification", "name": "Q", "checks": [decides]}],
        }
    )

    async def check(text):
        report, _ = await Evaluator(None, matcher).evaluate(
            EvaluationRequest(
                session_id="s",
                scenario=SCENARIO,
                personas=[PRIYA],
                transcript=[TranscriptTurn(seq=1, speaker="trainee", text=text)],
                rubric=rubric,
            )
        )
        return report.criteria[0].checks[0]

    # The issue's turn: the regular expression this check was did not count it.
    said = "Thanks. Who else would be involved in choosing a CRM, and what's your budget range?"
    yes = await check(said)
    assert yes.passed and yes.decided_by == "semantic"
    assert yes.evidence[0].quote == (
        "Who else would be involved in choosing a CRM, and what's your budget range?"
    )
    assert not (await check("Our connectors sync with SAP every five minutes.")).passed


async def test_semantic_and_knowledge_claim_rules_find_what_regexes_cannot(matcher):
    rules = [
        ComplianceRuleSpec(
            slug="no-pressure",
            description="No pressure tactics",
            kind="semantic",
            threshold=0.6,
            examples=["This price is only valid if you sign today."],
        ),
        ComplianceRuleSpec(slug="claims", description="Match the docs", kind="knowledge_claims"),
    ]
    chunk = RetrievedChunk(
        chunk_id="c1",
        document_id="d1",
        title="Pricing FAQ",
        score=0.9,
        text="The fixed-price migration package is 48,000 USD for up to 2,000 users.",
    )
    checker = ComplianceChecker(rules, None, matcher)

    async def found(text):
        return await checker.semantic_check(
            text, party="trainee", speaker="trainee", reply_to=1, knowledge=[chunk]
        )

    pressure = await found("Great. The offer only stands if you sign by today.")
    assert [f.rule for f in pressure] == ["no-pressure"]
    assert pressure[0].excerpt == "The offer only stands if you sign by today."
    claim = await found("The migration package is a fixed 30,000 USD.")
    assert [(f.rule, f.decided_by) for f in claim] == [("claims", "knowledge")]
    assert claim[0].source is not None and claim[0].source.chunk_id == "c1"
    assert "48,000 USD" in claim[0].description
    assert await found("The migration package is a fixed 48,000 USD.") == []


def test_figures_agree_exactly_within_a_range_or_under_a_ceiling():
    assert figures("takes 10 to 14 weeks") == [Figure(10, "weeks"), Figure(14, "weeks")]
    assert figures("a 30-day sandbox") == [Figure(30, "days")]
    assert agrees(Figure(12, "weeks"), figures("takes 10 to 14 weeks"))
    assert agrees(Figure(5, "percent"), figures("up to 10 % off"))
    assert not agrees(Figure(15, "percent"), figures("up to 10 % off"))
    assert not agrees(Figure(30000, "usd"), figures("is 48,000 USD"))
    assert figures("$1.2 million, or 180k dollars") == [Figure(1.2e6, "usd"), Figure(180e3, "usd")]
    assert figures("5 months") == [Figure(5, "months")]


def test_an_excerpt_is_the_whole_sentence_a_match_is_in():
    text = "Hello there. Who else is involved in choosing a CRM? Thanks."
    start = text.index("lved")
    assert whole_sentences(text, start, start + 4) == "Who else is involved in choosing a CRM?"


# --- bench arithmetic -----------------------------------------------------------------------


def test_bench_arithmetic_on_a_small_fixed_input():
    assert precision_recall(3, 1, 2) == {
        "precision": 0.75,
        "recall": 0.6,
        "tp": 3,
        "fp": 1,
        "fn": 2,
    }
    assert precision_recall(0, 0, 0)["precision"] is None
    scores = reviewer_scores([(True, True, "seller"), (True, False, "ai"), (False, True, None)])
    assert (scores["precision"], scores["recall"]) == (0.5, 0.5)
    assert scores["recall_by_kind"]["ai"]["recall"] == 0.0
    compliance = compliance_scores(
        [({"a"}, {"a", "b"}), ({"b"}, set()), (set(), set())], {"a": "forbidden", "b": "semantic"}
    )
    assert (compliance["precision"], compliance["recall"]) == (0.5, 0.5)
    assert compliance["by_kind"]["semantic"] == {
        "precision": 0.0,
        "recall": 0.0,
        "tp": 0,
        "fp": 1,
        "fn": 1,
    }
    agreed = agreement([("pattern", True, True), ("semantic", True, False), ("judge", True, None)])
    assert (agreed["agreement"], agreed["checks"], agreed["not_decided"]) == (0.5, 2, 1)
    assert distribution([1, 2, 3, 4]) == {"n": 4, "p50": 2.5, "p90": 3.7, "max": 4, "mean": 2.5}


def test_probe_summary_on_a_small_fixed_input():
    def reply(line, final, accepted, labelled_text=None, papers=0, first_token_ms=None):
        attempt = {"output_tokens": 10, "finish_reason": "stop", "issues": [], "passed": True}
        rejected = {
            "output_tokens": 64,
            "finish_reason": "length",
            "issues": [RUNS_ON],
            "passed": False,
        }
        return {
            "scenario": "s",
            "line": line,
            "final": final,
            "accepted": accepted,
            "replaced": not accepted,
            "papers": papers,
            "first_token_ms": first_token_ms,
            "attempts": [attempt] if accepted else [rejected, rejected, rejected],
        }

    replies = [
        reply(0, "We use SAP.", True, papers=2, first_token_ms=300.0),
        reply(1, "Fine.", True, first_token_ms=200.0),
        reply(2, "Let's keep to the point.", False, first_token_ms=100.0),
    ]
    labels = [
        {"scenario": "s", "line": 0, "reply": "We use SAP.", "in_character": True},
        {"scenario": "s", "line": 1, "reply": "Fine.", "in_character": False},
        {"scenario": "s", "line": 2, "reply": "another run's text", "in_character": True},
    ]
    summary = probe_summary(replies, labels)
    assert summary["in_character_rate"]["by_reviewer"] == round(2 / 3, 3)
    assert summary["in_character_rate"]["by_labels"] == 0.5  # two of the three matched
    assert summary["in_character_rate"]["labelled"] == 2
    assert summary["replaced_rate"] == round(1 / 3, 3)
    assert summary["cut_at_limit_fraction"] == 0.6  # 3 of 5 attempts hit the budget
    assert summary["issues"] == {RUNS_ON: 3}
    by_papers = summary["first_token_ms_by_papers"]
    assert (by_papers["with_papers"]["n"], by_papers["with_papers"]["p50"]) == (1, 300.0)
    assert (by_papers["without_papers"]["n"], by_papers["without_papers"]["p50"]) == (2, 150.0)
