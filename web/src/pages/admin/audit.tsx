// The audit log, filtered by the server.
import { useState } from "preact/hooks";
import { api } from "../../api";
import type { User } from "../../types";
import { Loading, formatDate, useLoad } from "../../ui";
import { fieldNotes } from "./fields";

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
