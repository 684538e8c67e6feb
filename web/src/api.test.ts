import { describe, expect, it } from "vitest";
import { ApiError, fieldError } from "./api";

describe("the field a refusal is about", () => {
  it("reads the field a 422's message names, without pydantic's prefixes", () => {
    const e = new ApiError(422, "invalid_request", "body.due_at: Value error, due_at: a date from 1970 to 9998");
    expect(fieldError(e)).toEqual({ field: "due_at", message: "A date from 1970 to 9998." });
    const nested = new ApiError(422, "invalid_request", "body.criteria.0.weight: Input should be greater than 0");
    expect(fieldError(nested)).toEqual({ field: "criteria.0.weight", message: "Input should be greater than 0." });
    const query = new ApiError(422, "invalid_request", "query.to: must be later than from");
    expect(fieldError(query)).toEqual({ field: "to", message: "Must be later than from." });
  });

  it("maps a route's own codes to their field", () => {
    expect(fieldError(new ApiError(422, "unknown_team", "no team 'Nobody'"))).toEqual({ field: "team", message: "No team 'Nobody'." });
    expect(fieldError(new ApiError(422, "unknown_user", "no such user"))?.field).toBe("user_id");
    expect(fieldError(new ApiError(409, "team_exists", "a team 'Sales' exists already"))?.field).toBe("name");
  });

  it("leaves refusals of the whole request to the form", () => {
    expect(fieldError(new ApiError(422, "invalid_request", "body: Value error, assign to a team or to a user, not both"))).toBeNull();
    expect(fieldError(new ApiError(404, "course_not_found", "no course 'x'"))).toBeNull();
    expect(fieldError(new ApiError(500, "internal", "body.x: y"))).toBeNull();
    expect(fieldError(new Error("body.x: y"))).toBeNull();
  });
});
