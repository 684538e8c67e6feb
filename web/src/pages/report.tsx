// The scorecard beside the transcript: each criterion with its checks, each evidence quote a
// link that scrolls the transcript to its turn. Managers review here too: comments on turns and
// an adjusted score with a reason, kept beside the AI's.
import { useState } from "preact/hooks";
import { ApiError, api } from "../api";
import { useMe } from "../app";
import type { Evidence, Report } from "../conversation";
import type { Session, SessionReport, StoredTurn } from "../types";
import { Avatar, ErrorNote, Link, Loading, formatDate, hueOf, useLoad } from "../ui";

export interface ReviewComment {
  id: string;
  seq: number;
  text: string;
  author: string;
  created_at: string;
}

export interface SessionReview {
  session_id: string;
  ai_score: number | null;
  comments: ReviewComment[];
  adjusted: { score: number; passed: boolean; reason: string; reviewer: string; created_at: string } | null;
}

function goToTurn(seq: number): void {
  const el = document.getElementById(`turn-${seq}`);
  if (!el) return;
  el.scrollIntoView({ behavior: "smooth", block: "center" });
  el.classList.add("flash");
  el.focus({ preventScroll: true });
  setTimeout(() => el.classList.remove("flash"), 2000);
}

export function SessionReport(props: { sessionId: string }) {
  const me = useMe();
  const id = props.sessionId;
  const session = useLoad(() => api.get<Session>(`/v1/sessions/${id}`), [id]);
  const report = useLoad(() => api.get<SessionReport>(`/v1/sessions/${id}/report`), [id]);
  const review = useLoad(
    () =>
      api.get<SessionReview>(`/v1/sessions/${id}/review`).catch((e) => {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }),
    [id],
  );
  const reviewer = me.role !== "trainee";
  if (session.loading && !session.data) return <Loading what="the session" />;
  if (!session.data) return <ErrorNote error={session.error} />;
  const s = session.data;
  const evaluation = report.data?.evaluation ?? null;
  const personas = new Map(s.scenario.personas.map((p) => [p.slug, p]));

  return (
    <section class="report">
      <h1>{s.scenario.title}</h1>
      <p class="muted">
        {formatDate(s.created_at)} · {s.mode} · {s.status}
        {s.status === "active" && (
          <>
            {" "}
            · <Link to={`/practice/${s.id}`}>Go on with the conversation</Link>
          </>
        )}
      </p>
      <div class="report-grid">
        <div class="report-side">
          <ErrorNote error={report.error} />
          {evaluation ? <Scorecard report={evaluation} /> : report.loading ? <Loading what="the score" /> : <p>No score for this session.</p>}
          <ErrorNote error={review.error} />
          {review.data && <ReviewSummary review={review.data} />}
          {reviewer && evaluation && <AdjustScore sessionId={id} review={review.data ?? null} onSaved={review.reload} aiScore={evaluation.score} />}
        </div>
        <div class="report-transcript">
          <h2>Transcript</h2>
          <ol class="transcript">
            {s.turns.map((t) => (
              <TranscriptTurn
                key={t.seq}
                turn={t}
                personaName={personas.get(t.speaker)?.name}
                personaRole={personas.get(t.speaker)?.role}
                comments={review.data?.comments.filter((c) => c.seq === t.seq) ?? []}
                canComment={reviewer}
                sessionId={id}
                onCommented={review.reload}
              />
            ))}
          </ol>
        </div>
      </div>
    </section>
  );
}

