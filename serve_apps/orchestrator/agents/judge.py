"""The judge: asks the judge LLM a question whose answer must fit a pydantic model.

vLLM's guided decoding constrains the answer to the model's JSON schema, so a well-behaved
engine always returns something that parses; a truncated answer, a timeout or an engine
that is down becomes an :class:`AgentFailed` with a code the trainee's client can show.
"""

from __future__ import annotations

import asyncio
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from serve_apps.orchestrator.chat_engine import ChatEngine

Answer = TypeVar("Answer", bound=BaseModel)
FailureCode = Literal["judge_timeout", "judge_invalid", "judge_unavailable"]


class AgentFailed(RuntimeError):
    def __init__(self, agent: str, code: FailureCode, detail: str) -> None:
        super().__init__(f"{agent}: {code}: {detail}")
        self.agent = agent
        self.code = code
        self.detail = detail


class Judge:
    def __init__(self, engine: ChatEngine, *, timeout_s: float) -> None:
        self._engine = engine
        self.timeout_s = timeout_s

    async def ask(
        self,
        agent: str,
        answer_type: type[Answer],
        *,
        instructions: str,
        material: str,
        max_tokens: int = 96,
    ) -> Answer:
        messages = [
            {"role": "system", "content": instructions},
            {"role": "user", "content": material},
        ]
        try:
            raw = await asyncio.wait_for(
                self._engine.complete_json(
                    messages, schema=answer_type.model_json_schema(), max_tokens=max_tokens
                ),
                timeout=self.timeout_s,
            )
        except TimeoutError:
            raise AgentFailed(
                agent, "judge_timeout", f"no answer in {self.timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise AgentFailed(agent, "judge_unavailable", repr(exc)[:300]) from exc
        try:
            return answer_type.model_validate_json(raw)
        except ValidationError as exc:
            raise AgentFailed(
                agent, "judge_invalid", f"answer does not fit its schema: {raw[:200]!r}"
            ) from exc
