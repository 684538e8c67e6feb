// People: invite one, import a CSV (a report per row), change a role, deactivate; teams and
// their members.
import { useState } from "preact/hooks";
import { api } from "../../api";
import { useMe } from "../../app";
import type { Team, User } from "../../types";
import { ErrorNote, Loading, type Loaded, useLoad } from "../../ui";
import { fieldNotes } from "./fields";

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
