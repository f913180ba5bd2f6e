"""The monitoring service: event-time windows over every topic, alert rules with a lifecycle."""
