import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import {
  checkBody,
  courseBody,
  courseForm,
  items,
  locateError,
  moved,
  newCheck,
  personaBody,
  personaForm,
  placeError,
  rubricBody,
  rubricFields,
  rubricForm,
  ruleBody,
  ruleFields,
  ruleForm,
  scenarioBody,
  scenarioForm,
} from "./pages/admin/specs";

const refusal = (message: string, code = "invalid_request", status = 422) => new ApiError(status, code, message);

describe("a content body built from its form", () => {
  it("keeps a persona's list rows that hold text, trimmed", () => {
    const form = { ...personaForm(null), slug: " pat ", name: "Pat", goals: ["  save time ", "", "   "], topics: ["pricing"] };
    const body = personaBody(form);
    expect(body.slug).toBe("pat");
    expect(body.goals).toEqual(["save time"]);
    expect(body.topics).toEqual(["pricing"]);
    expect(body.objections).toEqual([]);
    expect(items(["a", " ", "b "])).toEqual(["a", "b"]);
  });

  it("sends a scenario's unchosen knowledge bases and rubric as null, personas in their order", () => {
    const form = { ...scenarioForm(null), slug: "s", knowledge_base: "product", personas: ["lead", "cfo"] };
    const body = scenarioBody(form);
    expect(body.knowledge_base).toBe("product");
    expect(body.customer_knowledge_base).toBeNull();
    expect(body.vendor_website_knowledge_base).toBeNull();
    expect(body.rubric).toBeNull();
    expect(body.personas).toEqual(["lead", "cfo"]);
    expect(scenarioForm(body).knowledge_base).toBe("product");
    expect(scenarioForm(body).rubric).toBe("");
  });

  it("gives a rubric check the fields its kind reads and no other", () => {
    const check = { ...newCheck(), question: "Asked about budget?", pattern: "budget", min_count: "3", examples: ["what budget", ""], threshold: "0.6", weight: "2" };
    expect(checkBody({ ...check, kind: "judge" })).toEqual({ question: "Asked about budget?", kind: "judge", weight: 2 });
    expect(checkBody({ ...check, kind: "pattern" })).toEqual({ question: "Asked about budget?", kind: "pattern", weight: 2, pattern: "budget" });
    expect(checkBody({ ...check, kind: "questions" })).toEqual({ question: "Asked about budget?", kind: "questions", weight: 2, min_count: 3 });
    expect(checkBody({ ...check, kind: "semantic" })).toEqual({ question: "Asked about budget?", kind: "semantic", weight: 2, examples: ["what budget"], threshold: 0.6 });
  });

  it("leaves an empty number to the API's default, and reads a stored rubric back", () => {
    const form = rubricForm(null);
    form.slug = "r";
    form.name = "R";
    form.pass_score = "";
    form.criteria[0] = { ...form.criteria[0], skill: "discovery", name: "Discovery", weight: "" };
    const body = rubricBody(form);
    expect(body.pass_score).toBeUndefined();
    expect(body.criteria[0].weight).toBeUndefined();
    expect(JSON.parse(JSON.stringify(body)).criteria[0]).not.toHaveProperty("weight");
    const stored = { slug: "r", name: "R", pass_score: 60, criteria: [{ skill: "x", name: "X", weight: 2, checks: [{ question: "q?", kind: "semantic", examples: ["one"], threshold: 0.7, weight: 1, min_count: 1, pattern: null }] }] };
    const back = rubricForm(stored);
    expect(back.pass_score).toBe("60");
    expect(back.criteria[0].checks[0]).toMatchObject({ kind: "semantic", examples: ["one"], threshold: "0.7", pattern: "" });
    expect(rubricBody(back)).toEqual({ ...stored, criteria: [{ ...stored.criteria[0], checks: [{ question: "q?", kind: "semantic", examples: ["one"], threshold: 0.7, weight: 1 }] }] });
  });

  it("gives a compliance rule its kind's fields, the parties in the API's order", () => {
    const form = { ...ruleForm(null), slug: "no-guarantees", description: "No guarantees.", pattern: "(?i)guarantee", trigger: "price", applies_to: ["npc", "trainee"] };
    expect(ruleBody(form)).toEqual({ slug: "no-guarantees", description: "No guarantees.", kind: "forbidden", applies_to: ["trainee", "npc"], pattern: "(?i)guarantee", severity: "warning" });
    expect(ruleBody({ ...form, kind: "disclosure" })).toMatchObject({ pattern: "(?i)guarantee", trigger: "price" });
    const semantic = ruleBody({ ...form, kind: "semantic", examples: ["sign today", ""], threshold: "0.62" });
    expect(semantic).toMatchObject({ examples: ["sign today"], threshold: 0.62 });
    expect(semantic).not.toHaveProperty("pattern");
    expect(ruleBody({ ...form, kind: "judge" })).not.toHaveProperty("pattern");
    expect(ruleFields("disclosure")).toContain("trigger");
  });

  it("builds a course with its scenarios in order", () => {
    const body = courseBody({ ...courseForm(null), slug: "c", title: "C", scenarios: ["b", "a"], pass_score: "80" });
    expect(body).toEqual({ slug: "c", title: "C", pass_score: 80, mode: "practice", scenarios: ["b", "a"], status: "draft" });
  });

  it("moves an item up and down within its list", () => {
    expect(moved(["a", "b", "c"], 2, -1)).toEqual(["a", "c", "b"]);
    expect(moved(["a", "b", "c"], 0, 1)).toEqual(["b", "a", "c"]);
    expect(moved(["a", "b"], 0, -1)).toEqual(["a", "b"]);
  });
});

