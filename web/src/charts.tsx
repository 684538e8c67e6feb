// Charts drawn as inline SVG: a line per skill over time, and the team × skill heatmap.
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
