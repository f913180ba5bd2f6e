"""JSON Schemas of the event contracts, for upstream teams."""

from __future__ import annotations

import json
from pathlib import Path

from shared.contracts.events import EVENT_MODELS


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<Model>.schema.json`` for every event model; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in sorted(EVENT_MODELS.items()):
        path = directory / f"{name}.schema.json"
        schema = model.model_json_schema()
        schema["$id"] = f"llmops:{name}:v{model.SCHEMA_VERSION}"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
