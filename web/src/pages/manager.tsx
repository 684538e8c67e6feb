// The manager's pages: the team overview, score distribution and heatmap, and one trainee's
// skills and sessions.
import { api } from "../api";
import { Heatmap, ScoreHistogram } from "../charts";
import type { ScoreDistribution, User } from "../types";
import { ErrorNote, Link, Loading, pct, useLoad } from "../ui";
import { SessionList, SkillTrends } from "./progress";

interface Overview {
  sessions: number;
  ended: number;
  completion_rate: number | null;
  scored: number;
  passed: number;
  pass_rate: number | null;
  average_score: number | null;
}

export function ManagerOverview() {
  const overview = useLoad(() => api.get<Overview>("/v1/analytics/overview"));
  const heatmap = useLoad(() => api.get<{ teams: string[]; skills: string[]; averages: (number | null)[][] }>("/v1/analytics/heatmap"));
  const scores = useLoad(() => api.get<ScoreDistribution>("/v1/analytics/score-distribution?bucket=10"));
  const people = useLoad(() => api.get<User[]>("/v1/users"));
  const o = overview.data;
  return (
    <section>
      <h1>Team overview</h1>
      <ErrorNote error={overview.error} />
      {o && (
        <dl class="stats" data-testid="overview">
          <div>
            <dt>Sessions</dt>
            <dd>{o.sessions}</dd>
          </div>
          <div>
            <dt>Completion</dt>
            <dd>{pct(o.completion_rate)}</dd>
          </div>
          <div>
            <dt>Pass rate</dt>
            <dd>{pct(o.pass_rate)}</dd>
          </div>
          <div>
            <dt>Average score</dt>
            <dd>{o.average_score ?? "—"}</dd>
          </div>
        </dl>
      )}
      <h2>Scores</h2>
      {scores.loading && <Loading what="the scores" />}
      <ErrorNote error={scores.error} />
      {scores.data && <ScoreHistogram data={scores.data} />}
      <h2>Skills by team</h2>
      {heatmap.loading && <Loading what="the heatmap" />}
      <ErrorNote error={heatmap.error} />
      {heatmap.data && <Heatmap {...heatmap.data} />}
      <h2>People</h2>
      <ErrorNote error={people.error} />
      <ul class="plain">
        {people.data
          ?.filter((u) => u.role === "trainee")
          .map((u) => (
            <li key={u.id} class="row">
              <Link to={`/manager/trainees/${u.id}`}>{u.display_name}</Link>
              <span class="muted">{u.teams.join(", ") || "no team"}</span>
            </li>
          ))}
      </ul>
    </section>
  );
}

export function TraineeDetail(props: { userId: string }) {
  const people = useLoad(() => api.get<User[]>("/v1/users"));
  const who = people.data?.find((u) => u.id === props.userId);
  return (
    <section>
      <p>
        <Link to="/manager">← Team overview</Link>
      </p>
      <h1>{who ? who.display_name : "Trainee"}</h1>
      {who && <p class="muted">{who.email} · {who.teams.join(", ") || "no team"}</p>}
      <h2>Skills over time</h2>
      <SkillTrends userId={props.userId} />
      <h2>Sessions</h2>
      <SessionList userId={props.userId} />
    </section>
  );
}
