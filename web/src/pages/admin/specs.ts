// Training content as the editors hold it, and as the API takes it
// (serve_apps/contracts/specs.py and CourseSpec in serve_apps/gateway/schemas.py): a form per
// kind (numbers as the text typed, lists with their blank rows), the body built from it, the
// fields it shows, and where a refusal of that body belongs among them.
import { ApiError, sentence } from "../../api";

export const STAGES = [
  "introduction",
  "qualification",
  "needs analysis",
  "value proposition",
  "solution presentation",
  "objection handling",
  "close",
] as const;
export const DIFFICULTIES = ["easy", "medium", "hard"] as const;
export const CHECK_KINDS = ["judge", "pattern", "questions", "semantic"] as const;
export const RULE_KINDS = ["forbidden", "disclosure", "semantic", "knowledge_claims", "judge"] as const;
export const SEVERITIES = ["info", "warning", "critical"] as const;
export const PARTIES = ["trainee", "npc"] as const;
// A sentence alone decides these (the others need a session): serve_apps/gateway/content_routes.py.
export const TRYABLE_KINDS: readonly string[] = ["forbidden", "disclosure", "semantic"];
export const DEFAULT_THRESHOLD = "0.55";

// --- the API's bodies ---------------------------------------------------------------------

export interface PersonaSpec {
  slug: string;
  name: string;
  role: string;
  company: string;
  personality: string;
  goals: string[];
  objections: string[];
  facts: string[];
  hidden: string[];
  topics: string[];
}

export interface ScenarioSpec {
  slug: string;
  title: string;
  product: string;
  stage: string;
  difficulty: string;
  description: string;
  knowledge_base: string | null;
  customer_knowledge_base: string | null;
  vendor_website_knowledge_base: string | null;
  rubric: string | null;
  personas: string[];
}

export interface RubricCheck {
  question: string;
  kind: string;
  pattern?: string | null;
  min_count?: number;
  examples?: string[];
  threshold?: number;
  weight?: number;
}

export interface RubricSpec {
  slug: string;
  name: string;
  pass_score?: number;
  criteria: { skill: string; name: string; weight?: number; checks: RubricCheck[] }[];
}

export interface RuleSpec {
  slug: string;
  description: string;
  kind: string;
  applies_to: string[];
  pattern?: string | null;
  trigger?: string | null;
  examples?: string[];
  threshold?: number;
  severity: string;
}

export interface CourseSpec {
  slug: string;
  title: string;
  pass_score?: number;
  mode: string;
  scenarios: string[];
  status: string;
}

// --- forms and bodies ---------------------------------------------------------------------

/** A list as the editor shows it: what was typed, trimmed, without its blank rows. */
export function items(rows: string[]): string[] {
  return rows.map((r) => r.trim()).filter(Boolean);
}

/** A number field: left empty, the API's default applies. */
function number(text: string): number | undefined {
  return text.trim() === "" ? undefined : Number(text);
}

const text = (value: number | undefined | null, fallback = ""): string => (value == null ? fallback : String(value));

export const PERSONA_LISTS = ["goals", "objections", "facts", "hidden", "topics"] as const;

export type PersonaForm = PersonaSpec;

export function personaForm(spec: PersonaSpec | null): PersonaForm {
  return spec
    ? { ...spec, ...Object.fromEntries(PERSONA_LISTS.map((k) => [k, [...spec[k]]])) }
    : { slug: "", name: "", role: "", company: "", personality: "", goals: [], objections: [], facts: [], hidden: [], topics: [] };
}

export function personaBody(form: PersonaForm): PersonaSpec {
  const body = { ...form, slug: form.slug.trim() };
  for (const k of PERSONA_LISTS) body[k] = items(form[k]);
  return body;
}

export function personaFields(): string[] {
  return ["slug", "name", "role", "company", "personality", ...PERSONA_LISTS];
}

export type ScenarioForm = Omit<ScenarioSpec, "knowledge_base" | "customer_knowledge_base" | "vendor_website_knowledge_base" | "rubric"> & {
  knowledge_base: string;
  customer_knowledge_base: string;
  vendor_website_knowledge_base: string;
  rubric: string;
};

export const SCENARIO_BASES = ["knowledge_base", "customer_knowledge_base", "vendor_website_knowledge_base"] as const;

export function scenarioForm(spec: ScenarioSpec | null): ScenarioForm {
  if (!spec)
    return {
      slug: "",
      title: "",
      product: "",
      stage: "qualification",
      difficulty: "medium",
      description: "",
      knowledge_base: "",
      customer_knowledge_base: "",
      vendor_website_knowledge_base: "",
      rubric: "",
      personas: [],
    };
  return {
    ...spec,
    knowledge_base: spec.knowledge_base ?? "",
    customer_knowledge_base: spec.customer_knowledge_base ?? "",
    vendor_website_knowledge_base: spec.vendor_website_knowledge_base ?? "",
    rubric: spec.rubric ?? "",
    personas: [...spec.personas],
  };
}

