import json

import pytest

from serve_apps.contracts.turn import PersonaCard, PersonaPapers, ScenarioCard, TurnRequest
from serve_apps.orchestrator.agents.npc import NPCConversation
from serve_apps.orchestrator.chat_engine import (
    ChatDelta,
    ModelUnavailableError,
    ServeLLMChatEngine,
    parse_sse_chunk,
)


def sse(body) -> str:
    return f"data: {json.dumps(body)}\n\n"


def test_sse_chunks_become_deltas():
    assert parse_sse_chunk(sse({"choices": [{"delta": {"content": "Hi"}}]})) == ChatDelta("Hi")
    assert parse_sse_chunk(sse({"choices": [{"delta": {"role": "assistant"}}]})) == ChatDelta("")
    usage = sse({"choices": [], "usage": {"completion_tokens": 7}})
    assert parse_sse_chunk(usage) == ChatDelta("", output_tokens=7)
    assert parse_sse_chunk("data: [DONE]\n\n") is None
    assert parse_sse_chunk("") is None


def test_sse_error_body_raises():
    with pytest.raises(ModelUnavailableError, match="overloaded"):
        parse_sse_chunk(sse({"error": {"message": "overloaded"}}))


class ScriptedChatEngine:
    """Stands in for the LLM deployment; records the messages it was asked to continue."""

    model_id = "scripted"
    version = "scripted@test"

    def __init__(self) -> None:
        self.messages = None

    async def stream_chat(self, messages, *, max_tokens, temperature, **decoding):
        self.messages = messages
        yield ChatDelta("")
        yield ChatDelta("Not ")
        yield ChatDelta("now.")
        yield ChatDelta("", output_tokens=2)

    async def check_health(self):
        return None


class UsagelessChatEngine(ScriptedChatEngine):
    """A fake engine whose stream carries no usage, as a stream cut before its last chunk would."""

    def __init__(self, tokenizer_fails: bool = False) -> None:
        super().__init__()
        self.counted: list[str] = []
        self.tokenizer_fails = tokenizer_fails

    async def stream_chat(self, messages, *, max_tokens, temperature, **decoding):
        yield ChatDelta("Not ")
        yield ChatDelta("right now, thanks.")

    async def count_tokens(self, text):
        self.counted.append(text)
        if self.tokenizer_fails:
            raise RuntimeError("tokenizer unavailable")
        return 5


async def test_a_reply_without_usage_is_counted_with_the_tokenizer(caplog):
    engine = UsagelessChatEngine()
    chunks = [c async for c in NPCConversation(engine).stream_reply(npc_request("Hello"))]
    assert engine.counted == ["Not right now, thanks."]
    assert chunks[-1].done and chunks[-1].output_tokens == 5
    assert "carried no usage" in caplog.text


async def test_a_reply_without_usage_is_counted_in_words_when_the_tokenizer_fails(caplog):
    engine = UsagelessChatEngine(tokenizer_fails=True)
    chunks = [c async for c in NPCConversation(engine).stream_reply(npc_request("Hello"))]
    assert chunks[-1].output_tokens == 4  # never None: the budget counts every reply
    assert "tokenizer failed" in caplog.text


def npc_request(trainee_text: str) -> TurnRequest:
    return TurnRequest(
        tenant_id="t",
        session_id="s",
        reply_to_seq=1,
        persona=PersonaCard(slug="p", name="N", role="R", company="C", personality="x"),
        scenario=ScenarioCard(title="t", product="p", stage="s", difficulty="d", description="x"),
        trainee_text=trainee_text,
    )


async def test_npc_agent_streams_text_then_a_done_chunk_with_usage():
    engine = ScriptedChatEngine()
    request = npc_request("Hello")
    chunks = [c async for c in NPCConversation(engine).stream_reply(request)]
    assert [c.text for c in chunks if not c.done] == ["Not ", "now."]
    assert chunks[-1].done and chunks[-1].output_tokens == 2 and chunks[-1].model == "scripted@test"
    assert chunks[-1].final_text == "Not now."
    # The persona continues its own line, begun with its name, after the salesperson's.
    assert engine.messages[-2] == {"role": "user", "content": "Salesperson: Hello"}
    assert engine.messages[-1] == {"role": "assistant", "content": "N:"}


