// The admin pages' form pieces: a refusal shown at the field it is about (read by screen
// readers with the field), text and select fields, editable lists and ordered picks.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, fieldError } from "../../api";
import { ErrorNote } from "../../ui";
import { type FieldError, moved } from "./specs";

export interface Notes {
  /** What the form's ids start with. */
  prefix: string;
  /** The field's aria-invalid and aria-describedby. */
  invalid: (field: string) => { "aria-invalid": boolean; "aria-describedby"?: string };
  /** The refusal's text under the field, when it is about that field. */
  note: (field: string) => ComponentChildren;
}

export const SLUG_HINT = "(lowercase letters, digits and dashes)";

const noteId = (prefix: string, field: string) => `${prefix}-${field.replace(/\W/g, "-")}-error`;

/** Notes for a refusal ``bad`` placed at one field (null: at none). */
export function notesAt(bad: FieldError | null, prefix: string): Notes {
  return {
    prefix,
    invalid: (field) => ({ "aria-invalid": bad?.field === field, "aria-describedby": bad?.field === field ? noteId(prefix, field) : undefined }),
    note: (field) =>
      bad?.field === field && (
        <p id={noteId(prefix, field)} class="field-error" role="alert">
          {bad.message}
        </p>
      ),
  };
}

/** A refusal shown at the field it is about (``alias`` moves one to another field); ``rest``
 * shows it for the whole form when it names none of ``fields``. */
export function fieldNotes(error: unknown, prefix: string, alias: Record<string, string> = {}) {
  const found = fieldError(error);
  const bad = found && { ...found, field: alias[found.field] ?? found.field };
  return {
    ...notesAt(bad, prefix),
    rest: (fields: string[]) => (bad && fields.includes(bad.field) ? null : <ErrorNote error={error} />),
  };
}

interface FieldProps {
  label: ComponentChildren;
  field: string;
  notes: Notes;
  hint?: string;
}

export function TextField(
  props: FieldProps & {
    value: string;
    onInput: (value: string) => void;
    rows?: number;
    required?: boolean;
    disabled?: boolean;
    maxLength?: number;
    type?: "text" | "number";
    min?: number;
    max?: number;
    step?: number | "any";
    name?: string;
  },
) {
  const { notes, field } = props;
  const common = {
    name: props.name ?? field,
    value: props.value,
    required: props.required,
    disabled: props.disabled,
    maxLength: props.maxLength,
    onInput: (e: { currentTarget: { value: string } }) => props.onInput(e.currentTarget.value),
    ...notes.invalid(field),
  };
  return (
    <div>
      <label>
        {props.label}
        {props.hint && <span class="muted small hint"> {props.hint}</span>}
        {props.rows ? (
          <textarea rows={props.rows} {...common} />
        ) : props.type === "number" ? (
          <input type="number" min={props.min} max={props.max} step={props.step} {...common} />
        ) : (
          <input type="text" {...common} />
        )}
      </label>
      {notes.note(field)}
    </div>
  );
}

export function SelectField(
  props: FieldProps & { value: string; onChange: (value: string) => void; options: readonly (string | [string, string])[]; name?: string },
) {
  const labelId = `${props.notes.prefix}-${props.field.replace(/\W/g, "-")}-label`;
  return (
    <div>
      <label>
        {/* Named by its label alone: a select inside a label would add its chosen option. */}
        <span id={labelId}>{props.label}</span>
        {props.hint && <span class="muted small hint"> {props.hint}</span>}
        <select name={props.name ?? props.field} aria-labelledby={labelId} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)} {...props.notes.invalid(props.field)}>
          {props.options.map((o) => {
            const [value, label] = typeof o === "string" ? [o, o] : o;
            return (
              <option key={value} value={value}>
                {label}
              </option>
            );
          })}
        </select>
      </label>
      {props.notes.note(props.field)}
    </div>
  );
}

/** A list of short texts: a row each, rows added and removed. */
export function ListField(
  props: FieldProps & { item: string; value: string[]; onChange: (value: string[]) => void; max: number; maxLength?: number },
) {
  const { value, item, field } = props;
  const set = (i: number, text: string) => props.onChange(value.map((v, j) => (j === i ? text : v)));
  return (
    <fieldset class="group" data-field={field}>
      <legend>{props.label}</legend>
      {props.hint && <p class="muted small">{props.hint}</p>}
      <ul class="plain">
        {value.map((v, i) => (
          <li key={i} class="list-row">
            <input aria-label={`${item} ${i + 1}`} value={v} maxLength={props.maxLength} onInput={(e) => set(i, e.currentTarget.value)} {...props.notes.invalid(field)} />
            <button type="button" onClick={() => props.onChange(value.filter((_, j) => j !== i))}>
              Remove<span class="sr-only"> {item.toLowerCase()} {i + 1}</span>
            </button>
          </li>
        ))}
      </ul>
      {props.notes.note(field)}
      <button type="button" disabled={value.length >= props.max} onClick={() => props.onChange([...value, ""])}>
        Add {item.toLowerCase()}
      </button>
    </fieldset>
  );
}