export function Scorecard(props: { report: Report }) {
  const r = props.report;
  return (
    <div class="scorecard" data-testid="scorecard">
      <h2>
        Score <span class="score">{Math.round(r.score)}</span>
        <span class={`badge ${r.passed ? "pass" : "fail"}`}>{r.passed ? "Passed" : "Not passed"}</span>
      </h2>
      <p class="muted">Pass score {r.pass_score} · rubric {r.rubric}</p>
      <p>{r.summary}</p>
      {r.strengths.length > 0 && (
        <>
          <h3>Strengths</h3>
          <ul>
            {r.strengths.map((x, i) => (
              <li key={i}>{x}</li>
            ))}
          </ul>
        </>
      )}
      {r.improvements.length > 0 && (
        <>
          <h3>To improve</h3>
          <ul>
            {r.improvements.map((x, i) => (
              <li key={i}>{x}</li>
            ))}
          </ul>
        </>
      )}
      <h3>Criteria</h3>
      <ul class="criteria">
        {r.criteria.map((c) => (
          <li key={c.skill}>
            <div class="row">
              <strong>{c.name}</strong>
              <span>{Math.round(c.score)}</span>
            </div>
            <meter min={0} max={100} value={c.score} aria-label={`${c.name}: ${Math.round(c.score)} of 100`} />
            <ul class="checks">
              {c.checks.map((k, i) => (
                <li key={i} class={k.passed ? "ok" : "no"}>
                  <span aria-hidden="true">{k.passed ? "✓" : "✗"}</span>
                  <span class="sr-only">{k.passed ? "Met:" : "Not met:"}</span> {k.question}
                  {k.decided_by === "judge_failed" && <span class="muted"> (the judge could not decide)</span>}
                  {k.evidence.map((e: Evidence, j) => (
                    <button key={j} class="evidence" data-testid="evidence" onClick={() => goToTurn(e.seq)}>
                      <q>{e.quote}</q> <span class="muted">turn {e.seq}</span>
                    </button>
                  ))}
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
    </div>
  );
}

function ReviewSummary(props: { review: SessionReview }) {
  const a = props.review.adjusted;
  if (!a && props.review.comments.length === 0) return null;
  return (
    <div class="review" data-testid="review">
      <h2>Manager's review</h2>
      {a ? (
        <p>
          Adjusted score <strong data-testid="adjusted-score">{Math.round(a.score)}</strong> (AI: {props.review.ai_score != null ? Math.round(props.review.ai_score) : "—"}) by {a.reviewer},{" "}
          {formatDate(a.created_at)}. <q>{a.reason}</q>
        </p>
      ) : (
        <p class="muted">No adjusted score.</p>
      )}
      <p class="muted">{props.review.comments.length} comment(s) on turns, shown in the transcript.</p>
    </div>
  );
}

function AdjustScore(props: { sessionId: string; review: SessionReview | null; aiScore: number; onSaved: () => void }) {
  const [score, setScore] = useState(String(Math.round(props.review?.adjusted?.score ?? props.aiScore)));
  const [reason, setReason] = useState(props.review?.adjusted?.reason ?? "");
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    setSaved(false);
    try {
      await api.put(`/v1/sessions/${props.sessionId}/review/score`, { score: Number(score), reason });
      setSaved(true);
      props.onSaved();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <form class="stack card" onSubmit={submit} aria-label="Adjust the score">
      <h2>Adjust the score</h2>
      <label>
        Your score (0–100)
        <input name="adjusted-score" type="number" min={0} max={100} step={1} required value={score} onInput={(e) => setScore(e.currentTarget.value)} />
      </label>
      <label>
        Reason
        <textarea name="reason" required minLength={3} rows={3} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      </label>
      <ErrorNote error={error} />
      {saved && <p role="status">Saved. The AI's score is kept beside yours.</p>}
      <button type="submit" class="primary">
        Save adjusted score
      </button>
    </form>
  );
}

function TranscriptTurn(props: {
  turn: StoredTurn;
  personaName?: string;
  personaRole?: string;
  comments: ReviewComment[];
  canComment: boolean;
  sessionId: string;
  onCommented: () => void;
}) {
  const t = props.turn;
  const mine = t.speaker === "trainee";
  const [open, setOpen] = useState(false);
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);
  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    try {
      await api.post(`/v1/sessions/${props.sessionId}/review/comments`, { seq: t.seq, text });
      setText("");
      setOpen(false);
      props.onCommented();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <li class={`bubble ${mine ? "mine" : "theirs"} done`} id={`turn-${t.seq}`} tabIndex={-1} data-seq={t.seq} data-testid="message">
      <div class="who">
        {mine ? (
          <strong>Trainee</strong>
        ) : (
          <>
            <Avatar name={props.personaName ?? t.speaker} hue={hueOf(t.speaker)} />
            <strong>{props.personaName ?? t.speaker}</strong> <span class="muted">{props.personaRole}</span>
          </>
        )}
        <span class="muted small"> · turn {t.seq}</span>
      </div>
      <p class="text">{t.text}</p>
      {props.comments.map((c) => (
        <p key={c.id} class="comment" data-testid="comment">
          <strong>{c.author}</strong> <span class="muted small">{formatDate(c.created_at)}</span>: {c.text}
        </p>
      ))}
      {props.canComment &&
        (open ? (
          <form class="stack" onSubmit={submit}>
            <label>
              Comment on turn {t.seq}
              <textarea name="comment" required rows={2} value={text} onInput={(e) => setText(e.currentTarget.value)} />
            </label>
            <ErrorNote error={error} />
            <div class="row">
              <button type="submit" class="primary">
                Add comment
              </button>
              <button type="button" onClick={() => setOpen(false)}>
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <button class="link small" onClick={() => setOpen(true)}>
            Comment<span class="sr-only"> on turn {t.seq}</span>
          </button>
        ))}
    </li>
  );
}