export function scenarioBody(form: ScenarioForm): ScenarioSpec {
  return {
    ...form,
    slug: form.slug.trim(),
    knowledge_base: form.knowledge_base || null,
    customer_knowledge_base: form.customer_knowledge_base || null,
    vendor_website_knowledge_base: form.vendor_website_knowledge_base || null,
    rubric: form.rubric || null,
  };
}

export function scenarioFields(): string[] {
  return ["slug", "title", "product", "stage", "difficulty", "description", ...SCENARIO_BASES, "rubric", "personas"];
}

export interface CheckForm {
  question: string;
  kind: string;
  pattern: string;
  min_count: string;
  examples: string[];
  threshold: string;
  weight: string;
}

export interface CriterionForm {
  skill: string;
  name: string;
  weight: string;
  checks: CheckForm[];
}

export interface RubricForm {
  slug: string;
  name: string;
  pass_score: string;
  criteria: CriterionForm[];
}

export function newCheck(): CheckForm {
  return { question: "", kind: "judge", pattern: "", min_count: "1", examples: [""], threshold: DEFAULT_THRESHOLD, weight: "1" };
}

export function newCriterion(): CriterionForm {
  return { skill: "", name: "", weight: "1", checks: [newCheck()] };
}

export function rubricForm(spec: RubricSpec | null): RubricForm {
  if (!spec) return { slug: "", name: "", pass_score: "70", criteria: [newCriterion()] };
  return {
    slug: spec.slug,
    name: spec.name,
    pass_score: text(spec.pass_score, "70"),
    criteria: spec.criteria.map((c) => ({
      skill: c.skill,
      name: c.name,
      weight: text(c.weight, "1"),
      checks: c.checks.map((k) => ({
        question: k.question,
        kind: k.kind,
        pattern: k.pattern ?? "",
        min_count: text(k.min_count, "1"),
        examples: k.examples?.length ? [...k.examples] : [""],
        threshold: text(k.threshold, DEFAULT_THRESHOLD),
        weight: text(k.weight, "1"),
      })),
    })),
  };
}

/** A check's body holds the fields its kind reads, and no other. */
export function checkBody(form: CheckForm): RubricCheck {
  const body: RubricCheck = { question: form.question, kind: form.kind, weight: number(form.weight) };
  if (form.kind === "pattern") body.pattern = form.pattern;
  if (form.kind === "questions") body.min_count = number(form.min_count);
  if (form.kind === "semantic") Object.assign(body, { examples: items(form.examples), threshold: number(form.threshold) });
  return body;
}

export function rubricBody(form: RubricForm): RubricSpec {
  return {
    slug: form.slug.trim(),
    name: form.name,
    pass_score: number(form.pass_score),
    criteria: form.criteria.map((c) => ({ skill: c.skill.trim(), name: c.name, weight: number(c.weight), checks: c.checks.map(checkBody) })),
  };
}

export function checkFields(kind: string): string[] {
  const own: Record<string, string[]> = { pattern: ["pattern"], questions: ["min_count"], semantic: ["examples", "threshold"] };
  return ["question", "kind", "weight", ...(own[kind] ?? [])];
}

export function rubricFields(form: RubricForm): string[] {
  return [
    "slug",
    "name",
    "pass_score",
    "criteria",
    ...form.criteria.flatMap((c, i) => [
      ...["skill", "name", "weight", "checks"].map((f) => `criteria.${i}.${f}`),
      ...c.checks.flatMap((k, j) => checkFields(k.kind).map((f) => `criteria.${i}.checks.${j}.${f}`)),
    ]),
  ];
}

export type RuleForm = Omit<RuleSpec, "pattern" | "trigger" | "examples" | "threshold"> & {
  pattern: string;
  trigger: string;
  examples: string[];
  threshold: string;
};

export function ruleForm(spec: RuleSpec | null): RuleForm {
  if (!spec)
    return { slug: "", description: "", kind: "forbidden", applies_to: ["trainee"], pattern: "", trigger: "", examples: [""], threshold: DEFAULT_THRESHOLD, severity: "warning" };
  return {
    ...spec,
    applies_to: [...spec.applies_to],
    pattern: spec.pattern ?? "",
    trigger: spec.trigger ?? "",
    examples: spec.examples?.length ? [...spec.examples] : [""],
    threshold: text(spec.threshold, DEFAULT_THRESHOLD),
  };
}

