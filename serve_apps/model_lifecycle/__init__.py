"""Model versions for ML engineers: which version of each role answers, and the swap that
moves a role to another version under live conversations (``docs/model-lifecycle.md``)."""
