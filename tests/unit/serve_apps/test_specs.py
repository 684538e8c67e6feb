import pytest
from pydantic import ValidationError

from serve_apps.contracts.specs import (
    ComplianceRuleSpec,
    PersonaSpec,
    RubricSpec,
    ScenarioSpec,
)
from serve_apps.contracts.wire import FrameError, parse_client_frame
from serve_apps.gateway.schemas.people import InviteRequest


@pytest.mark.parametrize(
    "make",
    [
        lambda: RubricSpec(
            slug="r",
            name="n",
            criteria=[{"skill": "s", "name": "n", "checks": [{"question": "q\x00?"}]}],
        ),
        lambda: PersonaSpec(
            slug="p", name="n", role="r", company="c", personality="p", goals=["x\x00"]
        ),
        lambda: InviteRequest(email="a@b.c", display_name="\x00"),
        lambda: ComplianceRuleSpec(slug="c", description="d", pattern="(unclosed"),
        lambda: ComplianceRuleSpec(
            slug="c", description="disclose", kind="disclosure", pattern="vat"
        ),
        lambda: RubricSpec(
            slug="r",
            name="n",
            criteria=[
                {"skill": "s", "name": "a", "checks": [{"question": "q?"}]},
                {"skill": "s", "name": "b", "checks": [{"question": "q?"}]},
            ],
        ),
        lambda: ScenarioSpec(
            slug="s", title="t", product="p", description="d", personas=["a", "a"]
        ),
    ],
)
def test_content_postgresql_could_not_store_or_the_agents_could_not_use_is_refused(make):
    with pytest.raises(ValidationError):
        make()


def test_a_trainee_turn_with_a_nul_character_is_a_typed_error():
    with pytest.raises(FrameError) as refused:
        parse_client_frame(
            '{"type": "turn", "client_turn_id": "c1", "text": "hi\\u0000"}', max_message_chars=100
        )
    assert refused.value.event.code == "invalid_frame"
