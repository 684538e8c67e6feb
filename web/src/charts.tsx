// Charts drawn as inline SVG: a line per skill over time, the team × skill heatmap, and the
// distribution of scores as bars.
import type { ScoreDistribution } from "./types";
import { hueOf } from "./ui";

export function TrendChart(props: { title: string; points: { at: string; score: number }[] }) {
  const w = 320;
  const h = 120;
  const pad = 24;
  const pts = props.points;
  const xs = pts.map((_, i) => (pts.length === 1 ? w / 2 : pad + (i * (w - 2 * pad)) / (pts.length - 1)));
  const ys = pts.map((p) => h - pad - (p.score / 100) * (h - 2 * pad));
  const line = xs.map((x, i) => `${i ? "L" : "M"}${x.toFixed(1)},${ys[i].toFixed(1)}`).join(" ");
  const summary = pts.map((p) => Math.round(p.score)).join(", ");
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`${props.title}: scores over time ${summary}`}>
        {[0, 50, 100].map((v) => {
          const y = h - pad - (v / 100) * (h - 2 * pad);
          return (
            <g key={v}>
              <line x1={pad} x2={w - pad} y1={y} y2={y} class="grid" />
              <text x={2} y={y + 4} class="axis">
                {v}
              </text>
            </g>
          );
        })}
        <path d={line} fill="none" stroke={`hsl(${hueOf(props.title)} 60% 35%)`} stroke-width={2} />
        {xs.map((x, i) => (
          <circle key={i} cx={x} cy={ys[i]} r={3} fill={`hsl(${hueOf(props.title)} 60% 35%)`} />
        ))}
      </svg>
      <figcaption>{props.title}</figcaption>
    </figure>
  );
}

/** Red (low) through amber to green (high); blank where nobody was scored. */
export function heatColor(score: number | null): string {
  if (score == null) return "transparent";
  const hue = Math.round((Math.max(0, Math.min(100, score)) / 100) * 120);
  return `hsl(${hue} 70% 82%)`;
}

export function Heatmap(props: { teams: string[]; skills: string[]; averages: (number | null)[][] }) {
  if (props.teams.length === 0) return <p class="muted">No scored sessions in your teams yet.</p>;
  return (
    <div class="scroll-x" tabIndex={0} role="region" aria-label="Table (scrolls sideways)">
      <table class="heatmap" data-testid="heatmap">
        <caption class="sr-only">Average score per team and skill</caption>
        <thead>
          <tr>
            <th scope="col">Team</th>
            {props.skills.map((s) => (
              <th scope="col" key={s}>
                {s}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.teams.map((t, r) => (
            <tr key={t}>
              <th scope="row">{t}</th>
              {props.skills.map((s, c) => {
                const v = props.averages[r][c];
                return (
                  <td key={s} style={{ background: heatColor(v) }}>
                    {v == null ? "—" : Math.round(v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The histogram in one sentence, for the chart's description. */
export function describeDistribution(d: ScoreDistribution): string {
  const sessions = (n: number) => `${n} scored session${n === 1 ? "" : "s"}`;
  const most = d.buckets.reduce((a, b) => (b.sessions > a.sessions ? b : a), d.buckets[0]);
  return `${sessions(d.scored)}, ${d.passed} passed; the most, ${most.sessions}, scored ${most.low}–${most.high}.`;
}

/** Scored sessions per score range as bars, with the numbers in a table for screen readers. */
export function ScoreHistogram(props: { data: ScoreDistribution }) {
  const d = props.data;
  if (d.scored === 0)
    return (
      <p class="muted" data-testid="score-distribution-empty">
        No scored sessions in your teams yet.
      </p>
    );
  const w = 320;
  const h = 140;
  const left = 24;
  const bottom = 18;
  const top = 12;
  const slot = (w - left - 4) / d.buckets.length;
  const max = Math.max(...d.buckets.map((b) => b.sessions));
  const y = (n: number) => h - bottom - (n / max) * (h - bottom - top);
  return (
    <figure class="chart histogram" data-testid="score-distribution">
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-labelledby="score-distribution-title" aria-describedby="score-distribution-desc">
        <title id="score-distribution-title">Scored sessions per AI score range</title>
        <desc id="score-distribution-desc">{describeDistribution(d)}</desc>
        {[0, max].map((v) => (
          <g key={v}>
            <line x1={left} x2={w - 4} y1={y(v)} y2={y(v)} class="grid" />
            <text x={2} y={y(v) + 3} class="axis">
              {v}
            </text>
          </g>
        ))}
        {d.buckets.map((b, i) => {
          const x = left + i * slot;
          return (
            <g key={b.low}>
              {b.sessions > 0 && <rect x={x + 2} y={y(b.sessions)} width={slot - 4} height={y(0) - y(b.sessions)} class="bar" />}
              {b.sessions > 0 && (
                <text x={x + slot / 2} y={y(b.sessions) - 2} class="axis count">
                  {b.sessions}
                </text>
              )}
              <text x={x + slot / 2} y={h - 5} class="axis count">
                {b.low}
              </text>
            </g>
          );
        })}
      </svg>
      <table class="sr-only">
        <caption>Scored sessions per AI score range</caption>
        <thead>
          <tr>
            <th scope="col">Score</th>
            <th scope="col">Sessions</th>
          </tr>
        </thead>
        <tbody>
          {d.buckets.map((b) => (
            <tr key={b.low}>
              <th scope="row">
                {b.low}–{b.high}
              </th>
              <td>{b.sessions}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <figcaption>
        {d.scored} scored, {d.passed} passed (the AI's scores, in ranges of {d.bucket})
      </figcaption>
    </figure>
  );
}
