"""Offline evaluation: cases, the gate, agreement and A/B over eval.results (`llmops eval`)."""
