"""Contracts and plumbing shared by every service: events, topics, settings, Kafka, Qdrant."""
