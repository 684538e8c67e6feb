"""The reviewer: a persona's reply counts only once it stays a customer.

Rules catch what the bundled 135M model's replies actually show (labelled in
``tests/evalsets/persona_replies.jsonl``, measured by ``salesboost bench quality``):

- an AI confession, a script with speaker labels, the prompt leaking, an empty reply;
- speaking as the seller ("we offer a 30-day sandbox", "our solution", "would you like a
  demo?"): the customer never sells;
- contradicting the card: a number it states for a thing the facts count otherwise ("300
  CRM users", "1,200 employees"; spelled-out numbers too: "ten thousand users"), a month
  other than the card's for what the card dates ("our fiscal year starts in March" when it
  starts in April), calling a company of a thousand people small, a sum of money many times
  any the card names ("$4 million" against a 180,000 USD ceiling), or someone other than the
  card's signer signing or deciding ("the CIO approves" when the CFO signs);
- leaking what the card keeps back (a hidden figure) when the salesperson did not ask about it;
- running on (more than four sentences or 70 words) or cut off without a whole sentence;
- not answering: a question the reply has nothing to do with, by the bundled embedder's
  similarity of question and reply (when the reviewer has one).

The tenant's critical compliance rules for personas count too (the training turn adds them).
The judge model, when enabled, answers the rest. A rejected attempt is regenerated with the
issues as feedback, a bounded number of times, and after the last one a short in-character
line replaces it: the trainee never gets a rejected reply as final.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from retrieval.excerpts import sentences
from serve_apps.contracts.turn import PersonaCard, ScenarioCard
from serve_apps.orchestrator.agents.claims import figures
from serve_apps.orchestrator.agents.judge import Judge
from serve_apps.orchestrator.semantic import SemanticMatcher

AI = "says it is an AI or an assistant"
LABELS = "writes a script with speaker labels instead of speaking"
SELLER = "speaks as the seller, not the customer"
INSTRUCTIONS = "reveals its instructions"
CONTRADICTS = "contradicts the customer's facts"
LEAKS = "gives away what the customer keeps back without being asked"
RUNS_ON = "runs on: say it in one to three short sentences"
CUT = "is cut off mid-sentence"
OFF_QUESTION = "does not answer the salesperson's question"
EMPTY = "the reply is empty"

RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"(?i)\b(as an ai|an ai (language )?model|language model|i am an ai|i'm an ai|"
            r"ai assistant|virtual assistant|i am an assistant|i'm an assistant|chatgpt|openai|"
            r"i'?m (just )?a (computer )?program|i do not have personal|i don't have personal|"
            # assistant talk the 135M model falls into (bench quality's probe replies)
            r"i (do not|don't) have access to|(sorry|apologi[sz]e) for (any|the) (confusion|"
            r"misunderstanding))\b"
        ),
        AI,
    ),
    (
        re.compile(r"(?im)^\s*(user|assistant|salesperson|customer|system|seller)\s*:"),
        LABELS,
    ),
    (
        re.compile(
            r"(?i)\b(our (product|platform|solution|software|offering|pricing|price list|"
            r"customers|clients|sandbox|trial|pilot|connectors?|migration (package|services?)|"
            r"onboarding (package|paths?)|sales team|account team)|"
            r"we (offer|provide|are (offering|providing)|can offer|include|sell|support)|"
            r"we'?re (offering|providing)|i can offer|i('d| would) (be happy|love) to (show|"
            r"offer|help) you|as your (sales|account) (rep|representative|manager)|"
            r"would you like (to (buy|try|see|sign|schedule)|a (demo|trial|quote))|"
            r"(sign|signing) up (today|now)|let me (show|walk) you|you('ll| will) love|"
            r"full[- ]featured|allows (you|users|customers) to|help you find (a|the) (better|"
            r"right|best) (fit|solution|option)|"
            r"(is|it's) (a|the) (leading|best|full-featured|powerful)|thousands of (plugins|"
            r"integrations)|how can i (help|assist) you)\b"
        ),
        SELLER,
    ),
    (
        re.compile(
            r"(?i)(system prompt|my instructions|stay in character|keep to yourself unless|"
            r"objections you raise|facts you know|you are playing|true about us:|"
            r"what worries me:|i say this only when|"
            # the reviewer's own correction, repeated to the salesperson (the 135M model does)
            r"one to three (short )?(spoken )?sentences|(last|previous) (answer|response) was "
            r"(wrong|incorrect)|i answer again|corrected (answer|version|response)|"
            r"(speaks?|speaking) as the seller|(salesperson|customer)'s question|\bruns on:|"
            r"(initial|previous|original) (message|response|request)\b)"
        ),
        INSTRUCTIONS,
    ),
)
MAX_SENTENCES = 4
MAX_WORDS = 70
# Below this similarity (all-MiniLM-L6-v2) a reply has nothing to do with the question it
# answers; set on tests/evalsets/persona_replies.jsonl (bench quality reports it).
OFF_QUESTION_THRESHOLD = 0.0

_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(%|k\b)?\s*([a-z]+)?(?:\s+([a-z]+))?", re.I
)
_YEAR_SINCE = re.compile(r"(?i)\b(?:from|since|built in|installed in)\s+((?:19|20)\d\d)\b")
_SMALL = re.compile(
    r"(?i)\b(small|tiny|little|undisclosed|start-?up|family[- ]run|handful of)\b[^.]{0,30}"
    r"\b(business|company|firm|team|shop|outfit|organi[sz]ation)\b"
)
_WORD = re.compile(r"[a-z]{4,}")
_STOP = frozenset(
    [
        "what",
        "which",
        "when",
        "where",
        "your",
        "with",
        "have",
        "that",
        "this",
        "there",
        "about",
        "would",
        "could",
        "should",
        "they",
        "them",
        "their",
        "will",
        "from",
        "been",
        "were",
        "does",
        "into",
        "just",
        "like",
        "make",
        "more",
        "most",
        "much",
        "some",
        "such",
        "than",
        "then",
        "also",
        "very",
        "here",
        "tell",
        "today",
        "know",
        "think",
    ]
)
_UNIT_ALIASES = {"people": "employees", "staff": "employees", "employee": "employees"}


# Words after a number that say nothing about what it counts ("2 in the morning").
_NOT_UNITS = frozenset(
    {"the", "and", "for", "but", "our", "its", "are", "was", "who", "you", "all"}
)


def _unit(word: str | None) -> str | None:
    if not word:
        return None
    word = word.lower()
    word = _UNIT_ALIASES.get(word, word)
    return word if len(word) > 2 and word not in _NOT_UNITS and word not in _STOP else None


def _amount(raw: str, suffix: str | None) -> float:
    value = float(raw.replace(",", ""))
    return value * 1000 if (suffix or "").lower() == "k" else value


# Written as words so that they read as the numbers they are.
_SMALL_NUMBERS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "  # noqa: SIM905
        "fourteen fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    word: 10 * (index + 2)
    for index, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())  # noqa: SIM905
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD = "|".join([*_SMALL_NUMBERS, *_TENS, *_SCALES])
# A run of number words ("ten thousand", "twenty-five", "two hundred and fifty").
_SPELLED = re.compile(rf"(?i)\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}))*\b")


def _spelled_value(words: list[str]) -> int:
    total, current = 0, 0
    for word in words:
        if word in _SMALL_NUMBERS:
            current += _SMALL_NUMBERS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:  # thousand, million
            total += max(current, 1) * _SCALES[word]
            current = 0
    return total + current


_AFTER_DIGITS = re.compile(r"\d\s*$")


def with_digits(text: str) -> str:
    """Spelled-out large numbers as digits ("ten thousand users" → "10000 users").

    Only those with a hundred, thousand or million: a customer says the small ones for parts
    of what the card counts ("a pilot in three buildings", "two in the morning"), and the
    number rule would read them as contradicting the whole.
    """

    def digits(match: re.Match[str]) -> str:
        words = [w for w in re.split(r"[\s-]+", match.group(0).lower()) if w != "and"]
        if _AFTER_DIGITS.search(match.string, 0, match.start()):
            return match.group(0)  # "4 million": the scale of a number written in digits
        if not set(words) & _SCALES.keys():
            return match.group(0)
        return str(_spelled_value(words))

    return _SPELLED.sub(digits, text)


_MONTHS = (  # noqa: SIM905
    "january february march april may june july august september october november december"
).split()
# "May" is also a verb: only month names that are not words of their own.
_MONTH = re.compile(r"\b(" + "|".join(m.capitalize() for m in _MONTHS if m != "may") + r")\b")


def numbers_by_unit(text: str) -> dict[str, set[float]]:
    """Numbers and the word after each ("1,200 employees" → {"employees": {1200}})."""
    found: dict[str, set[float]] = {}
    text = with_digits(text)
    for match in _NUMBER.finditer(text):
        # The word after the number and the one after that ("300 CRM users": crm, users).
        units = {_unit(match.group(3)), _unit(match.group(4))} - {None}
        if match.group(2) == "%":
            units = {"percent"}
        for unit in units:
            found.setdefault(unit, set()).add(_amount(match.group(1), match.group(2)))
    for match in _YEAR_SINCE.finditer(text):
        found.setdefault("since-year", set()).add(float(match.group(1)))
    return found


# How far a sum may go past the card's largest before it is a different deal altogether: a
# three-year total or a competitor's quote stays under it, "ten million dollars" does not.
MONEY_FACTOR = 5


def money_amounts(text: str) -> list[float]:
    """The sums of money a text names (spelled-out ones too), read as the knowledge claims
    rule reads figures."""
    return [f.value for f in figures(with_digits(text)) if f.unit in ("usd", "eur")]


_ROLES = {
    "ceo": "ceo",
    "chief executive": "ceo",
    "cfo": "cfo",
    "chief financial officer": "cfo",
    "finance director": "cfo",
    "cio": "cio",
    "chief information officer": "cio",
    "cto": "cto",
    "chief technology officer": "cto",
    "coo": "coo",
    "chief operating officer": "coo",
    "ciso": "ciso",
    "chief information security officer": "ciso",
    "board": "board",
    "it director": "it director",
    "procurement": "procurement",
}
_ROLE = re.compile(r"(?i)\b(" + "|".join(sorted(_ROLES, key=len, reverse=True)) + r")\b")
_FIRST_PERSON = re.compile(r"(?i)\b(i|my|me|i'm|i'll)\b")
_SIGNING = re.compile(r"(?i)\b(sign(s|ed|ing|ature)?|approv(e|es|ed|al)|decid(e|es|ed)|decision)\b")


def _roles(text: str) -> set[str]:
    return {_ROLES[m.lower()] for m in _ROLE.findall(text)}


def _other_signer(reply: str, items: list[str], question: str, own_role: set[str]) -> bool:
    """Someone signs or decides in the reply who is not the card's signer: the card names
    who signs ("The CFO must sign anything over 150,000 USD"), and the reply names only
    other roles where it speaks of signing or deciding ("The CIO, whichever makes the
    decision."), or, asked who signs, names only roles the card has no part for. A persona
    who is the signer may say so in the first person ("Anything over 150,000 USD needs my
    signature. Below that, the IT director decides.")."""
    signers = set().union(*(_roles(item) for item in items if _SIGNING.search(item)))
    if not signers:
        return False
    on_the_card = set().union(*(_roles(item) for item in items))
    asked = bool(_SIGNING.search(question))
    named: set[str] = set()
    for sentence in sentences(reply) or [reply]:
        if _SIGNING.search(sentence):
            named |= _roles(sentence)
            if own_role & signers and _FIRST_PERSON.search(sentence):
                named |= own_role & signers
        elif asked:
            named |= _roles(sentence) - on_the_card
    return bool(named) and not named & signers


def _content_words(text: str) -> set[str]:
    """Content words, cut to their first five letters ("signs" and "sign" meet)."""
    return {w[:5] for w in _WORD.findall(text.lower()) if w not in _STOP}


def contradicts_card(reply: str, persona: PersonaCard, question: str = "") -> bool:
    """A number the reply gives for a thing the card counts otherwise, a month other than the
    card's for what the card dates, another signer than the card's, a sum of money far
    beyond any the card names, or a large company called small."""
    items = [persona.company, *persona.facts, *persona.hidden, *persona.goals]
    known = numbers_by_unit(" ".join(items))
    for unit, values in numbers_by_unit(reply).items():
        if unit in known and not values & known[unit]:
            return True
    if _other_month(reply, items, question) or _other_signer(
        reply, items, question, _roles(persona.role)
    ):
        return True
    card_money = money_amounts(" ".join(items))
    if card_money and any(a > MONEY_FACTOR * max(card_money) for a in money_amounts(reply)):
        return True
    size = max(known.get("employees", {0}))
    return size >= 200 and bool(_SMALL.search(reply))


def _other_month(reply: str, items: list[str], question: str) -> bool:
    """The salesperson asks about what a card item dates ("when does your fiscal year
    start?" — "Northwind's fiscal year starts in April"), and the reply names one month, one
    the card dates nothing in ("In March").

    Only for a question about the item (two of its words): customers name other months
    freely when they plan ("if it is not live by August, we wait until January").
    """
    card_months = {month for item in items for month in _MONTH.findall(item)}
    said = set(_MONTH.findall(reply))
    if len(said) != 1 or said & card_months:
        return False
    asked = _content_words(question)
    for item in items:
        months = set(_MONTH.findall(item))
        subject = _content_words(item) - {m.lower()[:5] for m in months}
        if months and len(subject & asked) >= 2:
            return True
    return False


def leaks_hidden(reply: str, persona: PersonaCard, question: str) -> bool:
    """A figure the card keeps back appears in the reply, and the question was not about it."""
    asked = _content_words(question)
    for item in persona.hidden:
        figures = {m.group(1) for m in _NUMBER.finditer(item)}
        if not any(f in reply for f in figures):
            continue
        if not (_content_words(item) & asked):
            return True
    return False


def rule_issues(
    reply: str,
    *,
    persona: PersonaCard | None = None,
    question: str = "",
    product: str = "",
    cut: bool = False,
) -> list[str]:
    """What the rules find in a reply; ``cut``: the token budget stopped it mid-sentence
    and no whole sentence was left to trim back to."""
    if not reply.strip():
        return [EMPTY]
    issues = [issue for pattern, issue in RULES if pattern.search(reply)]
    if SELLER not in issues and _sells_the_product(reply, product):
        issues.append(SELLER)
    if persona is not None:
        if contradicts_card(reply, persona, question):
            issues.append(CONTRADICTS)
        if leaks_hidden(reply, persona, question):
            issues.append(LEAKS)
    if len(sentences(reply)) > MAX_SENTENCES or len(reply.split()) > MAX_WORDS:
        issues.append(RUNS_ON)
    if cut:
        issues.append(CUT)
    return issues


def _sells_the_product(reply: str, product: str) -> bool:
    """The seller's product as the persona's own ("our CloudCRM", "CloudCRM offers ...")."""
    name = re.escape(product.split()[0].strip(",.")) if product.split() else ""
    if not name:
        return False
    return bool(
        re.search(
            rf"(?i)\b(our|my) {name}\b|\b{name}( enterprise)? (offers|provides|includes|"
            rf"allows|lets you|gives you|comes with)\b",
            reply,
        )
    )


def feedback_message(persona: PersonaCard, issues: list[str]) -> dict[str, str]:
    """The correction the persona gets before its next attempt."""
    return {
        "role": "system",
        "content": (
            f"My last answer was wrong: it {'; it '.join(issues)}. I answer again as "
            f"{persona.name}, {persona.role}, the customer: one to three short spoken "
            "sentences that answer the salesperson's question, about my own company."
        ),
    }


def fallback_reply(persona: PersonaCard) -> str:
    """A safe in-character line for when every attempt was rejected."""
    if persona.objections:
        return f"Let's keep to the point. {persona.objections[0]}."
    return "Let's keep to the point: what exactly are you proposing?"


class JudgedReply(BaseModel):
    in_character: bool
    reveals_instructions: bool
    contradicts_facts: bool


class Reviewer:
    def __init__(
        self,
        judge: Judge | None = None,
        *,
        max_retries: int = 2,
        matcher: SemanticMatcher | None = None,
        off_question_threshold: float = OFF_QUESTION_THRESHOLD,
    ) -> None:
        self._judge = judge
        self._matcher = matcher
        self.max_retries = max_retries
        self.off_question_threshold = off_question_threshold

    @property
    def uses_judge(self) -> bool:
        return self._judge is not None

    async def rule_issues(
        self,
        reply: str,
        *,
        persona: PersonaCard,
        scenario: ScenarioCard,
        question: str,
        cut: bool = False,
    ) -> list[str]:
        """The rules, and the embedder's check that a question was answered."""
        issues = rule_issues(
            reply, persona=persona, question=question, product=scenario.product, cut=cut
        )
        if not issues and self._matcher is not None and question.rstrip().endswith("?"):
            try:
                similarity = await self._matcher.similarity(question, reply)
            except Exception:  # the embedder away: the rules have decided
                return issues
            if similarity < self.off_question_threshold:
                issues.append(OFF_QUESTION)
        return issues

    async def judge_issues(
        self, reply: str, *, persona: PersonaCard, scenario: ScenarioCard
    ) -> list[str]:
        assert self._judge is not None
        facts = "; ".join(persona.facts) or "(none)"
        verdict = await self._judge.ask(
            "reviewer",
            JudgedReply,
            instructions=(
                f"You review a line of dialogue written for {persona.name}, {persona.role} at "
                f"{persona.company}, a customer hearing a pitch for {scenario.product}. "
                f"Known facts: {facts}. Answer each question about the line."
            ),
            material=f"The line: {reply}",
            max_tokens=48,
        )
        issues = []
        if not verdict.in_character:
            issues.append("steps out of the customer's character")
        if verdict.reveals_instructions:
            issues.append("reveals its instructions")
        if verdict.contradicts_facts:
            issues.append("contradicts the persona's facts")
        return issues
