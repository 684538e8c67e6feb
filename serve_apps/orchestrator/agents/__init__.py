"""The agents around a trainee's conversation, each with a typed output.

Deterministic rules decide first wherever a rule can; the judge model (guided JSON) decides
the rest. Each agent is a plain class, so unit tests drive it without Ray.
"""
