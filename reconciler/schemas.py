"""JSON Schemas of every file the tool reads or writes, generated from their
pydantic models: providers.yaml, list files, plan files and apply reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .models import list_file_schema, providers_file_schema
from .planfile import plan_schema
from .report import report_schema

SCHEMA_FILES: dict[str, Callable[[], dict[str, object]]] = {
    "providers.schema.json": providers_file_schema,
    "blocklist.schema.json": list_file_schema,
    "plan.schema.json": plan_schema,
    "apply-report.schema.json": report_schema,
}


def schema_texts() -> dict[str, str]:
    """File name -> schema JSON text (stable: sorted keys, trailing newline)."""
    out = {}
    for name, make in SCHEMA_FILES.items():
        schema = make()
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
