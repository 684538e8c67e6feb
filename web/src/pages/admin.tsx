// The admin's pages: people (invite, CSV import with its per-row report, role, deactivate),
// training content and a course's assignments, the knowledge base (upload, search tester,
// versions), the audit log.
import { useState } from "preact/hooks";
import { ApiError, api, describeError, fieldError } from "../api";
import { useMe } from "../app";
import type { User } from "../types";
import { ErrorNote, Loading, formatDate, useLoad } from "../ui";

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
  const teams = useLoad(() => api.get<{ id: string; name: string; members: string[] }[]>("/v1/teams"));
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
    </section>
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
    </section>
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

export function AdminAudit() {
  const events = useLoad(() => api.get<AuditEvent[]>("/v1/audit-events?limit=200"));
  const people = useLoad(() => api.get<User[]>("/v1/users"));
  const [action, setAction] = useState("");
  const [text, setText] = useState("");
  const names = new Map(people.data?.map((u) => [u.id, u.display_name]));
  const actions = [...new Set(events.data?.map((e) => e.action))].sort();
  const shown = events.data?.filter((e) => (!action || e.action === action) && (!text || `${e.target} ${JSON.stringify(e.details)}`.toLowerCase().includes(text.toLowerCase())));
  return (
    <section>
      <h1>Audit log</h1>
      <div class="row">
        <label>
          Action
          <select value={action} onChange={(e) => setAction(e.currentTarget.value)}>
            <option value="">Every action</option>
            {actions.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Contains
          <input value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
      </div>
      <ErrorNote error={events.error} />
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
            {shown?.map((e) => (
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
