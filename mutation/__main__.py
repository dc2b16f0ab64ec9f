"""``make mutation``: mutation testing (mutmut) of the modules where a silent wrong answer costs most, one module at
a time against the fast tests that cover it, with a score per module.

``python -m mutation [--only NAME ...] [--out bench-results/mutation] [--max-children N] [--survivors]``

The modules and their tests are ``mutation/modules.toml``; the mutants that change no observable behaviour, each
with the reason, are ``mutation/equivalent.toml``. Each module runs in its own scratch directory
(``build/mutation/<name>``: links to ``src``, ``tests`` and ``harness``, and a pyproject.toml whose ``[tool.mutmut]``
names the module and its tests), where mutmut copies the code, mutates it and runs each mutant against the tests
that reach the mutated function. The scores go to ``<out>/scores.json`` and ``<out>/scores.md``: per module the
mutants, killed, survived (no test reached it counts as survived), timeouts (killed: a mutant that hangs the tests
is caught), the equivalent ones, and the score, killed / (mutants - equivalent), with the wall time and when it
ran; ``--only`` reruns some modules and keeps the others' last rows (``<out>/modules/<name>.json``);
``--survivors`` keeps each module's last run and runs only its survivors again, once tests were added to kill them.
Every surviving mutant's diff goes to ``<out>/survivors.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import REPO
from harness.report import machine, write_figures

HERE = Path(__file__).resolve().parent
MODULES = HERE / "modules.toml"
EQUIVALENT = HERE / "equivalent.toml"
SCRATCH = REPO / "build" / "mutation"
LINKED = ("src", "tests", "harness")  # what the tests need from the repository; mutmut copies them under mutants/
GOAL = 0.9  # the goal: at least 90% of the non-equivalent mutants killed in each module
# mutmut's exit codes (mutmut.stats.status_by_exit_code) folded into the score's columns: a mutant that makes the
# tests time out is caught (the suite would not pass), one no test reaches survives
KILLED = {1, 3}
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
SEP = "ǁ"  # mutmut's separator in a method's mangled name: xǁClassǁmethod


@dataclass(frozen=True)
class Module:
    """One entry of modules.toml."""

    name: str
    files: list[str]
    tests: list[str]
    functions: list[str]
    deselect: list[str]

    def dotted(self, file: str) -> str:
        """``src/a/b.py`` -> ``a.b`` (a package's ``__init__.py`` is the package), as mutmut names mutants."""
        return Path(file).relative_to("src").with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")

    def patterns(self) -> list[str]:
        """mutmut's mutant-name patterns for this module: every function of its files, or the listed ones."""
        out = []
        for file in self.files:
            prefix = self.dotted(file)
            if not self.functions:
                out.append(f"{prefix}.x*__mutmut_*")
            for function in self.functions:
                cls, _, name = function.rpartition(".")
                out.append(f"{prefix}.x{SEP}{cls}{SEP}{name}__mutmut_*" if cls else f"{prefix}.x_{name}__mutmut_*")
        return out

    def owns(self, mutant: str) -> bool:
        return any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), mutant) for p in self.patterns())


def load_modules() -> list[Module]:
    raw = tomllib.loads(MODULES.read_text())
    return [Module(name, entry["files"], entry["tests"], entry.get("functions", []), entry.get("deselect", []))
            for name, entry in raw.items()]


def load_equivalent() -> dict[str, dict[str, str]]:
    """mutant name -> its entry (``mutant``, ``change``: a line of its diff, ``why``) from equivalent.toml."""
    entries = tomllib.loads(EQUIVALENT.read_text()).get("mutant", []) if EQUIVALENT.exists() else []
    return {e["mutant"]: e for e in entries}


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(module: Module) -> Path:
    """A fresh scratch directory for ``module``: links to the code and tests, and its mutmut config."""
    work = SCRATCH / module.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in LINKED:
        (work / name).symlink_to(REPO / name)
    pytest_args = ["-p", "no:cacheprovider", "-m", "not slow and not containers and not gpu"]
    pytest_args += [f"--deselect={nodeid}" for nodeid in module.deselect]
    # the repository's pytest settings (markers, filters) come along: mutmut copies pyproject.toml under mutants/
    config = (REPO / "pyproject.toml").read_text() + (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {toml_list(module.files)}\n"
        'also_copy = ["harness"]\n'
        f"pytest_add_cli_args = {toml_list(pytest_args)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(module.tests)}\n"
        # a clean process per mutant, forked from one that imported the tests but never ran them: onnxruntime, torch
        # and the batcher's threads are not fork-safe once they have run
        'process_isolation = "forkserver"\n'
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(config)
    return work


def run_module(module: Module, max_children: int, survivors_only: bool = False) -> tuple[dict[str, int], float]:
    """Run mutmut over ``module``; returns mutant name -> exit code, and the wall time in seconds. With
    ``survivors_only`` the module's last run (its scratch directory) is kept and only its survivors run again,
    against the tests as they are now."""
    work = SCRATCH / module.name
    if survivors_only:
        if not (work / "mutants").is_dir():
            raise SystemExit(f"{module.name} has no earlier run in {work} to rerun the survivors of; run it whole first")
        targets = [m for m, c in read_codes(module, work).items() if c in SURVIVED | NO_TESTS]
    else:
        work = prepare(module)
        targets = module.patterns()
    # the tests' subprocesses import the mutants too. The folder exists before Python starts: a PYTHONPATH entry
    # missing at start-up is cached as unimportable, and the tests would import the unmutated code
    mutated = work / "mutants" / "src"
    mutated.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(mutated)}
    start = time.monotonic()
    if targets:
        result = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children),
                                 *targets], cwd=work, env=env)
        if result.returncode != 0:
            raise SystemExit(f"mutmut failed on {module.name} (exit {result.returncode}); see its output above")
    return read_codes(module, work), time.monotonic() - start


