"""JSON Schemas of the two file kinds, generated from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path

from .models import ListFile, ProvidersFile

SCHEMA_FILES = {
    "providers.schema.json": ProvidersFile,
    "blocklist.schema.json": ListFile,
}


def schema_texts() -> dict[str, str]:
    """File name -> schema JSON text (stable: sorted keys, trailing newline)."""
    out = {}
    for name, model in SCHEMA_FILES.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = name
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
