// My progress: a trend line per skill (first attempt, best, improvement), and past sessions.
import { api } from "../api";
import { useMe } from "../app";
import { TrendChart } from "../charts";
import type { SessionSummary, SkillTrend } from "../types";
import { ErrorNote, Link, Loading, formatDate, useLoad } from "../ui";

export function SkillTrends(props: { userId: string }) {
  const trend = useLoad(() => api.get<SkillTrend>(`/v1/analytics/trainees/${props.userId}/skills`), [props.userId]);
  if (trend.loading) return <Loading what="skills" />;
  if (trend.error) return <ErrorNote error={trend.error} />;
  if (!trend.data?.skills.length) return <p class="muted">No scored session yet.</p>;
  return (
    <div class="charts">
      {trend.data.skills.map((s) => (
        <div key={s.skill} class="card">
          <TrendChart title={s.skill} points={s.points} />
          <p class="small">
            first {Math.round(s.first)} · best {Math.round(s.best)} · improvement {s.improvement >= 0 ? "+" : ""}
            {Math.round(s.improvement)}
          </p>
        </div>
      ))}
    </div>
  );
}

export function SessionList(props: { userId?: string; linkTo?: (s: SessionSummary) => string }) {
  const query = props.userId ? `?user_id=${props.userId}` : "";
  const sessions = useLoad(() => api.get<SessionSummary[]>(`/v1/sessions${query}`), [query]);
  if (sessions.loading) return <Loading what="sessions" />;
  if (sessions.error) return <ErrorNote error={sessions.error} />;
  if (!sessions.data?.length) return <p class="muted">No sessions yet.</p>;
  return (
    <div class="scroll-x" tabIndex={0} role="region" aria-label="Table (scrolls sideways)">
      <table class="list" data-testid="sessions">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Scenario</th>
            <th scope="col">Mode</th>
            <th scope="col">Score</th>
            <th scope="col">Manager</th>
          </tr>
        </thead>
        <tbody>
          {sessions.data.map((s) => (
            <tr key={s.id}>
              <td>
                <Link to={props.linkTo ? props.linkTo(s) : `/sessions/${s.id}`}>{formatDate(s.created_at)}</Link>
              </td>
              <td>{s.scenario_title}</td>
              <td>{s.mode}</td>
              <td>{s.score == null ? s.status : `${Math.round(s.score)}${s.passed ? " ✓" : ""}`}</td>
              <td>{s.reviewed_score == null ? "—" : Math.round(s.reviewed_score)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Progress() {
  const me = useMe();
  return (
    <section>
      <h1>My progress</h1>
      <h2>Skills over time</h2>
      <SkillTrends userId={me.user_id} />
      <h2>Past sessions</h2>
      <SessionList />
    </section>
  );
}
