"""Where figures go: ``<out>/<name>.json`` and ``<out>/<name>.md``, so runs compare, and (full runs only) the
section ``<name>`` of the document that keeps them, BENCHMARKS.md for the benchmarks and RELIABILITY.md for the
reliability scenarios, under the command that produced it.

Each document's text before its first section is written by hand (the setup); each section is replaced whole by
the next full run that produces it.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness import REPO

BENCHMARKS_MD = REPO / "BENCHMARKS.md"
RELIABILITY_MD = REPO / "RELIABILITY.md"


def machine() -> str:
    """What the figures were measured on: architecture, CPUs, the CPU's model and whether it has native
    bfloat16 (AVX512-BF16 or AMX), which decides the PyTorch trainer's precision and much of its speed."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = set((re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M) or [None, ""])[1].split())
    bf16 = "yes" if flags & {"avx512_bf16", "amx_bf16"} else "no"
    return (f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, {model[1] if model else 'unknown CPU'}, "
            f"native bfloat16: {bf16}, Python {platform.python_version()}")


def write_figures(out: Path, name: str, figures: dict[str, Any], markdown: str) -> None:
    """Write ``figures`` as ``<out>/<name>.json`` and the ``markdown`` table as ``<out>/<name>.md``; print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"written: {out / f'{name}.json'}, {out / f'{name}.md'}")


def write_report(out: Path, name: str, report: dict[str, Any], markdown: str, *, record: bool,
                 module: str | None = None, target: str = "make bench") -> None:
    """A benchmark's figures: ``write_figures``, and with ``record`` the table put into BENCHMARKS.md as the section
    ``name``, under the command ``python -m benchmarks.<module>`` (default: name) and this process's arguments,
    part of the make ``target``."""
    write_figures(out, name, report, markdown)
    if record:
        command = " ".join(["python -m", f"benchmarks.{module or name}", *sys.argv[1:]])
        record_section(BENCHMARKS_MD, name, markdown, command, target)
        print(f"recorded in {BENCHMARKS_MD}")


def record_section(path: Path, name: str, markdown: str, command: str, target: str) -> None:
    """Replace the section ``name`` of the file at ``path`` (or append it) with ``markdown``, its headings one
    level down, under a line naming ``command``, the make ``target`` that runs it and the date."""
    body = re.sub(r"^(#+) ", r"#\1 ", markdown.strip(), flags=re.M)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    section = (f"<!-- begin {name} -->\n{body}\n\nCommand: `{command}` (part of `{target}`; run {stamp}).\n"
               f"<!-- end {name} -->")
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    # benchmarks running side by side (a make bench and a gpu_check rehearsal) record into one file: each one's
    # read-modify-write holds the file's lock, or the later write would drop the section the other had just added
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read() or "# Benchmarks\n"
        text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
        f.seek(0)
        f.truncate()
        f.write(text)
