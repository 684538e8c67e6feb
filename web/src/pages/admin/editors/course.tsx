// A course: its scenarios in order, its pass score, practice or assessment, draft, published or
// archived; and who it is assigned to.
import { useState } from "preact/hooks";
import { api, fieldError } from "../../../api";
import type { User } from "../../../types";
import { ErrorNote, Loading, formatDate, useLoad } from "../../../ui";
import { EditorForm, type EditorProps, OrderedPick, SLUG_HINT, SelectField, TextField, notesAt, useSave } from "../fields";
import { type CourseForm, type CourseSpec, courseBody, courseFields, courseForm, locateError, placeError } from "../specs";

export function CourseEditor(props: EditorProps<CourseSpec>) {
  const [form, setForm] = useState<CourseForm>(() => courseForm(props.spec));
  const scenarios = useLoad(() => api.get<{ slug: string; title: string }[]>("/v1/scenarios"));
  const { error, saved, save } = useSave("/v1/courses", props.slug, props.onSaved);
  const bad = placeError(locateError(error), courseFields());
  const notes = notesAt(bad, "course");
  const set = <K extends keyof CourseForm>(key: K) => (value: CourseForm[K]) => setForm({ ...form, [key]: value });

  return (
    <EditorForm label={props.slug ? `Edit course ${props.slug}` : "New course"} testId="course-editor" onSubmit={() => save(courseBody(form))} error={error} placed={!!bad} saved={saved}>
      <TextField label="Slug" hint={SLUG_HINT} field="slug" notes={notes} value={form.slug} onInput={set("slug")} required maxLength={64} disabled={!!props.slug} />
      <TextField label="Title" field="title" notes={notes} value={form.title} onInput={set("title")} required maxLength={200} />
      <TextField label="Pass score (0–100)" field="pass_score" notes={notes} type="number" min={0} max={100} step="any" value={form.pass_score} onInput={set("pass_score")} />
      <div class="pair">
        <SelectField label="Mode" field="mode" notes={notes} value={form.mode} onChange={set("mode")} options={[["practice", "Practice (the coach helps)"], ["assessment", "Assessment (the coach stays quiet)"]]} />
        <SelectField label="Status" field="status" notes={notes} value={form.status} onChange={set("status")} options={[["draft", "Draft"], ["published", "Published (trainees see it)"], ["archived", "Archived"]]} />
      </div>
      <OrderedPick
        label="Scenarios, in order"
        item="Scenario"
        field="scenarios"
        notes={notes}
        value={form.scenarios}
        onChange={set("scenarios")}
        options={(scenarios.data ?? []).map((s) => ({ value: s.slug, label: s.title }))}
        max={20}
      />
    </EditorForm>
  );
}

interface Assignment {
  id: string;
  course: string;
  team: string | null;
  user_id: string | null;
  due_at: string | null;
}

/** Who a course is assigned to, and a form to give it to a team or one person. */
export function CourseAssignments(props: { course: string }) {
  const path = `/v1/courses/${encodeURIComponent(props.course)}/assignments`;
  const list = useLoad(() => api.get<Assignment[]>(path), [path]);
  const people = useLoad(() => api.get<User[]>("/v1/users"));
  const teams = useLoad(() => api.get<{ id: string; name: string }[]>("/v1/teams"));
  const [to, setTo] = useState<"team" | "user_id">("team");
  const [team, setTeam] = useState("");
  const [userId, setUserId] = useState("");
  const [due, setDue] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const names = new Map(people.data?.map((u) => [u.id, u.display_name]));
  const bad = fieldError(error);
  const atField = bad && (bad.field === to || bad.field === "due_at") ? bad : null;

  async function assign(e: Event) {
    e.preventDefault();
    setError(null);
    setSaved(null);
    try {
      await api.post(path, {
        ...(to === "team" ? { team } : { user_id: userId }),
        due_at: due ? new Date(due).toISOString() : null,
      });
      setSaved(`Assigned to ${to === "team" ? `team ${team}` : names.get(userId) ?? "them"}.`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  // A field's error shows under it, and screen readers read it with the field.
  const invalid = (field: string) => ({
    "aria-invalid": atField?.field === field,
    "aria-describedby": atField?.field === field ? `assign-${field}-error` : undefined,
  });
  const note = (field: string) =>
    atField?.field === field && (
      <p id={`assign-${field}-error`} class="field-error" role="alert">
        {atField.message}
      </p>
    );

  return (
    <div class="card stack" data-testid="assignments">
      <h2>Assignments of {props.course}</h2>
      <ErrorNote error={list.error} />
      {list.loading && !list.data && <Loading what="the assignments" />}
      <ul class="plain" data-testid="assignment-list">
        {list.data?.length === 0 && <li class="muted">Not assigned yet.</li>}
        {list.data?.map((a) => (
          <li key={a.id} class="row">
            <span>{a.team ? `Team ${a.team}` : names.get(a.user_id ?? "") ?? "Someone outside your teams"}</span>
            <span class="muted small">{a.due_at ? `due ${formatDate(a.due_at)}` : "no deadline"}</span>
          </li>
        ))}
      </ul>
      <form class="stack" onSubmit={assign} aria-label="Assign the course">
        <fieldset class="inline">
          <legend>Assign to</legend>
          <label>
            <input type="radio" name="assign-to" checked={to === "team"} onChange={() => (setTo("team"), setError(null))} /> A team
          </label>
          <label>
            <input type="radio" name="assign-to" checked={to === "user_id"} onChange={() => (setTo("user_id"), setError(null))} /> One
            person
          </label>
        </fieldset>
        {to === "team" ? (
          <div>
            <label>
              Team
              <input name="assign-team" list="assign-teams" required value={team} onInput={(e) => setTeam(e.currentTarget.value)} {...invalid("team")} />
            </label>
            <datalist id="assign-teams">
              {teams.data?.map((t) => (
                <option key={t.id} value={t.name} />
              ))}
            </datalist>
            {note("team")}
          </div>
        ) : (
          <div>
            <label>
              Person
              <select name="assign-user" required value={userId} onChange={(e) => setUserId(e.currentTarget.value)} {...invalid("user_id")}>
                <option value="">Choose someone</option>
                {people.data?.map((u) => (
                  <option key={u.id} value={u.id}>
                    {u.display_name} ({u.email})
                  </option>
                ))}
              </select>
            </label>
            {note("user_id")}
          </div>
        )}
        <div>
          <label>
            Deadline (optional)
            <input name="assign-due" type="datetime-local" value={due} onInput={(e) => setDue(e.currentTarget.value)} {...invalid("due_at")} />
          </label>
          {note("due_at")}
        </div>
        {!atField && <ErrorNote error={error} />}
        {saved && <p role="status">{saved}</p>}
        <button class="primary" type="submit">
          Assign
        </button>
      </form>
    </div>
  );
}
