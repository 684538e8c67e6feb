"""The name of a knowledge base, as every layer checks it (no import beyond the standard
library, so the API's schemas, the seed and the store share it without pulling in Qdrant).

A name never contains ".": collections and aliases are ``kb.<company>.<name>[.v<n>]``, so no
two legal names can build the same collection or alias (``retrieval/knowledge_base.py``).
"""

KB_SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,29}$"
