"""Inference: the HTTP endpoint that answers questions with retrieval-augmented generation."""
