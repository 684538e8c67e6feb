import { describe, expect, it } from "vitest";
import { initialState, reduce, unanswered, type Action, type ConversationState } from "./conversation";

const play = (actions: Action[], from: ConversationState = initialState) => actions.reduce(reduce, from);

const turn = (id: string, text = "Hello?"): Action => ({ type: "local_turn", clientTurnId: id, text, online: true });

describe("the conversation reducer", () => {
  it("streams a reply token by token and keeps it once reply_done comes", () => {
    const s = play([
      turn("c-1"),
      { type: "ack", client_turn_id: "c-1", seq: 1 },
      { type: "token", reply_to: 1, speaker: "priya", text: "Hon" },
      { type: "token", reply_to: 1, speaker: "priya", text: "estly" },
    ]);
    expect(s.messages.map((m) => [m.speaker, m.text, m.status])).toEqual([
      ["trainee", "Hello?", "sent"],
      ["priya", "Honestly", "streaming"],
    ]);
    const done = reduce(s, { type: "reply_done", seq: 2, reply_to: 1, speaker: "priya", text: "Honestly, no." });
    expect(done.messages[1]).toMatchObject({ seq: 2, text: "Honestly, no.", status: "done" });
    expect(done.lastSeq).toBe(2);
    expect(unanswered(done)).toEqual([]);
  });

  it("keeps the retracted words until the next attempt's first token replaces them", () => {
    const s = play([
      turn("c-1"),
      { type: "ack", client_turn_id: "c-1", seq: 1 },
      { type: "token", reply_to: 1, speaker: "priya", text: "As an AI" },
      { type: "review", reply_to: 1, speaker: "priya", attempt: 0, passed: false, issues: ["confession"], action: "retry" },
    ]);
    expect(s.messages[1]).toMatchObject({ text: "As an AI", rechecking: true });
    const late = reduce(s, { type: "token", reply_to: 1, speaker: "priya", text: " model", attempt: 0 });
    expect(late.messages[1].text).toBe("As an AI");
    const next = reduce(late, { type: "token", reply_to: 1, speaker: "priya", text: "Well", attempt: 1 });
    expect(next.messages[1]).toMatchObject({ text: "Well", attempt: 1, rechecking: false });
    expect(next.messages).toHaveLength(2);
  });

  it("does not duplicate a reply that comes both replayed and as reply_done after a reconnect", () => {
    const cut = play([
      turn("c-1"),
      { type: "ack", client_turn_id: "c-1", seq: 1 },
      { type: "token", reply_to: 1, speaker: "priya", text: "Par" },
      { type: "connection", state: "reconnecting" },
    ]);
    expect(unanswered(cut).map((m) => m.clientTurnId)).toEqual(["c-1"]);
    const after = play(
      [
        { type: "turn", seq: 2, speaker: "priya", text: "Partly, yes.", reply_to: 1 },
        { type: "ack", client_turn_id: "c-1", seq: 1, duplicate: true },
        { type: "reply_done", seq: 2, reply_to: 1, speaker: "priya", text: "Partly, yes." },
      ],
      cut,
    );
    expect(after.messages.map((m) => [m.seq, m.text])).toEqual([
      [1, "Hello?"],
      [2, "Partly, yes."],
    ]);
    expect(unanswered(after)).toEqual([]);
  });

  it("replays a whole history in order after opening an old session", () => {
    const s = play([
      { type: "turn", seq: 2, speaker: "cfo", text: "Numbers?", reply_to: 1 },
      { type: "turn", seq: 1, speaker: "trainee", text: "Hi", client_turn_id: "x" },
    ]);
    expect(s.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect(s.lastSeq).toBe(2);
  });

  it("puts compliance findings and hints aside, and marks a refused turn", () => {
    const s = play([
      turn("c-1", "We guarantee returns"),
      { type: "ack", client_turn_id: "c-1", seq: 1 },
      { type: "compliance", reply_to: 1, speaker: "trainee", rule: "r", description: "d", severity: "critical", excerpt: "guarantee", decided_by: "rule" },
      { type: "hint", reply_to: 1, kind: "stage", text: "Stage: discovery" },
      turn("c-2", "x"),
      { type: "error", code: "model_unavailable", message: "try again", client_turn_id: "c-2" },
    ]);
    expect(s.findings).toHaveLength(1);
    expect(s.hints[0].kind).toBe("stage");
    expect(s.messages[1]).toMatchObject({ status: "failed", error: "try again" });
    expect(unanswered(s).map((m) => m.clientTurnId)).toEqual(["c-1"]);
  });

  it("keeps a turn the server was too busy for waiting, not failed (the connection sends it again)", () => {
    const s = play([
      turn("c-5", "What is your timeline?"),
      { type: "error", code: "unavailable", message: "busy", client_turn_id: "c-5", retry_after_s: 3 },
    ]);
    expect(s.messages[0].status).not.toBe("failed");
    expect(s.messages[0].error).toBeUndefined();
  });

  it("queues a turn sent while offline", () => {
    const s = reduce(initialState, { type: "local_turn", clientTurnId: "c-9", text: "hi", online: false });
    expect(s.messages[0].status).toBe("queued");
    expect(unanswered(s)).toHaveLength(1);
  });
});