describe("the field a refusal of a content body belongs at", () => {
  it("reads the path pydantic names, nested in criteria and checks", () => {
    const e = refusal("body.criteria.0.checks.1.pattern: Value error, not a valid regular expression: missing ), unterminated subpattern at position 0");
    expect(locateError(e)).toEqual({ field: "criteria.0.checks.1.pattern", message: "Not a valid regular expression: missing ), unterminated subpattern at position 0." });
    expect(locateError(refusal("body.slug: String should match pattern '^[a-z0-9][a-z0-9-]{0,63}$'"))?.field).toBe("slug");
  });

  it("puts a check about several fields at the one it says is missing", () => {
    expect(locateError(refusal("body.criteria.1.checks.0: Value error, a pattern check needs a pattern"))).toEqual({ field: "criteria.1.checks.0.pattern", message: "A pattern check needs a pattern." });
    expect(locateError(refusal("body: Value error, a disclosure rule needs a trigger"))?.field).toBe("trigger");
    expect(locateError(refusal("body: Value error, a semantic rule needs examples"))?.field).toBe("examples");
    expect(locateError(refusal("body: Value error, customer_knowledge_base is the customer's own papers: ..."))?.field).toBe("customer_knowledge_base");
  });

  it("maps the routes' own codes to their field", () => {
    expect(locateError(refusal("a persona 'pat' exists already", "persona_exists", 409))?.field).toBe("slug");
    expect(locateError(refusal("no such personas or rubric: ['ghost']", "unknown_reference"))?.field).toBe("personas");
    expect(locateError(refusal("no such personas or rubric: ['rubric gone']", "unknown_reference"))?.field).toBe("rubric");
    expect(locateError(refusal("no such scenarios: ['x']", "unknown_reference"))?.field).toBe("scenarios");
  });

  it("reads the try box's rule as a body of its own, and leaves the rest to the form", () => {
    expect(locateError(refusal("body.rule.pattern: Value error, not a valid regular expression: x"), "rule")?.field).toBe("pattern");
    expect(locateError(refusal("body.rule: Value error, a forbidden rule needs a pattern"), "rule")?.field).toBe("pattern");
    expect(locateError(refusal("body.sentence: String should have at least 1 character"), "rule")).toBeNull();
    expect(locateError(refusal("body: Value error, something about everything"))).toBeNull();
    expect(locateError(refusal("the body's slug must match the path's"))).toBeNull();
    expect(locateError(new ApiError(500, "internal", "body.slug: x"))).toBeNull();
  });

  it("places a refusal at the closest field the form shows, or at none", () => {
    const form = rubricForm(null);
    form.criteria[0].checks[0].kind = "semantic";
    const fields = rubricFields(form);
    expect(fields).toContain("criteria.0.checks.0.examples");
    expect(fields).not.toContain("criteria.0.checks.0.pattern");
    expect(placeError({ field: "criteria.0.checks.0.examples.2", message: "m" }, fields)?.field).toBe("criteria.0.checks.0.examples");
    expect(placeError({ field: "criteria.0.checks.0.pattern", message: "m" }, fields)?.field).toBe("criteria.0.checks");
    expect(placeError({ field: "personas", message: "m" }, fields)).toBeNull();
    expect(placeError({ field: "criteria", message: "Each criterion scores a different skill." }, fields)?.field).toBe("criteria");
    expect(placeError(null, fields)).toBeNull();
  });
});
