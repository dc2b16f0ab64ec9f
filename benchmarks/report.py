"""Where every benchmark puts its figures: ``<out>/<name>.json`` and ``<out>/<name>.md``, so runs compare, and
(full runs only) the section ``<name>`` of BENCHMARKS.md, with the command that produced it.

BENCHMARKS.md is the one place the project's figures live: its text before the first section is written by
hand (the setup), each section is replaced whole by the next full run of its benchmark.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
MAKE_TARGETS = {"tune": "make bench-tune", "rollout": "make bench-rollout"}  # the make target that runs each benchmark; the rest: make bench


def machine() -> str:
    """What the figures were measured on: architecture, CPUs, the CPU's model and whether it has native
    bfloat16 (AVX512-BF16 or AMX), which decides the PyTorch trainer's precision and much of its speed."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = set((re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M) or [None, ""])[1].split())
    bf16 = "yes" if flags & {"avx512_bf16", "amx_bf16"} else "no"
    return (f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, {model[1] if model else 'unknown CPU'}, "
            f"native bfloat16: {bf16}, Python {platform.python_version()}")


def write_report(out: Path, name: str, report: dict[str, Any], markdown: str, *, record: bool,
                 module: str | None = None) -> None:
    """Write the figures as JSON and the markdown table, print the table, and with ``record`` put it into
    BENCHMARKS.md as the section ``name``, under the command ``python -m benchmarks.<module>`` (default: name)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"written: {out / f'{name}.json'}, {out / f'{name}.md'}")
    if record:
        command = " ".join(["python -m", f"benchmarks.{module or name}", *sys.argv[1:]])
        record_section(BENCHMARKS_MD, name, markdown, command, MAKE_TARGETS.get(name, "make bench"))
        print(f"recorded in {BENCHMARKS_MD}")


def record_section(path: Path, name: str, markdown: str, command: str, target: str = "make bench") -> None:
    """Replace the section ``name`` of the file at ``path`` (or append it) with ``markdown``, its headings one
    level down, under a line naming ``command``, the make ``target`` that runs it and the date."""
    body = re.sub(r"^(#+) ", r"#\1 ", markdown.strip(), flags=re.M)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    section = f"<!-- begin {name} -->\n{body}\n\nCommand: `{command}` (part of `{target}`; run {stamp}).\n<!-- end {name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
