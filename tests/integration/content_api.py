"""Training content written the way an admin writes it: through the content routes, whose
writes invalidate the content cache (a row written around them is seen only when the
cache's entries expire)."""

from __future__ import annotations

import httpx


def add_compliance_rule(base_url: str, admin: dict[str, str], rule: dict) -> None:
    """The company's rule, created once (one made earlier in the test session stays)."""
    with httpx.Client(base_url=base_url, headers=admin, timeout=30) as http:
        response = http.post("/v1/compliance-rules", json=rule)
    assert response.status_code in (201, 409), response.text
    if response.status_code == 409:
        assert response.json()["error"]["code"] == "compliance_rule_exists"


# A rule every persona reply breaks: the persona may not say anything at all.
SAY_NOTHING = {
    "slug": "say-nothing",
    "description": "Say nothing",
    "kind": "forbidden",
    "applies_to": ["npc"],
    "pattern": "(?s).",
    "severity": "critical",
}