/** Items picked from ``options`` in an order (the first leads): moved up and down, removed. */
export function OrderedPick(
  props: FieldProps & {
    item: string;
    value: string[];
    onChange: (value: string[]) => void;
    options: { value: string; label: string }[];
    max: number;
  },
) {
  const { value, item, field } = props;
  const [adding, setAdding] = useState("");
  const labelOf = new Map(props.options.map((o) => [o.value, o.label]));
  const left = props.options.filter((o) => !value.includes(o.value));
  const name = (v: string) => labelOf.get(v) ?? v;
  return (
    <fieldset class="group" data-field={field}>
      <legend>{props.label}</legend>
      {props.hint && <p class="muted small">{props.hint}</p>}
      <ol class="picked">
        {value.length === 0 && <li class="muted small">None yet.</li>}
        {value.map((v, i) => (
          <li key={v}>
            <span class="break">
              {name(v)} <span class="muted small">{v}</span>
            </span>
            <span class="pick-actions">
              <button type="button" disabled={i === 0} onClick={() => props.onChange(moved(value, i, -1))}>
                Up<span class="sr-only"> {name(v)}</span>
              </button>
              <button type="button" disabled={i === value.length - 1} onClick={() => props.onChange(moved(value, i, 1))}>
                Down<span class="sr-only"> {name(v)}</span>
              </button>
              <button type="button" onClick={() => props.onChange(value.filter((x) => x !== v))}>
                Remove<span class="sr-only"> {name(v)}</span>
              </button>
            </span>
          </li>
        ))}
      </ol>
      {props.notes.note(field)}
      <div class="list-row">
        <select aria-label={`Add a ${item.toLowerCase()}`} value={adding} onChange={(e) => setAdding(e.currentTarget.value)} {...props.notes.invalid(field)}>
          <option value="">Choose a {item.toLowerCase()}</option>
          {left.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label} ({o.value})
            </option>
          ))}
        </select>
        <button type="button" disabled={!adding || value.length >= props.max} onClick={() => (props.onChange([...value, adding]), setAdding(""))}>
          Add<span class="sr-only"> {item.toLowerCase()}</span>
        </button>
      </div>
    </fieldset>
  );
}

/** What every editor takes: the item as loaded (null: a new one), the slug it is stored at (null
 * until it is), and what to do once it is saved. */
export interface EditorProps<Spec> {
  spec: Spec | null;
  slug: string | null;
  onSaved: (slug: string) => void;
}

/** Saving one item of content: created (POST to ``path``) or replaced (PUT at its slug). */
export function useSave(path: string, selected: string | null, onSaved: (slug: string) => void) {
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  async function save(body: { slug: string }) {
    setError(null);
    setSaved(false);
    try {
      if (selected) await api.put(`${path}/${encodeURIComponent(selected)}`, body);
      else await api.post(path, body);
      setSaved(true);
      onSaved(body.slug);
    } catch (err) {
      setError(err);
    }
  }
  return { error, setError, saved, save };
}

/** An editor's frame: its fields, a refusal no field shows, the outcome and the save button. */
export function EditorForm(props: {
  label: string;
  testId: string;
  onSubmit: () => void;
  error: unknown;
  placed: boolean;
  saved: boolean;
  children: ComponentChildren;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  // Opened from the list: the editor is where the keyboard (and, on a phone, the eye) goes next.
  useEffect(() => heading.current?.focus(), []);
  return (
    <form
      class="stack editor"
      aria-label={props.label}
      data-testid={props.testId}
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      <h2 ref={heading} tabIndex={-1}>
        {props.label}
      </h2>
      {props.children}
      {props.placed ? (
        <p class="error small">Not saved: the field marked above says why.</p>
      ) : (
        <ErrorNote error={props.error} />
      )}
      {props.saved && !props.error && <p role="status">Saved.</p>}
      <button class="primary" type="submit">
        Save
      </button>
    </form>
  );
}
