// The practice session: the persona's reply streams in token by token, the coach's hints sit in
// a panel the trainee can fold away (a drawer on a phone), compliance findings show on the turn
// that broke the rule, and a dropped connection resumes where it stopped.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api";
import {
  ConversationConnection,
  initialState,
  type Citation,
  type ComplianceEvent,
  type ConversationState,
  type HintEvent,
  type Message,
} from "../conversation";
import { navigate } from "../router";
import type { Persona, Session } from "../types";
import { Avatar, ErrorNote, Link, Loading, hueOf, useLoad } from "../ui";

const HINT_LABEL: Record<HintEvent["kind"], string> = {
  stage: "Stage",
  objection: "Objection",
  buying_signal: "Buying signal",
  knowledge: "From your materials",
  memory: "From your last sessions",
  next_step: "Next move",
};

export function Practice(props: { sessionId: string }) {
  const session = useLoad(() => api.get<Session>(`/v1/sessions/${props.sessionId}`), [props.sessionId]);
  if (session.loading && !session.data) return <Loading what="the session" />;
  if (!session.data) return <ErrorNote error={session.error} />;
  return <Conversation session={session.data} />;
}

function Conversation(props: { session: Session }) {
  const { session } = props;
  const [state, setState] = useState<ConversationState>(initialState);
  const connection = useMemo(() => new ConversationConnection(api, session.id, setState), [session.id]);
  const [draft, setDraft] = useState("");
  const [hintsOpen, setHintsOpen] = useState(() => matchMedia("(min-width: 900px)").matches);
  const [ending, setEnding] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const list = useRef<HTMLOListElement>(null);
  const ended = session.status !== "active";
  const showHints = session.mode === "practice";
  const personas = new Map(session.scenario.personas.map((p) => [p.slug, p]));

  useEffect(() => {
    if (ended) return;
    connection.start();
    return () => connection.stop();
  }, [connection, ended]);

  // Keep the newest words in view while they stream, unless the trainee scrolled up to read.
  useEffect(() => {
    const el = list.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 160) el.scrollTop = el.scrollHeight;
  }, [state.messages]);

  const waiting = state.messages.some(
    (m) => m.speaker === "trainee" && m.status !== "failed" && m.seq !== null && !state.messages.some((r) => r.speaker !== "trainee" && r.replyTo === m.seq && r.status === "done"),
  ) || state.messages.some((m) => m.speaker === "trainee" && (m.status === "queued" || (m.status === "sent" && m.seq === null)));

  function send(event: Event) {
    event.preventDefault();
    const text = draft.trim();
    if (!text || waiting) return;
    connection.sendTurn(text);
    setDraft("");
  }

  async function end() {
    setEnding(true);
    setError(null);
    try {
      await api.post(`/v1/sessions/${session.id}/end`);
      connection.stop();
      navigate(`/sessions/${session.id}`);
    } catch (e) {
      setError(e);
      setEnding(false);
    }
  }

  if (ended) {
    return (
      <section>
        <h1>{session.scenario.title}</h1>
        <p>
          This session has ended. <Link to={`/sessions/${session.id}`}>Open its scorecard</Link>
        </p>
      </section>
    );
  }

  const answeringPersona = state.answering ? personas.get(state.answering) : null;
  return (
    <section class={`practice ${showHints && hintsOpen ? "with-hints" : ""}`}>
      <header class="practice-head">
        <div>
          <h1>{session.scenario.title}</h1>
          <p class="muted">
            <span class={`badge mode-${session.mode}`}>{session.mode}</span>{" "}
            <span data-testid="connection" class={`conn conn-${state.connection}`} role="status">
              {state.connection === "open" ? "Connected" : state.connection === "closed" ? "Disconnected" : state.connection === "connecting" ? "Connecting…" : "Reconnecting…"}
            </span>
          </p>
          <ul class="personas" aria-label="Customers in this conversation">
            {session.scenario.personas.map((p) => (
              <li key={p.slug}>
                <Avatar name={p.name} hue={hueOf(p.slug)} />
                <span>
                  <strong>{p.name}</strong> <span class="muted">{p.role}</span>
                </span>
              </li>
            ))}
          </ul>
        </div>
        <div class="actions">
          {showHints && (
            <button aria-expanded={hintsOpen} aria-controls="hints" onClick={() => setHintsOpen(!hintsOpen)} data-testid="hints-toggle">
              {hintsOpen ? "Hide hints" : `Hints (${state.hints.length})`}
            </button>
          )}
          <button class="danger" onClick={end} disabled={ending}>
            {ending ? "Scoring…" : "End and score"}
          </button>
        </div>
      </header>
      {state.notice && (
        <p class="error" role="alert">
          {state.notice}
        </p>
      )}
      <ErrorNote error={error} />
      <div class="practice-body">
        <div class="chat" aria-label="Conversation">
          <ol class="transcript" ref={list} tabIndex={0} aria-label="Transcript" aria-live="polite" aria-relevant="additions">
            {state.messages.length === 0 && (
              <li class="muted">Open the conversation: greet {session.scenario.personas.map((p) => p.name).join(" and ")}.</li>
            )}
            {state.messages.map((m) => (
              <Bubble
                key={m.key}
                message={m}
                persona={personas.get(m.speaker)}
                findings={state.findings.filter((f) => findingBelongsTo(f, m))}
                onRetry={() => m.clientTurnId && connection.retryTurn(m.clientTurnId)}
              />
            ))}
          </ol>
          {state.agentNotes.length > 0 && (
            <details class="notes">
              <summary>Behind the scenes ({state.agentNotes.length})</summary>
              <ul>
                {state.agentNotes.map((n, i) => (
                  <li key={i}>{n}</li>
                ))}
              </ul>
            </details>
          )}
          <form class="composer" onSubmit={send}>
            <label for="turn" class="sr-only">
              Your words
            </label>
            <textarea
              id="turn"
              rows={2}
              value={draft}
              placeholder="Say something to the customer…"
              onInput={(e) => setDraft(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && !e.shiftKey) send(e);
              }}
            />
            <button type="submit" class="primary" disabled={!draft.trim() || waiting}>
              {waiting ? (answeringPersona ? `${answeringPersona.name} is answering…` : "Waiting…") : "Send"}
            </button>
          </form>
        </div>
        {showHints && (
          <aside id="hints" class={`hints ${hintsOpen ? "open" : ""}`} aria-label="Coach hints" hidden={!hintsOpen}>
            <div class="hints-head">
              <h2>Coach</h2>
              <button class="link" onClick={() => setHintsOpen(false)}>
                Close<span class="sr-only"> hints</span>
              </button>
            </div>
            <Hints hints={state.hints} />
          </aside>
        )}
      </div>
    </section>
  );
}