export function ruleFields(kind: string): string[] {
  const own: Record<string, string[]> = { forbidden: ["pattern"], disclosure: ["trigger", "pattern"], semantic: ["examples", "threshold"] };
  return ["slug", "description", "kind", "applies_to", ...(own[kind] ?? []), "severity"];
}

export function ruleBody(form: RuleForm): RuleSpec {
  const body: RuleSpec = {
    slug: form.slug.trim(),
    description: form.description,
    kind: form.kind,
    // In the order the API lists the parties: the first is who a tried sentence is said by.
    applies_to: PARTIES.filter((p) => form.applies_to.includes(p)),
    severity: form.severity,
  };
  const own = ruleFields(form.kind);
  if (own.includes("pattern")) body.pattern = form.pattern;
  if (own.includes("trigger")) body.trigger = form.trigger;
  if (own.includes("examples")) Object.assign(body, { examples: items(form.examples), threshold: number(form.threshold) });
  return body;
}

export type CourseForm = Omit<CourseSpec, "pass_score"> & { pass_score: string };

export function courseForm(spec: CourseSpec | null): CourseForm {
  return spec
    ? { ...spec, pass_score: text(spec.pass_score, "70"), scenarios: [...spec.scenarios] }
    : { slug: "", title: "", pass_score: "70", mode: "practice", scenarios: [], status: "draft" };
}

export function courseBody(form: CourseForm): CourseSpec {
  return { ...form, slug: form.slug.trim(), pass_score: number(form.pass_score) };
}

export function courseFields(): string[] {
  return ["slug", "title", "pass_score", "mode", "scenarios", "status"];
}

// --- where a refusal belongs --------------------------------------------------------------

export interface FieldError {
  field: string;
  message: string;
}

const join = (path: string, field: string) => (path ? `${path}.${field}` : field);

// What a check about several fields (a pydantic model validator: the error's path is the
// model's) says it misses, and the field that is.
const NEEDS: [RegExp, string][] = [
  [/needs a pattern/, "pattern"],
  [/needs a trigger/, "trigger"],
  [/needs examples/, "examples"],
];

/** The body's field a refusal of a content body is about, as a dotted path
 * (``criteria.0.checks.1.pattern``), and what to say there; null when it is about the whole
 * request. ``within`` takes a body that sits in a larger one (the try box's ``rule``):
 * refusals outside it are null. */
export function locateError(error: unknown, within = ""): FieldError | null {
  if (!(error instanceof ApiError) || error.status < 400 || error.status >= 500) return null;
  let found: FieldError | null = null;
  if (error.code.endsWith("_exists")) found = { field: "slug", message: sentence(error.message) };
  else if (error.code === "unknown_reference") {
    // "no such personas or rubric: ['pat', 'rubric x']", "no such scenarios: ['y']"
    const names = (/\[(.*)\]/.exec(error.message)?.[1] ?? "").split(",").map((n) => n.trim());
    const field = /scenarios/.test(error.message) ? "scenarios" : names.every((n) => n.startsWith("'rubric ")) ? "rubric" : "personas";
    found = { field, message: sentence(error.message) };
  } else if (error.status === 422) {
    const m = /^body(?:\.([\w.]+))?: (?:Value error, )?([\s\S]*)$/.exec(error.message);
    if (m) {
      let [path, said] = [m[1] ?? "", m[2]];
      const leaf = path.split(".").pop();
      if (leaf && said.startsWith(`${leaf}: `)) said = said.slice(leaf.length + 2);
      const needs = NEEDS.find(([re]) => re.test(said));
      // A check of the whole body that names its field first: "customer_knowledge_base is ...".
      const named = path ? null : /^([a-z]+_[a-z_]+) /.exec(said);
      if (needs) path = join(path, needs[1]);
      else if (named) path = join(path, named[1]);
      found = path ? { field: path, message: sentence(said) } : null;
    }
  }
  if (!found || !within) return found;
  if (found.field === within) return null;
  return found.field.startsWith(`${within}.`) ? { ...found, field: found.field.slice(within.length + 1) } : null;
}

/** The field among those the form shows that a refusal belongs at: the one it names, or the
 * closest that holds it (an example's refusal goes to the examples); null leaves it to the form. */
export function placeError(found: FieldError | null, fields: string[]): FieldError | null {
  if (!found) return null;
  const holders = fields.filter((f) => found.field === f || found.field.startsWith(`${f}.`));
  if (!holders.length) return null;
  return { ...found, field: holders.reduce((a, b) => (b.length > a.length ? b : a)) };
}

/** Move the item at ``index`` by ``by`` places (-1: up), within the list. */
export function moved<T>(list: T[], index: number, by: number): T[] {
  const to = index + by;
  if (to < 0 || to >= list.length) return list;
  const out = [...list];
  [out[index], out[to]] = [out[to], out[index]];
  return out;
}
