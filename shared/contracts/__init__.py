"""What upstream teams and every service agree on: the events, the topics, their JSON Schemas,
signed trace ids and the publishing SDK. Importable with pydantic and kafka-python alone (no
torch, faust or qdrant): a team that only publishes documents installs nothing heavier."""