def read_codes(module: Module, work: Path) -> dict[str, int]:
    """mutant name -> mutmut's exit code, for the mutants of ``module`` in its scratch directory ``work``."""
    codes: dict[str, int] = {}
    for file in module.files:
        meta = json.loads((work / "mutants" / (file + ".meta")).read_text())
        codes.update({k: v for k, v in meta["exit_code_by_key"].items() if module.owns(k)})
    return codes


def diff(module: Module, mutant: str) -> str:
    """The mutant's unified diff, as ``mutmut show`` prints it."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=SCRATCH / module.name,
                         capture_output=True, text=True)
    return out.stdout.strip()


def changed_lines(text: str) -> list[str]:
    return [line[1:].strip() for line in text.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def score(module: Module, codes: dict[str, int], equivalent: dict[str, dict[str, str]],
          seconds: float) -> dict[str, Any]:
    """The module's row, with each survivor's diff (markdown)."""
    killed = sum(c in KILLED for c in codes.values())
    timeout = sum(c in TIMEOUT for c in codes.values())
    not_killed = sorted(m for m, c in codes.items() if c not in KILLED | TIMEOUT)
    unknown = sorted(m for m in not_killed if codes[m] not in SURVIVED | NO_TESTS)
    if unknown:
        raise SystemExit(f"{module.name}: mutants neither killed nor survived (mutmut status codes "
                         f"{sorted({codes[m] for m in unknown})}): {unknown[:5]}")
    equal, survived, stale, survivors = [], [], [], []
    for mutant in not_killed:
        text = diff(module, mutant)
        entry = equivalent.get(mutant)
        # an entry holds only while the mutant still makes the change it was judged on
        if entry is not None and entry["change"].strip() in changed_lines(text):
            equal.append(mutant)
            continue
        if entry is not None:
            stale.append(mutant)
        survived.append(mutant)
        status = "no test reaches it" if codes[mutant] in NO_TESTS else "survived"
        survivors.append(f"### {mutant} ({module.name}, {status})\n\n```diff\n{text}\n```\n")
    for mutant in stale:
        print(f"warning: equivalent.toml's entry for {mutant} no longer matches its diff: counted as survived",
              file=sys.stderr)
    counted = len(codes) - len(equal)
    return {"module": module.name, "files": module.files, "functions": module.functions or "all",
            "tests": module.tests, "mutants": len(codes), "killed": killed + timeout, "timeout": timeout,
            "survived": len(survived), "no_tests": sum(codes[m] in NO_TESTS for m in survived),
            "equivalent": len(equal), "score": (killed + timeout) / counted if counted else 1.0,
            "survivors": survived, "wall_seconds": round(seconds, 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "survivor_diffs": survivors}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# Mutation scores", "",
             f"mutmut over the modules of `mutation/modules.toml`, each against its fast tests; machine: {machine()}.",
             "Score: killed / (mutants - equivalent); a timeout counts as killed, a mutant no test reaches as "
             f"survived. Goal: >= {GOAL:.0%} per module.", "",
             "| module | mutants | killed | survived | timeout | equivalent | score | wall | run |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    lines += [f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['survived']} | {r['timeout']} | "
              f"{r['equivalent']} | {100 * r['score']:.1f}% | {r['wall_seconds']:.0f} s | {r['date']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run these modules of modules.toml only; the others keep their last rows in the scores")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "mutation",
                        help="where scores.json, scores.md and survivors.md go (default: %(default)s)")
    parser.add_argument("--max-children", type=int, default=len(os.sched_getaffinity(0)),
                        help="mutants run at once (default: the CPUs here, %(default)s)")
    parser.add_argument("--survivors", action="store_true",
                        help="rerun only the survivors of each module's last run against the tests as they are now "
                             "(after adding tests that kill them), and score the module again")
    args = parser.parse_args(argv)
    modules = load_modules()
    unknown = sorted(set(args.only or []) - {m.name for m in modules})
    if unknown:
        parser.error(f"unknown module(s) {unknown}; modules.toml has {[m.name for m in modules]}")
    equivalent = load_equivalent()
    (args.out / "modules").mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for module in modules:
        if args.only and module.name not in args.only:
            continue
        print(f"== {module.name}: {', '.join(module.files)} against {', '.join(module.tests)}", flush=True)
        last = args.out / "modules" / f"{module.name}.json"
        codes, seconds = run_module(module, args.max_children, survivors_only=args.survivors)
        row = score(module, codes, equivalent, seconds)
        if args.survivors and last.exists():  # the whole run's time, and when its survivors ran again
            row["wall_seconds"] += json.loads(last.read_text())["wall_seconds"]
            row["date"] += ", survivors rerun"
        last.write_text(json.dumps(row, indent=2) + "\n")
    # every module's last row, this run's or an earlier one's (its date says which)
    rows = [json.loads(path.read_text()) for module in modules
            if (path := args.out / "modules" / f"{module.name}.json").exists()]
    figures = {"machine": machine(), "goal": GOAL, "wall_seconds_this_run": round(time.monotonic() - start, 1),
               "modules": [{k: v for k, v in r.items() if k != "survivor_diffs"} for r in rows]}
    write_figures(args.out, "scores", figures, markdown(rows))
    survivors = [text for r in rows for text in r["survivor_diffs"]]
    (args.out / "survivors.md").write_text("# Surviving mutants\n\n" + ("\n".join(survivors) or "None.\n"))
    print(f"this run: {figures['wall_seconds_this_run']:.0f} s; survivors' diffs: {args.out / 'survivors.md'}")
    return 0 if all(r["score"] >= GOAL for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
