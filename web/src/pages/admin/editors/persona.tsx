// A customer persona: who they are, and what they want, object to, know and keep to themselves.
import { useState } from "preact/hooks";
import { EditorForm, type EditorProps, ListField, SLUG_HINT, TextField, notesAt, useSave } from "../fields";
import { type PersonaForm, type PersonaSpec, locateError, personaBody, personaFields, personaForm, placeError } from "../specs";

const LISTS = [
  { key: "goals", label: "Goals", item: "Goal", max: 20, hint: "What they want from the conversation." },
  { key: "objections", label: "Objections", item: "Objection", max: 20, hint: "What they push back with." },
  { key: "facts", label: "Facts", item: "Fact", max: 20, hint: "What they tell when asked." },
  { key: "hidden", label: "Hidden information", item: "Hidden item", max: 20, hint: "What they reveal only to good questions." },
  { key: "topics", label: "Topics", item: "Topic", max: 50, hint: "What they can talk about." },
] as const;

export function PersonaEditor(props: EditorProps<PersonaSpec>) {
  const [form, setForm] = useState<PersonaForm>(() => personaForm(props.spec));
  const { error, saved, save } = useSave("/v1/personas", props.slug, props.onSaved);
  const bad = placeError(locateError(error), personaFields());
  const notes = notesAt(bad, "persona");
  const set = <K extends keyof PersonaForm>(key: K) => (value: PersonaForm[K]) => setForm({ ...form, [key]: value });
  const text = (key: "slug" | "name" | "role" | "company", label: string) => (
    <TextField label={label} field={key} notes={notes} value={form[key]} onInput={set(key)} required maxLength={key === "slug" ? 64 : 200} disabled={key === "slug" && !!props.slug} hint={key === "slug" ? SLUG_HINT : undefined} />
  );

  return (
    <EditorForm label={props.slug ? `Edit persona ${props.slug}` : "New persona"} testId="persona-editor" onSubmit={() => save(personaBody(form))} error={error} placed={!!bad} saved={saved}>
      {text("slug", "Slug")}
      {text("name", "Name")}
      {text("role", "Role")}
      {text("company", "Company")}
      <TextField label="Personality" field="personality" notes={notes} value={form.personality} onInput={set("personality")} rows={4} required maxLength={2000} />
      {LISTS.map((l) => (
        <ListField key={l.key} label={l.label} item={l.item} hint={l.hint} field={l.key} notes={notes} value={form[l.key]} onChange={set(l.key)} max={l.max} maxLength={500} />
      ))}
    </EditorForm>
  );
}