async def test_the_personas_own_papers_go_just_before_the_new_turn_and_come_back_as_citations():
    from serve_apps.contracts.knowledge import RetrievedChunk

    engine = ScriptedChatEngine()
    chunk = RetrievedChunk(
        chunk_id="c1", document_id="d1", title="Our RFP", score=0.8, text="Budget $40. " * 60
    )
    request = npc_request("What does it cost?").model_copy(
        update={"persona_papers": PersonaPapers(own=[chunk])}
    )
    chunks = [c async for c in NPCConversation(engine).stream_reply(request)]
    assert engine.messages[-3]["role"] == "system"
    assert "my own company" in engine.messages[-3]["content"]
    assert "- Our RFP: Budget $40." in engine.messages[-3]["content"]
    assert "Our RFP" not in engine.messages[0]["content"]  # the cacheable prefix stays put
    assert engine.messages[-2] == {"role": "user", "content": "Salesperson: What does it cost?"}
    cited = chunks[-1].citations
    assert [c.chunk_id for c in cited] == ["c1"] and len(cited[0].text) == 300


class RecordingLLMHandle:
    """A fake Serve handle to the LLM server: records the request, streams one SSE chunk."""

    def __init__(self) -> None:
        self.requests = []

    def options(self, **_):
        return self

    @property
    def chat(self):
        return self

    def remote(self, request):
        self.requests.append(request)

        async def stream():
            yield [sse({"choices": [{"delta": {"content": "Fine."}}], "usage": None})]

        return stream()


async def test_every_stop_string_reaches_the_engine_past_openais_cap_of_four():
    handle = RecordingLLMHandle()
    engine = ServeLLMChatEngine(handle, "m")
    stops = [f"\n{name}:" for name in ("Salesperson", "User", "Customer", "Priya", "Marcus")]
    stops += ["Salesperson:", "\n\n"]
    deltas = [
        d
        async for d in engine.stream_chat(
            [{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0, stop=stops
        )
    ]
    assert "".join(d.text for d in deltas) == "Fine."
    (request,) = handle.requests
    params = request.to_sampling_params(max_tokens=8, default_sampling_params={})
    assert params.stop == stops


async def test_the_vendors_website_is_framed_as_the_vendors_claims_after_the_own_papers():
    from serve_apps.contracts.knowledge import RetrievedChunk

    def chunk(chunk_id: str, title: str, text: str) -> RetrievedChunk:
        return RetrievedChunk(
            chunk_id=chunk_id, document_id=chunk_id, title=title, score=1, text=text
        )

    engine = ScriptedChatEngine()
    papers = PersonaPapers(
        own=[chunk("rfp", "Our RFP", "We need SAP sync.")],
        vendor_website=[chunk("web", "CloudCRM pricing page", "From 65 USD per user.")],
    )
    request = npc_request("Seen our prices?").model_copy(update={"persona_papers": papers})
    chunks = [c async for c in NPCConversation(engine).stream_reply(request)]
    read = engine.messages[-3]["content"]
    own, website = read.index("my own company"), read.index("What the vendor's website claims")
    assert own < read.index("- Our RFP: We need SAP sync.") < website
    assert read.index("- CloudCRM pricing page: From 65 USD per user.") > website
    assert [c.chunk_id for c in chunks[-1].citations] == ["rfp", "web"]
    alone = npc_request("Seen our prices?").model_copy(
        update={"persona_papers": PersonaPapers(vendor_website=papers.vendor_website)}
    )

    _ = [c async for c in NPCConversation(engine).stream_reply(alone)]
    assert "my own company" not in engine.messages[-3]["content"]
    assert engine.messages[-3]["content"].startswith("What the vendor's website claims")
