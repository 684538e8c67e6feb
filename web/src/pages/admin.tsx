// The admin's pages: people (invite, CSV import with its per-row report, role, deactivate,
// teams and their members), training content (a compliance rule tried on a sentence) and a
// course's assignments, the knowledge base (upload, chunking, search tester, versions), the
// audit log (filtered by the server).
import { useState } from "preact/hooks";
import { ApiError, api, describeError, fieldError } from "../api";
import { useMe } from "../app";
import type { ComplianceEvent } from "../conversation";
import type { Team, User } from "../types";
import { ErrorNote, Loading, type Loaded, formatDate, useLoad } from "../ui";

/** A refusal shown at the field it is about (``id``-prefixed notes that screen readers read
 * with the field; ``alias`` moves one to another field); ``rest`` shows it for the whole form
 * when it names none of ``fields``. */
function fieldNotes(error: unknown, prefix: string, alias: Record<string, string> = {}) {
  const found = fieldError(error);
  const bad = found && { ...found, field: alias[found.field] ?? found.field };
  const id = (field: string) => `${prefix}-${field.replace(/\W/g, "-")}-error`;
  return {
    invalid: (field: string) => ({ "aria-invalid": bad?.field === field, "aria-describedby": bad?.field === field ? id(field) : undefined }),
    note: (field: string) =>
      bad?.field === field && (
        <p id={id(field)} class="field-error" role="alert">
          {bad.message}
        </p>
      ),
    rest: (fields: string[]) => (bad && fields.includes(bad.field) ? null : <ErrorNote error={error} />),
  };
}

interface ImportRow {
  row: number;
  email: string | null;
  status: "created" | "exists" | "invalid";
  error: string | null;
  invitation_token: string | null;
}

function inviteLink(token: string): string {
  return `${location.origin}/app/invite#token=${encodeURIComponent(token)}`;
}

