// The practice conversation over WS /v1/sessions/{id}/stream (README, "The conversation
// protocol"): a pure reducer from server frames to what the page shows, and the connection
// that opens with a single-use ticket, resumes from the last sequence number after a drop,
// and sends every unanswered turn again under its own client turn id.

import type { Api } from "./api";

export interface Citation {
  chunk_id: string;
  title: string;
  heading?: string | null;
  page?: number | null;
  /** The chunk's place in its document, from 0. */
  position?: number;
  text: string;
  score: number;
}

export interface HintEvent {
  type: "hint";
  reply_to: number | null;
  kind: "objection" | "buying_signal" | "next_step" | "stage" | "memory" | "knowledge";
  text: string;
  stage?: string | null;
  /** knowledge: the seller's chunk the hint quotes. */
  citations?: Citation[];
}

export interface ComplianceEvent {
  type: "compliance";
  reply_to: number;
  speaker: string;
  rule: string;
  description: string;
  severity: string;
  excerpt: string;
  decided_by: string;
}

export interface Evidence {
  seq: number;
  quote: string;
}

export interface Report {
  rubric: string;
  score: number;
  pass_score: number;
  passed: boolean;
  criteria: {
    skill: string;
    name: string;
    weight: number;
    score: number;
    checks: { question: string; passed: boolean; weight: number; decided_by: string; evidence: Evidence[] }[];
  }[];
  strengths: string[];
  improvements: string[];
  summary: string;
}

export type ServerFrame =
  | { type: "ack"; client_turn_id: string; seq: number; duplicate?: boolean }
  | { type: "token"; reply_to: number; speaker: string; text: string; attempt?: number }
  | {
      type: "reply_done";
      seq: number;
      reply_to: number;
      speaker: string;
      text: string;
      citations?: Citation[];
    }
  | {
      type: "turn";
      seq: number;
      speaker: string;
      text: string;
      client_turn_id?: string | null;
      reply_to?: number | null;
      citations?: Citation[];
    }
  | { type: "review"; reply_to: number; speaker: string; attempt: number; passed: boolean; issues: string[]; action: "accepted" | "retry" | "replaced" }
  | { type: "turn_taking"; reply_to: number; speaker: string; reason: string }
  | HintEvent
  | ComplianceEvent
  | { type: "score"; session_id: string; report: Report }
  | { type: "error"; code: string; message: string; client_turn_id?: string | null; agent?: string | null; reply_to?: number | null; retry_after_s?: number | null }
  | { type: "pong" };

export type MessageStatus = "queued" | "sent" | "streaming" | "done" | "failed";