function findingBelongsTo(f: ComplianceEvent, m: Message): boolean {
  if (f.speaker === "trainee") return m.speaker === "trainee" && m.seq === f.reply_to;
  return m.speaker !== "trainee" && m.replyTo === f.reply_to;
}

function Bubble(props: { message: Message; persona?: Persona; findings: ComplianceEvent[]; onRetry: () => void }) {
  const { message: m, persona } = props;
  const mine = m.speaker === "trainee";
  return (
    <li
      class={`bubble ${mine ? "mine" : "theirs"} ${m.status} ${m.rechecking ? "rechecking" : ""}`}
      id={m.seq !== null ? `turn-${m.seq}` : undefined}
      data-seq={m.seq ?? undefined}
      data-speaker={m.speaker}
      data-testid="message"
    >
      <div class="who">
        {mine ? (
          <strong>You</strong>
        ) : (
          <>
            <Avatar name={persona?.name ?? m.speaker} hue={hueOf(m.speaker)} />
            <strong>{persona?.name ?? m.speaker}</strong> <span class="muted">{persona?.role}</span>
          </>
        )}
      </div>
      <p class="text">{m.text}</p>
      {m.rechecking && <p class="muted small">The reviewer asked for another answer; it replaces this one…</p>}
      {mine && m.status === "queued" && <p class="muted small">Offline: sent when the connection is back.</p>}
      {mine && m.status === "failed" && (
        <p class="error small">
          {m.error ?? "Not delivered."}{" "}
          <button class="link" onClick={props.onRetry}>
            Send again
          </button>
        </p>
      )}
      {props.findings.map((f, i) => (
        <p key={i} class={`finding sev-${f.severity}`} role="note" data-testid="finding">
          <strong>{f.severity === "critical" ? "Compliance breach" : "Compliance warning"}:</strong> {f.description}{" "}
          <q>{f.excerpt}</q>
        </p>
      ))}
      {m.citations.length > 0 && (
        <details class="citations">
          <summary>Sources ({m.citations.length})</summary>
          <ul>
            {m.citations.map((c) => (
              <li key={c.chunk_id}>
                <strong>{source(c)}</strong>
                <p class="small">{c.text.length > 240 ? `${c.text.slice(0, 240)}…` : c.text}</p>
              </li>
            ))}
          </ul>
        </details>
      )}
    </li>
  );
}

/** Where a cited chunk is: its document's title, heading and page. */
function source(c: Citation): string {
  return `${c.title}${c.heading ? ` — ${c.heading}` : ""}${c.page ? `, p. ${c.page}` : ""}`;
}

function Hints(props: { hints: HintEvent[] }) {
  if (props.hints.length === 0) return <p class="muted">Hints appear here as the conversation goes.</p>;
  const latest = new Map<string, HintEvent>();
  for (const h of props.hints) latest.set(h.kind, h);
  const order: HintEvent["kind"][] = ["stage", "objection", "buying_signal", "knowledge", "memory", "next_step"];
  return (
    <dl class="hint-list" data-testid="hints">
      {order
        .filter((k) => latest.has(k))
        .map((k) => {
          const hint = latest.get(k)!;
          return (
            <div key={k} class={`hint hint-${k}`}>
              <dt>{HINT_LABEL[k]}</dt>
              <dd>
                {hint.text}
                {hint.citations?.map((c) => (
                  <p key={c.chunk_id} class="small muted hint-source">
                    Source: <cite>{source(c)}</cite>
                    {c.position != null ? `, passage ${c.position + 1}` : ""}
                  </p>
                ))}
              </dd>
            </div>
          );
        })}
    </dl>
  );
}
