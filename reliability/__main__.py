"""Reliability figures: the service fuzzed, soaked and hot-swapped under load; training and tuning killed
with ``kill -9`` and resumed.

``python -m reliability`` runs every scenario (``make stress``); ``--only fuzz soak`` runs some, ``--smoke``
their short CI versions. Each scenario's figures go to ``--out`` as ``stress-<name>.json`` and ``.md``;
full runs also replace the scenario's section of RELIABILITY.md, under the command that produced it. The exit
status is 1 when a scenario missed a goal (the figures are written first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType

from harness.report import RELIABILITY_MD, machine, record_section, write_figures
from reliability import fuzz, kill_training, kill_tuning, soak, swaps

SCENARIOS: dict[str, ModuleType] = {module.NAME: module for module in (fuzz, soak, swaps, kill_training, kill_tuning)}
NEEDS_WRK = {soak.NAME, swaps.NAME}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n\n")[0],
                                     epilog=f"scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME",
                        help=f"run only these scenarios, in the order given (default: all of {', '.join(SCENARIOS)})")
    parser.add_argument("--smoke", action="store_true", help="the short CI version of each scenario (seconds, "
                        "small counts); RELIABILITY.md is left alone")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="directory for stress-<name>.json and .md (default bench-results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.only or SCENARIOS))
    if NEEDS_WRK & set(names) and shutil.which("wrk") is None:
        parser.error("the soak and swaps scenarios need wrk, the HTTP load generator "
                     "(Debian: apt-get install wrk; or .ci/system-deps.sh)")

    missed = []
    for name in names:
        module = SCENARIOS[name]
        print(f"stress: {name}{' (smoke)' if args.smoke else ''}", file=sys.stderr, flush=True)
        started, load_before = time.perf_counter(), os.getloadavg()[0]
        figures = {"scenario": name, "smoke": args.smoke, "machine": machine(), **module.run(args.smoke)}
        figures.update(wall_s=time.perf_counter() - started, load_average={"start": load_before,
                                                                           "end": os.getloadavg()[0]})
        text = module.markdown(figures).rstrip() + (
            f"\n\nMachine: {figures['machine']}; load average (1 min) {load_before:.1f} at the start, "
            f"{figures['load_average']['end']:.1f} at the end ({figures['wall_s']:.0f} s in all).\n")
        write_figures(args.out, f"stress-{name}", figures, text)
        if not args.smoke:
            command = " ".join(["python -m reliability", *(argv if argv is not None else sys.argv[1:])])
            record_section(RELIABILITY_MD, f"stress-{name}", text, command, "make stress")
            print(f"recorded in {RELIABILITY_MD}")
        missed += [f"{name}: {g['goal']} ({g['figure']})" for g in figures["goals"] if not g["met"]]
    if missed:
        print("goals missed:\n  " + "\n  ".join(missed), file=sys.stderr)
        return 1
    print(f"every goal met: {', '.join(names)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