export interface Message {
  key: string;
  seq: number | null;
  speaker: string; // "trainee" or a persona's slug
  text: string;
  status: MessageStatus;
  clientTurnId?: string;
  replyTo?: number | null;
  attempt?: number;
  /** The reviewer asked for another attempt: the old words stay, dimmed, until new ones come. */
  rechecking?: boolean;
  citations: Citation[];
  error?: string;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface ConversationState {
  messages: Message[];
  hints: HintEvent[];
  findings: ComplianceEvent[];
  agentNotes: string[];
  lastSeq: number;
  connection: ConnectionState;
  /** Who is answering right now (a persona's slug), from turn_taking or the first token. */
  answering: string | null;
  notice: string | null;
  score: Report | null;
}

export const initialState: ConversationState = {
  messages: [],
  hints: [],
  findings: [],
  agentNotes: [],
  lastSeq: 0,
  connection: "connecting",
  answering: null,
  notice: null,
  score: null,
};

export type Action =
  | { type: "local_turn"; clientTurnId: string; text: string; online: boolean }
  | { type: "connection"; state: ConnectionState; notice?: string | null }
  | { type: "resent"; clientTurnId: string }
  | ServerFrame;

function order(messages: Message[]): Message[] {
  const rank = (m: Message, i: number) =>
    m.seq !== null ? m.seq : m.replyTo != null ? m.replyTo + 0.5 : 1e9 + i;
  return messages
    .map((m, i) => [rank(m, i), i, m] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map(([, , m]) => m);
}

function update(messages: Message[], index: number, patch: Partial<Message>): Message[] {
  const next = messages.slice();
  next[index] = { ...messages[index], ...patch };
  return next;
}

function maxSeq(messages: Message[], floor: number): number {
  return messages.reduce((m, x) => (x.seq !== null && x.seq > m ? x.seq : m), floor);
}

/** What the page shows after one more frame (pure: the unit tests replay frame sequences). */
export function reduce(state: ConversationState, action: Action): ConversationState {
  const msgs = state.messages;
  switch (action.type) {
    case "local_turn":
      return {
        ...state,
        messages: [
          ...msgs,
          {
            key: `t:${action.clientTurnId}`,
            seq: null,
            speaker: "trainee",
            text: action.text,
            status: action.online ? "sent" : "queued",
            clientTurnId: action.clientTurnId,
            citations: [],
          },
        ],
      };
    case "resent": {
      const i = msgs.findIndex((m) => m.clientTurnId === action.clientTurnId);
      return i < 0 ? state : { ...state, messages: update(msgs, i, { status: msgs[i].seq ? msgs[i].status : "sent", error: undefined }) };
    }
    case "connection":
      return {
        ...state,
        connection: action.state,
        notice: action.notice !== undefined ? action.notice : state.notice,
        answering: action.state === "open" ? state.answering : null,
      };
    case "ack": {
      const i = msgs.findIndex((m) => m.clientTurnId === action.client_turn_id && m.speaker === "trainee");
      if (i < 0) return state;
      const messages = order(update(msgs, i, { seq: action.seq, status: "sent", error: undefined }));
      return { ...state, messages, lastSeq: maxSeq(messages, state.lastSeq) };
    }
    case "turn_taking":
      return { ...state, answering: action.speaker };
    case "token": {
      const attempt = action.attempt ?? 0;
      const i = msgs.findIndex((m) => m.speaker !== "trainee" && m.replyTo === action.reply_to);
      if (i < 0) {
        const message: Message = {
          key: `r:${action.reply_to}`,
          seq: null,
          speaker: action.speaker,
          text: action.text,
          status: "streaming",
          replyTo: action.reply_to,
          attempt,
          citations: [],
        };
        return { ...state, answering: action.speaker, messages: order([...msgs, message]) };
      }
      const m = msgs[i];
      const current = m.attempt ?? 0;
      // Late words of a finished reply, or of an attempt the reviewer retracted.
      if (m.status === "done" || attempt < current || (m.rechecking && attempt === current)) return state;
      if (attempt > current) {
        // The next attempt replaces the retracted one in place: no empty bubble in between.
        return {
          ...state,
          answering: action.speaker,
          messages: update(msgs, i, { text: action.text, attempt, rechecking: false, speaker: action.speaker }),
        };
      }
      return { ...state, answering: action.speaker, messages: update(msgs, i, { text: m.text + action.text }) };
    }
    case "review": {
      const notes =
        action.action === "accepted"
          ? state.agentNotes
          : [
              ...state.agentNotes,
              action.action === "retry"
                ? `The reviewer sent a reply back (${action.issues.join("; ") || "out of character"}); the customer answers again.`
                : `The reviewer replaced a reply (${action.issues.join("; ") || "out of character"}).`,
            ];
      if (action.action !== "retry") return { ...state, agentNotes: notes };
      const i = msgs.findIndex((m) => m.speaker !== "trainee" && m.replyTo === action.reply_to && m.status === "streaming");
      if (i < 0 || (msgs[i].attempt ?? 0) !== action.attempt) return { ...state, agentNotes: notes };
      return { ...state, agentNotes: notes, messages: update(msgs, i, { rechecking: true }) };
    }
    case "reply_done":
    case "turn": {
      const isTurn = action.type === "turn";
      if (msgs.some((m) => m.seq === action.seq)) {
        return isTurn ? state : { ...state, answering: null };
      }
      let i = -1;
      if (action.speaker === "trainee") {
        const cid = isTurn ? action.client_turn_id : null;
        i = cid ? msgs.findIndex((m) => m.clientTurnId === cid) : -1;
      } else if (action.reply_to != null) {
        i = msgs.findIndex((m) => m.speaker !== "trainee" && m.replyTo === action.reply_to && m.seq === null);
      }
      const finished: Partial<Message> = {
        seq: action.seq,
        speaker: action.speaker,
        text: action.text,
        status: action.speaker === "trainee" ? "sent" : "done",
        replyTo: action.reply_to ?? null,
        rechecking: false,
        citations: action.citations ?? [],
      };
      let messages: Message[];
      if (i >= 0) {
        messages = update(msgs, i, finished);
      } else {
        messages = [
          ...msgs,
          {
            key: `s:${action.seq}`,
            citations: [],
            ...finished,
            clientTurnId: isTurn ? action.client_turn_id ?? undefined : undefined,
          } as Message,
        ];
      }
      messages = order(messages);
      return {
        ...state,
        messages,
        lastSeq: maxSeq(messages, state.lastSeq),
        answering: isTurn ? state.answering : null,
      };
    }
    case "hint":
      return { ...state, hints: [...state.hints, action] };
    case "compliance":
      return { ...state, findings: [...state.findings, action] };
    case "score":
      return { ...state, score: action.report };
    case "error": {
      if (action.code === "agent_failed") {
        return { ...state, agentNotes: [...state.agentNotes, action.message] };
      }
      // The connection asks again by itself (same client turn id: answered once).
      if (action.code === "reply_in_progress" || action.code === "unavailable") return state;
      const i = action.client_turn_id ? msgs.findIndex((m) => m.clientTurnId === action.client_turn_id) : -1;
      if (i >= 0) {
        return { ...state, answering: null, messages: update(msgs, i, { status: "failed", error: action.message }) };
      }
      return { ...state, answering: null, notice: action.message };
    }
    case "pong":
      return state;
  }
}

/** Trainee turns that still wait for their reply: sent again, each under its own id. */
export function unanswered(state: ConversationState): Message[] {
  const answered = new Set(
    state.messages.filter((m) => m.speaker !== "trainee" && m.status === "done").map((m) => m.replyTo),
  );
  return state.messages.filter(
    (m) =>
      m.speaker === "trainee" &&
      m.clientTurnId &&
      m.status !== "failed" &&
      (m.seq === null || !answered.has(m.seq)),
  );
}

export function newClientTurnId(): string {
  const random = Math.random().toString(36).slice(2, 10);
  return `w-${Date.now().toString(36)}-${random}`;
}

const PING_EVERY_MS = 15_000;
const SILENT_FOR_MS = 40_000;
const RETRY_IN_PROGRESS_MS = 1_200;
// A turn the server keeps answering "unavailable" is sent this many times more, then shown as
// failed so the trainee can decide.
const MAX_RESENDS = 5;

/** One conversation's WebSocket, kept open across drops. */
export class ConversationConnection {
  state: ConversationState = initialState;
  private ws: WebSocket | null = null;
  private closedByUs = false;
  private attempts = 0;
  // Set by an "overloaded" refusal: how long to wait before opening the socket again.
  private overloadedRetryMs: number | null = null;
  private lastHeard = Date.now();
  private timer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private resends = new Map<string, number>();
  private readonly onOnline = () => {
    if (!this.isOpen) this.reconnectSoon(0);
  };

  constructor(
    private readonly api: Api,
    readonly sessionId: string,
    private readonly onChange: (state: ConversationState) => void,
  ) {}

  start(): void {
    this.closedByUs = false;
    addEventListener("online", this.onOnline);
    this.timer = setInterval(() => this.heartbeat(), PING_EVERY_MS / 3);
    void this.open();
  }

  stop(): void {
    this.closedByUs = true;
    removeEventListener("online", this.onOnline);
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.ws?.close(1000, "page closed");
    this.ws = null;
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  sendTurn(text: string): void {
    const clientTurnId = newClientTurnId();
    this.dispatch({ type: "local_turn", clientTurnId, text, online: this.isOpen });
    if (this.isOpen) this.frame({ type: "turn", client_turn_id: clientTurnId, text });
  }

  retryTurn(clientTurnId: string): void {
    const message = this.state.messages.find((m) => m.clientTurnId === clientTurnId);
    if (!message) return;
    this.dispatch({ type: "resent", clientTurnId });
    if (this.isOpen) this.frame({ type: "turn", client_turn_id: clientTurnId, text: message.text });
  }

  private dispatch(action: Action): void {
    this.state = reduce(this.state, action);
    this.onChange(this.state);
  }

  private frame(frame: unknown): void {
    this.ws?.send(JSON.stringify(frame));
  }

  private async open(): Promise<void> {
    if (this.closedByUs) return;
    this.dispatch({ type: "connection", state: this.attempts ? "reconnecting" : "connecting" });
    let ticket: string;
    try {
      ticket = (await this.api.post<{ ticket: string }>("/v1/auth/ws-ticket")).ticket;
    } catch {
      this.reconnectSoon();
      return;
    }
    if (this.closedByUs) return;
    const url = new URL(`/v1/sessions/${this.sessionId}/stream`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("ticket", ticket);
    url.searchParams.set("last_seq", String(this.state.lastSeq));
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.lastHeard = Date.now();
      this.dispatch({ type: "connection", state: "open", notice: null });
      this.resendUnanswered();
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame;
      } catch {
        return;
      }
      this.dispatch(frame);
      if (frame.type === "error" && frame.code === "overloaded") {
        this.overloadedRetryMs = (frame.retry_after_s ?? 15) * 1000;
      }
      if (
        frame.type === "error" &&
        (frame.code === "reply_in_progress" || frame.code === "unavailable") &&
        frame.client_turn_id
      ) {
        const id = frame.client_turn_id;
        // A reply in progress is pushed here when stored: asking again is only a nudge. A
        // busy server is asked a few times, then the trainee decides.
        const resent = (this.resends.get(id) ?? 0) + (frame.code === "unavailable" ? 1 : 0);
        if (resent > MAX_RESENDS) {
          this.resends.delete(id);
          this.dispatch({ ...frame, code: "gave_up", message: "The server stayed busy. Send it again in a moment." });
          return;
        }
        this.resends.set(id, resent);
        const wait = frame.retry_after_s ? frame.retry_after_s * 1000 : RETRY_IN_PROGRESS_MS;
        setTimeout(() => this.isOpen && this.retryTurn(id), wait);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closedByUs) return;
      if (event.code === 1008) {
        // Refused by policy (no such session, or not yours): trying again will not help.
        this.dispatch({ type: "connection", state: "closed", notice: event.reason || "the conversation was refused" });
        return;
      }
      if (event.code === 1013) {
        // Every place for a live conversation was taken: come back when the server said.
        const wait = this.overloadedRetryMs ?? 15_000;
        this.overloadedRetryMs = null;
        this.reconnectSoon(wait);
        return;
      }
      this.reconnectSoon();
    };
  }

  private resendUnanswered(): void {
    for (const message of unanswered(this.state)) {
      this.frame({ type: "turn", client_turn_id: message.clientTurnId, text: message.text });
      if (message.status === "queued") this.dispatch({ type: "resent", clientTurnId: message.clientTurnId! });
    }
  }

  private reconnectSoon(delayMs?: number): void {
    if (this.closedByUs || this.retryTimer) return;
    this.attempts += 1;
    this.dispatch({ type: "connection", state: "reconnecting" });
    const wait = delayMs ?? Math.min(5_000, 300 * 2 ** Math.min(this.attempts - 1, 4));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.ws) void this.open();
    }, wait);
  }

  private heartbeat(): void {
    if (!this.isOpen) return;
    if (Date.now() - this.lastHeard > SILENT_FOR_MS) {
      // A connection that went quiet (a closed laptop lid) is dropped and opened again.
      const ws = this.ws!;
      this.ws = null;
      ws.close();
      this.reconnectSoon(0);
      return;
    }
    if (Date.now() - this.lastHeard > PING_EVERY_MS) this.frame({ type: "ping" });
  }
}
