"""A company's knowledge base is stored as "<company id>_<name>": every legal API name fits."""

import re
import uuid

from retrieval import knowledge_base
from retrieval.names import KB_SLUG_PATTERN


def test_the_longest_legal_name_of_any_company_is_a_legal_store_name():
    longest = "a" * 30
    assert re.match(KB_SLUG_PATTERN, longest) and not re.match(KB_SLUG_PATTERN, longest + "a")
    stored = f"{uuid.uuid4().hex}_{longest}"
    assert knowledge_base._SLUG.match(stored)
    assert "." not in stored
