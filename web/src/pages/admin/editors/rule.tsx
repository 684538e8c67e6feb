// A compliance rule: its kind with the fields that kind reads, who it applies to, how serious
// breaking it is; and the rule as the form holds it (saved or not) tried on a sentence.
import { useState } from "preact/hooks";
import { api } from "../../../api";
import type { ComplianceEvent } from "../../../conversation";
import { EditorForm, type EditorProps, ListField, SLUG_HINT, SelectField, TextField, fieldNotes, notesAt, useSave } from "../fields";
import {
  PARTIES,
  RULE_KINDS,
  type RuleForm,
  type RuleSpec,
  SEVERITIES,
  TRYABLE_KINDS,
  locateError,
  placeError,
  ruleBody,
  ruleFields,
  ruleForm,
} from "../specs";

const KIND_LABELS: Record<(typeof RULE_KINDS)[number], string> = {
  forbidden: "Forbidden: a pattern must not appear",
  disclosure: "Disclosure: when the trigger appears, the disclosure must too",
  semantic: "Semantic: nothing may sound like the examples",
  knowledge_claims: "Knowledge claims: stated figures must match the knowledge base",
  judge: "Judge: the judge model decides from the description",
};
const PARTY_LABELS: Record<(typeof PARTIES)[number], string> = { trainee: "The trainee", npc: "The personas" };

export function RuleEditor(props: EditorProps<RuleSpec>) {
  const [form, setForm] = useState<RuleForm>(() => ruleForm(props.spec));
  const { error, saved, save } = useSave("/v1/compliance-rules", props.slug, props.onSaved);
  // The try box's refusal of the rule (not of its sentence) shows here too, at the rule's field.
  const [tryRefusal, setTryRefusal] = useState<unknown>(null);
  const fields = ruleFields(form.kind);
  const refusedSave = placeError(locateError(error), fields);
  const notes = notesAt(refusedSave ?? placeError(locateError(tryRefusal, "rule"), fields), "rule");
  const set = <K extends keyof RuleForm>(key: K) => (value: RuleForm[K]) => setForm({ ...form, [key]: value });
  const toggle = (party: string, on: boolean) => set("applies_to")(on ? [...form.applies_to, party] : form.applies_to.filter((p) => p !== party));

  return (
    <>
      <EditorForm label={props.slug ? `Edit compliance rule ${props.slug}` : "New compliance rule"} testId="rule-editor" onSubmit={() => (setTryRefusal(null), save(ruleBody(form)))} error={error} placed={!!refusedSave} saved={saved}>
        <TextField label="Slug" hint={SLUG_HINT} field="slug" notes={notes} value={form.slug} onInput={set("slug")} required maxLength={64} disabled={!!props.slug} />
        <TextField label="Description" field="description" notes={notes} value={form.description} onInput={set("description")} rows={2} required maxLength={500} />
        <SelectField label="Kind" field="kind" notes={notes} value={form.kind} onChange={set("kind")} options={RULE_KINDS.map((k): [string, string] => [k, KIND_LABELS[k]])} />
        {form.kind === "disclosure" && <TextField label="Trigger (regular expression)" field="trigger" notes={notes} value={form.trigger} onInput={set("trigger")} required maxLength={500} />}
        {(form.kind === "forbidden" || form.kind === "disclosure") && (
          <TextField label={form.kind === "disclosure" ? "Disclosure (regular expression)" : "Pattern (regular expression)"} field="pattern" notes={notes} value={form.pattern} onInput={set("pattern")} required maxLength={500} />
        )}
        {form.kind === "semantic" && (
          <>
            <ListField label="Examples" item="Example" hint="What breaking the rule sounds like, 3 to 300 characters each." field="examples" notes={notes} value={form.examples} onChange={set("examples")} max={20} maxLength={300} />
            <TextField label="Similarity threshold (0.2–0.95)" field="threshold" notes={notes} type="number" min={0.2} max={0.95} step={0.01} value={form.threshold} onInput={set("threshold")} />
          </>
        )}
        <fieldset class="inline" data-field="applies_to">
          <legend>Applies to</legend>
          {PARTIES.map((p) => (
            <label key={p}>
              <input type="checkbox" name="applies-to" checked={form.applies_to.includes(p)} onChange={(e) => toggle(p, e.currentTarget.checked)} {...notes.invalid("applies_to")} /> {PARTY_LABELS[p]}
            </label>
          ))}
        </fieldset>
        {notes.note("applies_to")}
        <SelectField label="Severity" field="severity" notes={notes} value={form.severity} onChange={set("severity")} options={SEVERITIES} />
      </EditorForm>
      <TryRule rule={ruleBody(form)} atRuleField={(err) => !!placeError(locateError(err, "rule"), fields)} onRuleRefused={setTryRefusal} />
    </>
  );
}

/** The rule in the editor tried on a sentence by the server's compliance checker: the findings
 * a session would show, or that the sentence keeps the rule. A refusal of the rule itself is
 * shown at the editor's field. */
function TryRule(props: { rule: RuleSpec; atRuleField: (error: unknown) => boolean; onRuleRefused: (error: unknown) => void }) {
  const [sentence, setSentence] = useState("");
  const [findings, setFindings] = useState<(ComplianceEvent & { similarity: number | null })[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [ruleRefused, setRuleRefused] = useState(false);
  const fields = fieldNotes(error, "try");
  const tryable = TRYABLE_KINDS.includes(props.rule.kind);

  async function run(e: Event) {
    e.preventDefault();
    setError(null);
    setRuleRefused(false);
    setFindings(null);
    props.onRuleRefused(null);
    try {
      setFindings((await api.post<{ findings: NonNullable<typeof findings> }>("/v1/compliance-rules/try", { rule: props.rule, sentence })).findings);
    } catch (err) {
      // The rule's fields are the editor's; what is left (the sentence, the server) is ours.
      if (props.atRuleField(err)) (props.onRuleRefused(err), setRuleRefused(true));
      else setError(err);
    }
  }

  return (
    <form class="card stack" onSubmit={run} aria-label="Try this rule on a sentence" data-testid="try-rule">
      <h2>Try this rule on a sentence</h2>
      {!tryable && <p class="muted small">A {props.rule.kind.replace("_", " ")} rule is decided in a session; a sentence can be tried on forbidden, disclosure and semantic rules.</p>}
      <div>
        <label>
          Sentence
          <textarea name="try-sentence" rows={2} required maxLength={2000} value={sentence} onInput={(e) => setSentence(e.currentTarget.value)} {...fields.invalid("sentence")} />
        </label>
        {fields.note("sentence")}
      </div>
      {fields.rest(["sentence"])}
      {ruleRefused && <p class="error">The rule cannot be tried as it stands: the field marked in the rule says why.</p>}
      <button type="submit" disabled={!tryable}>
        Try it
      </button>
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
