// The trainee's start page: assigned courses with deadlines and progress, and free practice.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { navigate } from "../router";
import type { MyCourse, Scenario, Session } from "../types";
import { ErrorNote, Loading, formatDate, toast, useLoad } from "../ui";
import { notify } from "./settings";

const SEEN_KEY = "salesboost.seen-courses";

export function startSession(scenario: string, mode: string, course?: string): Promise<void> {
  return api
    .post<Session>("/v1/sessions", course ? { scenario, course } : { scenario, mode })
    .then((s) => navigate(`/practice/${s.id}`));
}

function dueSoon(due: string | null): boolean {
  return !!due && new Date(due).getTime() - Date.now() < 3 * 86_400_000;
}

export function TraineeHome() {
  const courses = useLoad(() => api.get<MyCourse[]>("/v1/me/courses"));
  const scenarios = useLoad(() => api.get<Scenario[]>("/v1/scenarios"));
  const [mode, setMode] = useState<"practice" | "assessment">("practice");
  const [error, setError] = useState<unknown>(null);
  const [starting, setStarting] = useState<string | null>(null);

  // A toast for courses assigned since the last visit and for deadlines close at hand.
  useEffect(() => {
    if (!courses.data) return;
    const seen = new Set<string>(JSON.parse(localStorage.getItem(SEEN_KEY) ?? "[]"));
    for (const c of courses.data) {
      if (!seen.has(c.slug)) toast(`New assignment: ${c.title}${c.due_at ? `, due ${formatDate(c.due_at)}` : ""}`, notify);
      else if (!c.completed && dueSoon(c.due_at)) toast(`Deadline soon: ${c.title} is due ${formatDate(c.due_at)}`, notify);
    }
    localStorage.setItem(SEEN_KEY, JSON.stringify(courses.data.map((c) => c.slug)));
  }, [courses.data]);

  const start = (scenario: string, m: string, course?: string) => {
    setStarting(`${course ?? ""}:${scenario}`);
    setError(null);
    startSession(scenario, m, course).catch((e) => {
      setError(e);
      setStarting(null);
    });
  };

  return (
    <section>
      <h1>Practice</h1>
      <ErrorNote error={error} />
      <h2>My courses</h2>
      {courses.loading && <Loading what="your courses" />}
      <ErrorNote error={courses.error} />
      {courses.data?.length === 0 && <p class="muted">No course is assigned to you yet.</p>}
      <ul class="cards">
        {courses.data?.map((c) => {
          const done = c.scenarios.filter((s) => s.passed).length;
          return (
            <li class="card" key={c.slug} data-testid={`course-${c.slug}`}>
              <h3>{c.title}</h3>
              <p class="muted">
                {c.mode === "assessment" ? "Assessment (no hints)" : "Practice"} · pass at {c.pass_score} ·{" "}
                <span class={dueSoon(c.due_at) && !c.completed ? "warn" : ""}>due {formatDate(c.due_at)}</span>
              </p>
              <p>
                <progress max={c.scenarios.length} value={done} aria-label={`${c.title}: ${done} of ${c.scenarios.length} passed`} />{" "}
                {done} of {c.scenarios.length} passed{c.completed ? " — completed" : ""}
              </p>
              <ul class="plain">
                {c.scenarios.map((s) => (
                  <li key={s.slug} class="row">
                    <span>
                      {s.title}{" "}
                      <span class="muted">
                        best {s.best_score ?? "—"} {s.passed ? "✓ passed" : ""}
                      </span>
                    </span>
                    <button onClick={() => start(s.slug, c.mode, c.slug)} disabled={starting !== null}>
                      {starting === `${c.slug}:${s.slug}` ? "Starting…" : "Start"}
                      <span class="sr-only"> {s.title}</span>
                    </button>
                  </li>
                ))}
              </ul>
            </li>
          );
        })}
      </ul>

      <h2>Free practice</h2>
      <fieldset class="inline">
        <legend>Mode</legend>
        <label>
          <input type="radio" name="mode" checked={mode === "practice"} onChange={() => setMode("practice")} /> Practice
          (coach hints)
        </label>
        <label>
          <input type="radio" name="mode" checked={mode === "assessment"} onChange={() => setMode("assessment")} />{" "}
          Assessment (no hints)
        </label>
      </fieldset>
      {scenarios.loading && <Loading what="scenarios" />}
      <ErrorNote error={scenarios.error} />
      <ul class="cards">
        {scenarios.data?.map((s) => (
          <li class="card" key={s.slug} data-testid={`scenario-${s.slug}`}>
            <h3>{s.title}</h3>
            <p class="muted">
              {s.stage} · {s.difficulty} · {s.personas.map((p) => `${p.name} (${p.role})`).join(", ")}
            </p>
            <p>{s.description}</p>
            <button class="primary" onClick={() => start(s.slug, mode)} disabled={starting !== null}>
              {starting === `:${s.slug}` ? "Starting…" : "Start"}
              <span class="sr-only"> {s.title}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