export function AdminPeople() {
  const me = useMe();
  const people = useLoad(() => api.get<User[]>("/v1/users"));
  const teams = useLoad(() => api.get<Team[]>("/v1/teams"));
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [role, setRole] = useState("trainee");
  const [team, setTeam] = useState("");
  const [invited, setInvited] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [report, setReport] = useState<{ created: number; exists: number; invalid: number; rows: ImportRow[] } | null>(null);
  const [importError, setImportError] = useState<unknown>(null);
  const [rowError, setRowError] = useState<unknown>(null);

  async function invite(e: Event) {
    e.preventDefault();
    setError(null);
    setInvited(null);
    try {
      const out = await api.post<{ invitation_token: string }>("/v1/users/invite", {
        email,
        display_name: name,
        role,
        teams: team ? [team] : [],
      });
      setInvited(inviteLink(out.invitation_token));
      setEmail("");
      setName("");
      people.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function importCsv(e: Event) {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    setImportError(null);
    setReport(null);
    try {
      setReport(await api.upload("/v1/users/import", file, file.name));
      people.reload();
    } catch (err) {
      setImportError(err);
    }
    input.value = "";
  }

  async function change(user: User, patch: Partial<Pick<User, "role" | "active">>) {
    setRowError(null);
    try {
      await api.patch(`/v1/users/${user.id}`, patch);
      people.reload();
    } catch (err) {
      setRowError(err);
    }
  }

  return (
    <section>
      <h1>People</h1>
      <div class="report-grid">
        <form class="card stack" onSubmit={invite} aria-label="Invite a person">
          <h2>Invite</h2>
          <label>
            E-mail
            <input name="invite-email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
          </label>
          <label>
            Name
            <input name="invite-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Role
            <select name="invite-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
              <option value="trainee">Trainee</option>
              <option value="manager">Manager</option>
              <option value="admin">Admin</option>
            </select>
          </label>
          <label>
            Team
            <select name="invite-team" value={team} onChange={(e) => setTeam(e.currentTarget.value)}>
              <option value="">No team</option>
              {teams.data?.map((t) => (
                <option key={t.id} value={t.name}>
                  {t.name}
                </option>
              ))}
            </select>
          </label>
          <ErrorNote error={error} />
          {invited && (
            <p role="status" data-testid="invite-link">
              Invited. Send them this link (it works once, for 7 days): <code class="break">{invited}</code>
            </p>
          )}
          <button class="primary" type="submit">
            Invite
          </button>
        </form>
        <div class="card stack">
          <h2>Import from CSV</h2>
          <p class="muted small">Columns: email, display_name, role, team. One invitation per row.</p>
          <label>
            CSV file
            <input name="import-file" type="file" accept=".csv,text/csv" onChange={importCsv} />
          </label>
          <ErrorNote error={importError} />
          {report && (
            <div data-testid="import-report">
              <p role="status">
                {report.created} invited, {report.exists} already there, {report.invalid} refused.
              </p>
              <div class="scroll-x" tabIndex={0} role="region" aria-label="Table (scrolls sideways)">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Line</th>
                      <th scope="col">E-mail</th>
                      <th scope="col">Result</th>
                    </tr>
                  </thead>
                  <tbody>
                    {report.rows.map((r) => (
                      <tr key={r.row} class={`import-${r.status}`}>
                        <td>{r.row}</td>
                        <td>{r.email ?? "—"}</td>
                        <td>
                          {r.status === "invalid" ? `Refused: ${r.error}` : r.status === "exists" ? "Already a user" : "Invited"}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </div>
          )}
        </div>
      </div>
      <h2>Everyone</h2>
      <ErrorNote error={people.error ?? rowError} />
      {people.loading && <Loading what="people" />}
      <div class="scroll-x" tabIndex={0} role="region" aria-label="Table (scrolls sideways)">
        <table data-testid="people">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">E-mail</th>
              <th scope="col">Teams</th>
              <th scope="col">Role</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {people.data?.map((u) => (
              <tr key={u.id}>
                <td>{u.display_name}</td>
                <td>{u.email}</td>
                <td>{u.teams.join(", ") || "—"}</td>
                <td>
                  <select aria-label={`Role of ${u.display_name}`} value={u.role} disabled={u.id === me.user_id} onChange={(e) => change(u, { role: e.currentTarget.value as User["role"] })}>
                    <option value="trainee">Trainee</option>
                    <option value="manager">Manager</option>
                    <option value="admin">Admin</option>
                  </select>
                </td>
                <td>
                  {u.invited ? "Invited " : ""}
                  {u.active ? "Active" : "Deactivated"}{" "}
                  {u.id !== me.user_id && (
                    <button class="link" onClick={() => change(u, { active: !u.active })}>
                      {u.active ? "Deactivate" : "Reactivate"}
                      <span class="sr-only"> {u.display_name}</span>
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Teams people={people.data ?? []} teams={teams} onChange={people.reload} />
    </section>
  );
}

/** Teams with their members: create one, add a person to it, take one off. */
function Teams(props: { people: User[]; teams: Loaded<Team[]>; onChange: () => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [memberError, setMemberError] = useState<unknown>(null);
  const [chosen, setChosen] = useState<Record<string, string>>({});
  const fields = fieldNotes(error, "team");
  const byId = new Map(props.people.map((u) => [u.id, u]));

  async function create(e: Event) {
    e.preventDefault();
    setError(null);
    try {
      await api.post("/v1/teams", { name });
      setName("");
      props.teams.reload();
    } catch (err) {
      setError(err);
    }
  }

  // The API replaces a team's members: the list as loaded, with one added or taken off.
  async function setMembers(team: Team, members: string[]) {
    setMemberError(null);
    try {
      await api.put(`/v1/teams/${team.id}/members`, { user_ids: members });
      setChosen({ ...chosen, [team.id]: "" });
      props.teams.reload();
      props.onChange();
    } catch (err) {
      setMemberError(err);
    }
  }

  return (
    <>
      <h2>Teams</h2>
      <form class="stack" onSubmit={create} aria-label="Create a team">
        <div>
          <label>
            New team
            <input name="team-name" required maxLength={120} value={name} onInput={(e) => setName(e.currentTarget.value)} {...fields.invalid("name")} />
          </label>
          {fields.note("name")}
        </div>
        {fields.rest(["name"])}
        <button type="submit">Create team</button>
      </form>
      <ErrorNote error={props.teams.error ?? memberError} />
      <ul class="cards" data-testid="teams">
        {props.teams.data?.length === 0 && <li class="muted">No teams yet.</li>}
        {props.teams.data?.map((t) => (
          <li key={t.id} class="card stack" data-testid="team">
            <h3 class="break">{t.name}</h3>
            <ul class="plain">
              {t.members.length === 0 && <li class="muted small">No members yet.</li>}
              {t.members.map((id) => {
                const who = byId.get(id)?.display_name ?? "Someone";
                return (
                  <li key={id} class="row">
                    <span class="break">
                      {who} <span class="muted small">{byId.get(id)?.email}</span>
                    </span>
                    <button class="link" onClick={() => setMembers(t, t.members.filter((m) => m !== id))}>
                      Remove<span class="sr-only"> {who} from {t.name}</span>
                    </button>
                  </li>
                );
              })}
            </ul>
            <form class="stack" onSubmit={(e) => (e.preventDefault(), setMembers(t, [...t.members, chosen[t.id]]))}>
              <label>
                Add to {t.name}
                <select required value={chosen[t.id] ?? ""} onChange={(e) => setChosen({ ...chosen, [t.id]: e.currentTarget.value })}>
                  <option value="">Choose someone</option>
                  {props.people
                    .filter((u) => !t.members.includes(u.id))
                    .map((u) => (
                      <option key={u.id} value={u.id}>
                        {u.display_name} ({u.email})
                      </option>
                    ))}
                </select>
              </label>
              <button type="submit">
                Add<span class="sr-only"> to {t.name}</span>
              </button>
            </form>
          </li>
        ))}
      </ul>
    </>
  );
}

// --- content ----------------------------------------------------------------------------

const KINDS = [
  { path: "/v1/personas", label: "Personas", key: "slug" },
  { path: "/v1/scenarios", label: "Scenarios", key: "slug" },
  { path: "/v1/rubrics", label: "Rubrics", key: "slug" },
  { path: "/v1/compliance-rules", label: "Compliance rules", key: "slug" },
  { path: "/v1/courses", label: "Courses", key: "slug" },
] as const;

export function AdminContent() {
  const [kind, setKind] = useState(0);
  const k = KINDS[kind];
  const items = useLoad(() => api.get<Record<string, unknown>[]>(k.path), [kind]);
  const [selected, setSelected] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const field = fieldError(error);

  function open(slug: string | null) {
    setSelected(slug);
    setError(null);
    setSaved(null);
    const item = slug ? items.data?.find((i) => i[k.key] === slug) : null;
    setText(item ? JSON.stringify(item, null, 2) : "{\n  \"slug\": \"\"\n}");
  }

  async function save(e: Event) {
    e.preventDefault();
    setError(null);
    setSaved(null);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      setError(new ApiError(422, "invalid_json", `the text is not JSON: ${(err as Error).message}`));
      return;
    }
    try {
      if (selected) await api.put(`${k.path}/${selected}`, body);
      else await api.post(k.path, body);
      setSaved("Saved.");
      items.reload();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <section>
      <h1>Training content</h1>
      <div class="row" role="tablist" aria-label="Kind of content">
        {KINDS.map((x, i) => (
          <button key={x.path} role="tab" aria-selected={i === kind} class={i === kind ? "primary" : ""} onClick={() => (setKind(i), setSelected(null), setText(""))}>
            {x.label}
          </button>
        ))}
      </div>
      <div class="report-grid">
        <div>
          <ErrorNote error={items.error} />
          <ul class="plain">
            {items.data?.map((i) => (
              <li key={String(i[k.key])}>
                <button class="link" onClick={() => open(String(i[k.key]))}>
                  {String(i.title ?? i.name ?? i.description ?? i[k.key])}
                </button>{" "}
                <span class="muted small">{String(i[k.key])}</span>
              </li>
            ))}
          </ul>
          <button onClick={() => open(null)}>New {k.label.toLowerCase().replace(/s$/, "")}</button>
        </div>
        {(text || selected) && (
          <form class="stack" onSubmit={save}>
            <label>
              {selected ? `Edit ${selected}` : `New ${k.label.toLowerCase().replace(/s$/, "")}`} (JSON)
              <textarea
                name="content"
                rows={18}
                spellcheck={false}
                value={text}
                aria-invalid={!!error}
                aria-describedby={error ? "content-error" : undefined}
                onInput={(e) => setText(e.currentTarget.value)}
              />
            </label>
            {error != null && (
              <p id="content-error" class="field-error" role="alert">
                {field ? (
                  <>
                    Field <code>{field.field}</code>: {field.message}
                  </>
                ) : (
                  describeError(error)
                )}
              </p>
            )}
            {saved && <p role="status">{saved}</p>}
            <button class="primary" type="submit">
              Save
            </button>
          </form>
        )}
      </div>
      {k.path === "/v1/courses" && selected && <CourseAssignments key={selected} course={selected} />}
      {k.path === "/v1/compliance-rules" && (text || selected) && <TryRule rule={text} />}
    </section>
  );
}

/** The rule in the editor (saved or not) tried on a sentence by the server's compliance
 * checker: the findings a session would show, or that the sentence keeps the rule. */
function TryRule(props: { rule: string }) {
  const [sentence, setSentence] = useState("");
  const [findings, setFindings] = useState<(ComplianceEvent & { similarity: number | null })[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const fields = fieldNotes(error, "try");
  const bad = fieldError(error);

  async function run(e: Event) {
    e.preventDefault();
    setError(null);
    setFindings(null);
    let rule: unknown;
    try {
      rule = JSON.parse(props.rule);
    } catch (err) {
      setError(new ApiError(422, "invalid_json", `the rule is not JSON: ${(err as Error).message}`));
      return;
    }
    try {
      setFindings((await api.post<{ findings: NonNullable<typeof findings> }>("/v1/compliance-rules/try", { rule, sentence })).findings);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <form class="card stack" onSubmit={run} aria-label="Try this rule on a sentence" data-testid="try-rule">
      <h2>Try this rule on a sentence</h2>
      <div>
        <label>
          Sentence
          <textarea name="try-sentence" rows={2} required maxLength={2000} value={sentence} onInput={(e) => setSentence(e.currentTarget.value)} {...fields.invalid("sentence")} />
        </label>
        {fields.note("sentence")}
      </div>
      {bad?.field.startsWith("rule.") ? (
        <p class="field-error" role="alert">
          The rule's field <code>{bad.field.slice(5)}</code>: {bad.message}
        </p>
      ) : (
        fields.rest(["sentence"])
      )}
      <button type="submit">Try it</button>
      {findings?.length === 0 && <p role="status">The sentence keeps the rule.</p>}
      {findings && findings.length > 0 && (
        <ul class="plain" data-testid="try-findings">
          {findings.map((f, i) => (
            <li key={i} class={`finding sev-${f.severity}`}>
              <strong>Breaks {f.rule}</strong> ({f.severity}
              {f.similarity != null ? `, similarity ${f.similarity.toFixed(2)}` : ""}): <q>{f.excerpt}</q>
            </li>
          ))}
        </ul>
      )}
    </form>
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
function CourseAssignments(props: { course: string }) {
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

// --- knowledge ----------------------------------------------------------------------------

interface KnowledgeBase {
  slug: string;
  chunking: { chunk_words: number; overlap_words: number; split_on_headings: boolean };
  live_version: number | null;
  versions: number[];
  documents: { id: string; filename: string; title: string; size_bytes: number; chunks: number; created_at: string }[];
}

interface SearchHit {
  chunk: { chunk_id: string; title: string; heading?: string | null; text: string };
  stages: Record<string, { score: number; rank: number }>;
}

export function AdminKnowledge() {
  const bases = useLoad(() => api.get<KnowledgeBase[]>("/v1/knowledge-bases"));
  const [slug, setSlug] = useState("product");
  const kb = useLoad(() => api.get<KnowledgeBase>(`/v1/knowledge-bases/${slug}`), [slug]);
  const [progress, setProgress] = useState<number | null>(null);
  const [uploadNote, setUploadNote] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);

  async function upload(e: Event) {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    setError(null);
    setUploadNote(null);
    setProgress(0);
    try {
      const out = await api.upload<{ title?: string; chunks?: number }>(`/v1/knowledge-bases/${slug}/documents`, file, file.name, setProgress);
      setUploadNote(`${file.name} is indexed${out?.chunks != null ? ` (${out.chunks} chunks)` : ""}.`);
      kb.reload();
    } catch (err) {
      setError(err);
    } finally {
      setProgress(null);
      input.value = "";
    }
  }

  async function search(e: Event) {
    e.preventDefault();
    setError(null);
    try {
      setHits((await api.get<{ hits: SearchHit[] }>(`/v1/knowledge-bases/${slug}/search?q=${encodeURIComponent(query)}&top_k=5`)).hits);
    } catch (err) {
      setError(err);
    }
  }

  async function activate(version: number) {
    setError(null);
    try {
      await api.post(`/v1/knowledge-bases/${slug}/versions/${version}/activate`);
      kb.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function reindex() {
    setError(null);
    try {
      await api.post(`/v1/knowledge-bases/${slug}/reindex`);
      kb.reload();
    } catch (err) {
      setError(err);
    }
  }

  const k = kb.data;
  return (
    <section>
      <h1>Knowledge base</h1>
      <label>
        Knowledge base
        <select value={slug} onChange={(e) => setSlug(e.currentTarget.value)}>
          {(bases.data ?? [{ slug }]).map((b) => (
            <option key={b.slug} value={b.slug}>
              {b.slug}
            </option>
          ))}
        </select>
      </label>
      <ErrorNote error={error ?? kb.error} />
      {k && (
        <>
          <p class="muted" data-testid="kb-status">
            Live version {k.live_version ?? "none"} · versions kept {k.versions.join(", ") || "—"} · chunks of{" "}
            {k.chunking.chunk_words} words, {k.chunking.overlap_words} overlapping
          </p>
          <div class="row">
            {k.versions.map((v) => (
              <button key={v} disabled={v === k.live_version} onClick={() => activate(v)}>
                {v === k.live_version ? `Version ${v} (live)` : `Make version ${v} live`}
              </button>
            ))}
            <button onClick={reindex}>Re-index into a new version</button>
          </div>
          <Chunking key={k.slug} slug={k.slug} chunking={k.chunking} onSaved={kb.reload} />
          <h2>Documents</h2>
          <ul class="plain" data-testid="documents">
            {k.documents.map((d) => (
              <li key={d.id}>
                <strong>{d.title}</strong> <span class="muted small">{d.filename} · {d.chunks} chunks · {formatDate(d.created_at)}</span>
              </li>
            ))}
          </ul>
        </>
      )}
      <label>
        Upload a document (PDF, DOCX, TXT, Markdown)
        <input name="document" type="file" accept=".pdf,.docx,.txt,.md,.markdown" onChange={upload} />
      </label>
      {progress != null && <progress max={1} value={progress} aria-label="Upload progress" />}
      {uploadNote && <p role="status">{uploadNote}</p>}
      <h2>Search tester</h2>
      <form class="row" onSubmit={search}>
        <label class="grow">
          Query
          <input name="query" required value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <button class="primary" type="submit">
          Search
        </button>
      </form>
      {hits && (
        <ol class="plain" data-testid="search-hits">
          {hits.length === 0 && <li class="muted">Nothing found.</li>}
          {hits.map((h) => (
            <li key={h.chunk.chunk_id} class="card">
              <strong>
                {h.chunk.title}
                {h.chunk.heading ? ` — ${h.chunk.heading}` : ""}
              </strong>
              <p class="small">{h.chunk.text.slice(0, 300)}</p>
              <p class="small muted">
                {["dense", "sparse", "fused", "reranked"]
                  .filter((s) => h.stages[s])
                  .map((s) => `${s}: #${h.stages[s].rank} (${h.stages[s].score.toFixed(3)})`)
                  .join(" · ")}
              </p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** A knowledge base's chunking; the next re-index cuts its documents this way. */
function Chunking(props: { slug: string; chunking: KnowledgeBase["chunking"]; onSaved: () => void }) {
  const [words, setWords] = useState(String(props.chunking.chunk_words));
  const [overlap, setOverlap] = useState(String(props.chunking.overlap_words));
  const [headings, setHeadings] = useState(props.chunking.split_on_headings);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  // The check that the overlap is below the chunk size is about the whole chunking.
  const fields = fieldNotes(error, "chunking", { chunking: "chunking.overlap_words" });

  async function save(e: Event) {
    e.preventDefault();
    setError(null);
    setSaved(false);
    try {
      const chunking = { chunk_words: Number(words), overlap_words: Number(overlap), split_on_headings: headings };
      await api.put(`/v1/knowledge-bases/${props.slug}`, { chunking });
      setSaved(true);
      props.onSaved();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <form class="card stack" onSubmit={save} aria-label="Chunking" data-testid="chunking">
      <h2>Chunking</h2>
      <div>
        <label>
          Words per chunk
          <input name="chunk-words" type="number" required min={16} max={2000} value={words} onInput={(e) => setWords(e.currentTarget.value)} {...fields.invalid("chunking.chunk_words")} />
        </label>
        {fields.note("chunking.chunk_words")}
      </div>
      <div>
        <label>
          Words repeated from the previous chunk
          <input name="overlap-words" type="number" required min={0} max={1999} value={overlap} onInput={(e) => setOverlap(e.currentTarget.value)} {...fields.invalid("chunking.overlap_words")} />
        </label>
        {fields.note("chunking.overlap_words")}
      </div>
      <label>
        <input name="split-on-headings" type="checkbox" checked={headings} onChange={(e) => setHeadings(e.currentTarget.checked)} /> Never let a chunk cross a heading
      </label>
      {fields.rest(["chunking.chunk_words", "chunking.overlap_words"])}
      {saved && <p role="status">Saved. Re-index to cut the documents this way.</p>}
      <button class="primary" type="submit">
        Save chunking
      </button>
    </form>
  );
}

// --- audit ----------------------------------------------------------------------------

interface AuditEvent {
  id: number;
  actor_user_id: string | null;
  action: string;
  target: string;
  details: Record<string, unknown>;
  request_id: string | null;
  created_at: string;
}

// The day a date field names, as the server's [from, to) times: from its first moment (here)
// to the next day's.
function dayStart(day: string, plus = 0): string {
  const d = new Date(`${day}T00:00`);
  d.setDate(d.getDate() + plus);
  return d.toISOString();
}

export function AdminAudit() {
  const [filter, setFilter] = useState({ actor: "", action: "", target: "", from: "", to: "" });
  const [query, setQuery] = useState("");
  const events = useLoad(() => api.get<AuditEvent[]>(`/v1/audit-events?limit=200${query}`), [query]);
  const people = useLoad(() => api.get<User[]>("/v1/users"));
  const names = new Map(people.data?.map((u) => [u.id, u.display_name]));
  const actions = [...new Set(events.data?.map((e) => e.action))].sort();
  const fields = fieldNotes(events.error, "audit");
  const set = (key: keyof typeof filter) => (e: { currentTarget: { value: string } }) => setFilter({ ...filter, [key]: e.currentTarget.value });

  function apply(e: Event) {
    e.preventDefault();
    const q = new URLSearchParams();
    if (filter.actor) q.set("actor", filter.actor);
    if (filter.action.trim()) q.set("action", filter.action.trim());
    if (filter.target.trim()) q.set("target", filter.target.trim());
    if (filter.from) q.set("from", dayStart(filter.from));
    if (filter.to) q.set("to", dayStart(filter.to, 1));
    setQuery(q.toString() ? `&${q}` : "");
    events.reload();
  }

  return (
    <section>
      <h1>Audit log</h1>
      <form class="row" onSubmit={apply} aria-label="Filter the audit log">
        <label>
          Who
          <select value={filter.actor} onChange={set("actor")}>
            <option value="">Anyone</option>
            {people.data?.map((u) => (
              <option key={u.id} value={u.id}>
                {u.display_name}
              </option>
            ))}
          </select>
        </label>
        <div>
          <label>
            Action
            <input name="audit-action" list="audit-actions" maxLength={64} value={filter.action} onInput={set("action")} {...fields.invalid("action")} />
          </label>
          <datalist id="audit-actions">
            {actions.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
          {fields.note("action")}
        </div>
        <label>
          Target contains
          <input name="audit-target" maxLength={300} value={filter.target} onInput={set("target")} />
        </label>
        <div>
          <label>
            From
            <input name="audit-from" type="date" value={filter.from} onInput={set("from")} {...fields.invalid("from")} />
          </label>
          {fields.note("from")}
        </div>
        <div>
          <label>
            To
            <input name="audit-to" type="date" value={filter.to} onInput={set("to")} {...fields.invalid("to")} />
          </label>
          {fields.note("to")}
        </div>
        <button class="primary" type="submit">
          Show
        </button>
      </form>
      {fields.rest(["action", "from", "to"])}
      {events.loading && <Loading what="the audit log" />}
      <div class="scroll-x" tabIndex={0} role="region" aria-label="Table (scrolls sideways)">
        <table data-testid="audit">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {events.data?.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No actions match.
                </td>
              </tr>
            )}
            {events.data?.map((e) => (
              <tr key={e.id}>
                <td>{formatDate(e.created_at)}</td>
                <td>{e.actor_user_id ? names.get(e.actor_user_id) ?? e.actor_user_id.slice(0, 8) : "operator"}</td>
                <td>{e.action}</td>
                <td class="break">{e.target}</td>
                <td class="small break">{JSON.stringify(e.details)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
