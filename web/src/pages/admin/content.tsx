// Training content: a list per kind (personas, scenarios, rubrics, compliance rules, courses)
// and the form that edits one, with the server's refusals at their fields.
import type { FunctionComponent } from "preact";
import { useState } from "preact/hooks";
import { api } from "../../api";
import { ErrorNote, Loading, useLoad } from "../../ui";
import { CourseAssignments, CourseEditor } from "./editors/course";
import { PersonaEditor } from "./editors/persona";
import { RubricEditor } from "./editors/rubric";
import { RuleEditor } from "./editors/rule";
import { ScenarioEditor } from "./editors/scenario";
import type { EditorProps } from "./fields";

interface Kind {
  path: string;
  label: string;
  one: string;
  // Each editor takes its own kind's spec; the list hands it the one it loaded from ``path``.
  Editor: FunctionComponent<EditorProps<never>>;
}

const KINDS: Kind[] = [
  { path: "/v1/personas", label: "Personas", one: "persona", Editor: PersonaEditor },
  { path: "/v1/scenarios", label: "Scenarios", one: "scenario", Editor: ScenarioEditor },
  { path: "/v1/rubrics", label: "Rubrics", one: "rubric", Editor: RubricEditor },
  { path: "/v1/compliance-rules", label: "Compliance rules", one: "compliance rule", Editor: RuleEditor },
  { path: "/v1/courses", label: "Courses", one: "course", Editor: CourseEditor },
];

type Listed = { slug: string; title?: string; name?: string; description?: string };

export function AdminContent() {
  const [kind, setKind] = useState(0);
  const k = KINDS[kind];
  const items = useLoad(() => api.get<Listed[]>(k.path), [kind]);
  // The item in the editor: its spec as loaded (null: a new one), and its slug once stored.
  const [opened, setOpened] = useState<{ round: number; spec: unknown; slug: string | null } | null>(null);
  const [opening, setOpening] = useState(false);
  const [openError, setOpenError] = useState<unknown>(null);

  async function open(slug: string | null) {
    setOpenError(null);
    const round = (opened?.round ?? 0) + 1;
    if (slug === null) return setOpened({ round, spec: null, slug: null });
    setOpening(true);
    try {
      setOpened({ round, spec: await api.get(`${k.path}/${encodeURIComponent(slug)}`), slug });
    } catch (err) {
      setOpenError(err);
    } finally {
      setOpening(false);
    }
  }

  function saved(slug: string) {
    setOpened((o) => o && { ...o, slug });
    items.reload();
  }

  const Editor = k.Editor as FunctionComponent<EditorProps<unknown>>;
  return (
    <section>
      <h1>Training content</h1>
      <div class="row tabs" role="tablist" aria-label="Kind of content">
        {KINDS.map((x, i) => (
          <button key={x.path} role="tab" aria-selected={i === kind} class={i === kind ? "primary" : ""} onClick={() => (setKind(i), setOpened(null), setOpenError(null))}>
            {x.label}
          </button>
        ))}
      </div>
      <div class="report-grid">
        <div>
          <ErrorNote error={items.error} />
          {items.loading && !items.data && <Loading what={k.label.toLowerCase()} />}
          <ul class="plain content-list" data-testid="content-list">
            {items.data?.length === 0 && <li class="muted">None yet.</li>}
            {items.data?.map((i) => (
              <li key={i.slug}>
                <button class="link" aria-current={opened?.slug === i.slug ? "true" : undefined} onClick={() => open(i.slug)}>
                  {i.title ?? i.name ?? i.description ?? i.slug}
                </button>{" "}
                <span class="muted small">{i.slug}</span>
              </li>
            ))}
          </ul>
          <p>
            <button onClick={() => open(null)}>New {k.one}</button>
          </p>
        </div>
        <div>
          <ErrorNote error={openError} />
          {opening && <Loading what={`the ${k.one}`} />}
          {opened && <Editor key={`${kind}-${opened.round}`} spec={opened.spec} slug={opened.slug} onSaved={saved} />}
        </div>
      </div>
      {k.path === "/v1/courses" && opened?.slug && <CourseAssignments key={opened.slug} course={opened.slug} />}
    </section>
  );
}
