import { describe, expect, it } from "vitest";
import { describeDistribution } from "./charts";

describe("the score distribution's description", () => {
  it("says how many were scored and passed, and where most scores fall", () => {
    const buckets = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90].map((low) => ({
      low,
      high: low === 90 ? 100 : low + 9,
      sessions: low === 90 ? 2 : low === 30 ? 1 : 0,
    }));
    expect(describeDistribution({ bucket: 10, buckets, scored: 3, passed: 2 })).toBe(
      "3 scored sessions, 2 passed; the most, 2, scored 90–100.",
    );
    const one = buckets.map((b) => ({ ...b, sessions: b.low === 30 ? 1 : 0 }));
    expect(describeDistribution({ bucket: 10, buckets: one, scored: 1, passed: 0 })).toBe(
      "1 scored session, 0 passed; the most, 1, scored 30–39.",
    );
  });
});
