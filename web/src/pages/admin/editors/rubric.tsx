// A rubric: the pass score, and criteria (one skill each) made of weighted yes/no checks, each
// of a kind with the fields it reads.
import { useState } from "preact/hooks";
import { EditorForm, type EditorProps, ListField, type Notes, SLUG_HINT, SelectField, TextField, notesAt, useSave } from "../fields";
import {
  CHECK_KINDS,
  type CheckForm,
  type CriterionForm,
  type RubricForm,
  type RubricSpec,
  locateError,
  newCheck,
  newCriterion,
  placeError,
  rubricBody,
  rubricFields,
  rubricForm,
} from "../specs";

const KIND_LABELS: [string, string][] = [
  ["judge", "Judge: the judge model answers the question"],
  ["pattern", "Pattern: a trainee turn matches a regular expression"],
  ["questions", "Questions: the trainee asked at least so many"],
  ["semantic", "Semantic: a trainee sentence is like an example"],
];

export function RubricEditor(props: EditorProps<RubricSpec>) {
  const [form, setForm] = useState<RubricForm>(() => rubricForm(props.spec));
  const { error, saved, save } = useSave("/v1/rubrics", props.slug, props.onSaved);
  const bad = placeError(locateError(error), rubricFields(form));
  const notes = notesAt(bad, "rubric");
  const setCriteria = (criteria: CriterionForm[]) => setForm({ ...form, criteria });
  const setCriterion = (i: number, c: CriterionForm) => setCriteria(form.criteria.map((x, j) => (j === i ? c : x)));

  return (
    <EditorForm label={props.slug ? `Edit rubric ${props.slug}` : "New rubric"} testId="rubric-editor" onSubmit={() => save(rubricBody(form))} error={error} placed={!!bad} saved={saved}>
      <TextField label="Slug" hint={SLUG_HINT} field="slug" notes={notes} value={form.slug} onInput={(slug) => setForm({ ...form, slug })} required maxLength={64} disabled={!!props.slug} />
      <TextField label="Name" field="name" notes={notes} value={form.name} onInput={(name) => setForm({ ...form, name })} required maxLength={200} />
      <TextField label="Pass score (0–100)" field="pass_score" notes={notes} type="number" min={0} max={100} step="any" value={form.pass_score} onInput={(pass_score) => setForm({ ...form, pass_score })} />
      <h3>Criteria</h3>
      {notes.note("criteria")}
      {form.criteria.map((c, i) => (
        <Criterion key={i} index={i} criterion={c} notes={notes} onChange={(x) => setCriterion(i, x)} onRemove={form.criteria.length > 1 ? () => setCriteria(form.criteria.filter((_, j) => j !== i)) : undefined} />
      ))}
      <button type="button" disabled={form.criteria.length >= 20} onClick={() => setCriteria([...form.criteria, newCriterion()])}>
        Add criterion
      </button>
    </EditorForm>
  );
}

function Criterion(props: { index: number; criterion: CriterionForm; notes: Notes; onChange: (c: CriterionForm) => void; onRemove?: () => void }) {
  const { criterion: c, notes, onChange } = props;
  const at = `criteria.${props.index}`;
  const n = props.index + 1;
  const setCheck = (j: number, k: CheckForm) => onChange({ ...c, checks: c.checks.map((x, m) => (m === j ? k : x)) });
  return (
    <fieldset class="group" data-testid="criterion">
      <legend>Criterion {n}</legend>
      <div class="pair">
        <TextField label="Skill" hint={SLUG_HINT} field={`${at}.skill`} notes={notes} value={c.skill} onInput={(skill) => onChange({ ...c, skill })} required maxLength={64} />
        <TextField label="Criterion weight" field={`${at}.weight`} notes={notes} type="number" min={0} max={100} step="any" value={c.weight} onInput={(weight) => onChange({ ...c, weight })} />
      </div>
      <TextField label="Criterion name" field={`${at}.name`} notes={notes} value={c.name} onInput={(name) => onChange({ ...c, name })} required maxLength={120} />
      {notes.note(`${at}.checks`)}
      {c.checks.map((k, j) => (
        <Check key={j} at={`${at}.checks.${j}`} name={`Check ${j + 1} of criterion ${n}`} check={k} notes={notes} onChange={(x) => setCheck(j, x)} onRemove={c.checks.length > 1 ? () => onChange({ ...c, checks: c.checks.filter((_, m) => m !== j) }) : undefined} />
      ))}
      <div class="row">
        <button type="button" disabled={c.checks.length >= 20} onClick={() => onChange({ ...c, checks: [...c.checks, newCheck()] })}>
          Add check<span class="sr-only"> to criterion {n}</span>
        </button>
        {props.onRemove && (
          <button type="button" class="danger" onClick={props.onRemove}>
            Remove criterion {n}
          </button>
        )}
      </div>
    </fieldset>
  );
}

function Check(props: { at: string; name: string; check: CheckForm; notes: Notes; onChange: (k: CheckForm) => void; onRemove?: () => void }) {
  const { at, check: k, notes, onChange } = props;
  const set = <K extends keyof CheckForm>(key: K) => (value: CheckForm[K]) => onChange({ ...k, [key]: value });
  return (
    <fieldset class="group check" data-testid="check">
      <legend>{props.name}</legend>
      <TextField label="Question" field={`${at}.question`} notes={notes} value={k.question} onInput={set("question")} rows={2} required maxLength={300} />
      <SelectField label="Kind" field={`${at}.kind`} notes={notes} value={k.kind} onChange={set("kind")} options={KIND_LABELS.filter(([v]) => (CHECK_KINDS as readonly string[]).includes(v))} />
      {k.kind === "pattern" && <TextField label="Pattern (regular expression)" field={`${at}.pattern`} notes={notes} value={k.pattern} onInput={set("pattern")} required maxLength={500} />}
      {k.kind === "questions" && <TextField label="At least this many questions" field={`${at}.min_count`} notes={notes} type="number" min={1} max={50} step={1} value={k.min_count} onInput={set("min_count")} />}
      {k.kind === "semantic" && (
        <>
          <ListField label="Examples" item="Example" hint="Phrasings that count, 3 to 300 characters each." field={`${at}.examples`} notes={notes} value={k.examples} onChange={set("examples")} max={20} maxLength={300} />
          <TextField label="Similarity threshold (0.2–0.95)" field={`${at}.threshold`} notes={notes} type="number" min={0.2} max={0.95} step={0.01} value={k.threshold} onInput={set("threshold")} />
        </>
      )}
      <div class="row">
        <TextField label="Check weight" field={`${at}.weight`} notes={notes} type="number" min={0} max={100} step="any" value={k.weight} onInput={set("weight")} />
        {props.onRemove && (
          <button type="button" class="danger" onClick={props.onRemove}>
            Remove<span class="sr-only"> {props.name.toLowerCase()}</span>
          </button>
        )}
      </div>
    </fieldset>
  );
}
