"""How the plan now differs from the reviewed one: text for the log, markdown for
the CI job summary (``plan --compare``, the apply workflow)."""

from __future__ import annotations

import html
from pathlib import Path

from ..plancompare import Difference
from .format import MARKDOWN_LIMIT, clean, mask_text, plural


def render_comparison(
    differences: list[Difference], reviewed: Path, *, fmt: str, mask: bool
) -> str:
    hide = mask_text if mask else (lambda text: text)
    if fmt == "markdown":
        if not differences:
            return f"## blocklist plan compared\n\n**The plan now equals the reviewed plan** (`{reviewed}`)."
        head = (
            "## blocklist plan compared\n\n"
            f"> [!CAUTION]\n> **The plan now differs from the reviewed plan** (`{reviewed}`): "
            f"{plural(len(differences), 'difference', 'differences')}. Nothing was applied; "
            "review a fresh plan.\n\n"
            "| target | difference |\n| --- | --- |\n"
        )
        rows = []
        size = len(head)
        for d in differences:
            what = html.escape(clean(hide(d.what)), quote=False).replace("|", "\\|")
            row = f"| `{clean(d.target) or '(plan)'}` | {what} |\n"
            if size + len(row) > MARKDOWN_LIMIT - 200:
                rows.append(f"\n…and {plural(len(differences) - len(rows), 'more', 'more')}\n")
                break
            size += len(row)
            rows.append(row)
        return head + "".join(rows).rstrip("\n")
    if not differences:
        return f"The plan now equals the reviewed plan ({reviewed})."
    lines = [
        f"The plan now differs from the reviewed plan ({reviewed}): "
        f"{plural(len(differences), 'difference', 'differences')}"
    ]
    lines += [f"  {clean(hide(str(d)))}" for d in differences]
    return "\n".join(lines)
