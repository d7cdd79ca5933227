"""``blocklist providers``: the registered provider types with their capabilities."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def render_providers(caps: Mapping[str, Mapping[str, Any]], *, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(caps, indent=2)
    lines = []
    for name, c in caps.items():
        ops = ", ".join(k for k in ("list", "add", "remove") if c[f"can_{k}"])
        remove = "one per call" if c["remove_one_per_call"] else f"≤{c['batch_limit']} per request"
        lines.append(f"{name}")
        lines.append(f"  can:          {ops}")
        lines.append(f"  batch limit:  {c['batch_limit']} numbers per request; removes {remove}")
        lines.append(f"  removes by:   {c['remove_by']}")
        lines.append(f"  concurrency:  {c['concurrency_limit']} requests in flight")
        expiry = "native" if c["native_expiry"] else "emulated (removed when expired)"
        lines.append(f"  expiry:       {expiry}")
        scope = ", ".join(c["scope_fields"]) or "(account)"
        lines.append(f"  scope:        {scope}")
        if c["attribute_fields"]:
            lines.append(f"  attributes:   {', '.join(c['attribute_fields'])}")
        lines.append(f"  credentials:  {', '.join(c['credential_keys'])}")
        lines.append(f"  base URL:     {c['default_base_url']}")
        lines.append(f"  wire format:  {c['wire_format']}")
    return "\n".join(lines)
