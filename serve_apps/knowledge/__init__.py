"""The knowledge base on Serve: the embedder deployment and the knowledge service."""
