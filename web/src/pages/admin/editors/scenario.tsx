// A practice situation: the product, the stage, the knowledge the coach and the persona read,
// the rubric it is scored by, and who sits across the table in the order they speak.
import { useState } from "preact/hooks";
import { api } from "../../../api";
import { useLoad } from "../../../ui";
import { EditorForm, type EditorProps, OrderedPick, SLUG_HINT, SelectField, TextField, notesAt, useSave } from "../fields";
import {
  DIFFICULTIES,
  type PersonaSpec,
  type RubricSpec,
  SCENARIO_BASES,
  STAGES,
  type ScenarioForm,
  type ScenarioSpec,
  locateError,
  placeError,
  scenarioBody,
  scenarioFields,
  scenarioForm,
} from "../specs";

const BASE_LABELS: Record<(typeof SCENARIO_BASES)[number], [string, string]> = {
  knowledge_base: ["Seller's knowledge base", "Grounds the coach and the check of the figures the trainee states."],
  customer_knowledge_base: ["Customer's own papers", "The persona reads them as its company's (an RFP, notes on their current system)."],
  vendor_website_knowledge_base: ["Vendor's public website", "What the customer has read about the vendor, never the persona's own offer."],
};

export function ScenarioEditor(props: EditorProps<ScenarioSpec>) {
  const [form, setForm] = useState<ScenarioForm>(() => scenarioForm(props.spec));
  const personas = useLoad(() => api.get<PersonaSpec[]>("/v1/personas"));
  const rubrics = useLoad(() => api.get<RubricSpec[]>("/v1/rubrics"));
  const bases = useLoad(() => api.get<{ slug: string }[]>("/v1/knowledge-bases"));
  const { error, saved, save } = useSave("/v1/scenarios", props.slug, props.onSaved);
  const bad = placeError(locateError(error), scenarioFields());
  const notes = notesAt(bad, "scenario");
  const set = <K extends keyof ScenarioForm>(key: K) => (value: ScenarioForm[K]) => setForm({ ...form, [key]: value });
  // A slug the form holds stays choosable even when the list does not have it (yet).
  const choices = (slugs: string[] | undefined, current: string, none: string): [string, string][] => [
    ["", none],
    ...[...new Set([...(slugs ?? []), ...(current ? [current] : [])])].map((s): [string, string] => [s, s]),
  ];

  return (
    <EditorForm label={props.slug ? `Edit scenario ${props.slug}` : "New scenario"} testId="scenario-editor" onSubmit={() => save(scenarioBody(form))} error={error} placed={!!bad} saved={saved}>
      <TextField label="Slug" hint={SLUG_HINT} field="slug" notes={notes} value={form.slug} onInput={set("slug")} required maxLength={64} disabled={!!props.slug} />
      <TextField label="Title" field="title" notes={notes} value={form.title} onInput={set("title")} required maxLength={200} />
      <TextField label="Product" field="product" notes={notes} value={form.product} onInput={set("product")} rows={2} required maxLength={2000} />
      <div class="pair">
        <SelectField label="Stage" field="stage" notes={notes} value={form.stage} onChange={set("stage")} options={STAGES} />
        <SelectField label="Difficulty" field="difficulty" notes={notes} value={form.difficulty} onChange={set("difficulty")} options={DIFFICULTIES} />
      </div>
      <TextField label="Description" field="description" notes={notes} value={form.description} onInput={set("description")} rows={4} required maxLength={2000} />
      {SCENARIO_BASES.map((key) => (
        <SelectField key={key} label={BASE_LABELS[key][0]} hint={BASE_LABELS[key][1]} field={key} notes={notes} value={form[key]} onChange={set(key)} options={choices(bases.data?.map((b) => b.slug), form[key], "None")} />
      ))}
      <SelectField label="Rubric" field="rubric" notes={notes} value={form.rubric} onChange={set("rubric")} options={choices(rubrics.data?.map((r) => r.slug), form.rubric, "None (sessions are not scored)")} />
      <OrderedPick
        label="Personas, in speaking order"
        hint="The first leads the conversation; up to five."
        item="Persona"
        field="personas"
        notes={notes}
        value={form.personas}
        onChange={set("personas")}
        options={(personas.data ?? []).map((p) => ({ value: p.slug, label: `${p.name}, ${p.role}` }))}
        max={5}
      />
    </EditorForm>
  );
}
