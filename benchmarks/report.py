"""Where every benchmark puts its figures: ``<out>/<name>.json`` and ``<out>/<name>.md``, so runs compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: Path, name: str, report: dict[str, Any], markdown: str) -> None:
    """Write the figures as JSON and the markdown table, and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"written: {out / f'{name}.json'}, {out / f'{name}.md'}")
