"""Parsing, chunking, the Qdrant hybrid store, fusion, reranking and retrieval evaluation."""
