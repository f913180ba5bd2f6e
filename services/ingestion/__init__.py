"""Ingestion: validate, normalise, redact, chunk and hash document events."""
