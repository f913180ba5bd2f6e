"""Embedding: chunk batches into the vector store, exactly, idempotently, replayably."""
