"""Load a persona adapter with peft and answer a few salesperson lines, with and without it.

    python -m models.persona_lora.sample --adapter DIR [--base] [--max-tokens 60]

A check that an adapter loads and what it does, not the measurement: the bench
(``salesboost bench quality``) measures the persona through the real training turn. The
lines here are new (in no dialogue) and go to the held-out personas of ``data/valid.jsonl``;
the prompt is production's (``npc_messages``), decoding is greedy with the persona's
repetition penalty and stop sequences, and the reply is cleaned and trimmed as the NPC agent
does it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.persona_lora.data import VALID_FILE, PersonaExample, PersonaTurn, load_examples
from models.persona_lora.train import default_model_dir
from serve_apps.orchestrator.npc_prompt import clean_reply, persona_decoding, trim_reply

# (conversation of the valid split whose cards are used, a line no dialogue has)
UNSEEN_LINES: tuple[tuple[str, str], ...] = (
    ("harbor-discovery-1", "What made you start looking at email tools this year?"),
    ("pike-discovery-1", "Who else would need to approve a new document system?"),
    ("pike-discovery-2", "Could you walk me through your pricing?"),
)


def unseen_examples(valid_file: Path = VALID_FILE) -> list[PersonaExample]:
    """Each line as the first turn of a conversation with a held-out persona."""
    first_turns = {
        row.conversation: row for row in load_examples(valid_file) if row.turn.history == []
    }
    examples = []
    for conversation, line in UNSEEN_LINES:
        source = first_turns[conversation]
        turn = PersonaTurn(
            persona=source.turn.persona,
            committee=source.turn.committee,
            scenario=source.turn.scenario,
            trainee_text=line,
        )
        examples.append(
            source.model_copy(update={"id": f"unseen-{conversation}", "turn": turn, "reply": "-"})
        )
    return examples


def generate(model: Any, tokenizer: Any, example: PersonaExample, max_tokens: int) -> str:
    """The reply as the trainee would read it: greedy, stopped where another speaker starts."""
    import torch

    from models.persona_lora.data import render_prompt

    speaker = example.speaker_card()
    others = [p for p in example.turn.committee if p.slug != speaker.slug]
    decoding = persona_decoding(speaker, others)
    input_ids = torch.tensor(
        [tokenizer(render_prompt(tokenizer, example), add_special_tokens=False).input_ids]
    )
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_tokens,
            do_sample=False,
            repetition_penalty=decoding.repetition_penalty,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
            stop_strings=list(decoding.stop),
            tokenizer=tokenizer,
        )
    text = tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)
    for stop in decoding.stop:
        text = text.split(stop)[0]
    return trim_reply(clean_reply(text, speaker))[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--base", action="store_true", help="also answer without the adapter")
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    model_dir = args.model_dir or default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(args.adapter))
    model.eval()
    for example in unseen_examples():
        print(f"[{example.speaker_card().name}] Salesperson: {example.turn.trainee_text}")
        if args.base:
            with model.disable_adapter():
                started = time.perf_counter()
                reply = generate(model, tokenizer, example, args.max_tokens)
            print(f"  base    ({time.perf_counter() - started:.1f}s): {reply}")
        started = time.perf_counter()
        reply = generate(model, tokenizer, example, args.max_tokens)
        print(f"  adapter ({time.perf_counter() - started:.1f}s): {reply}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
