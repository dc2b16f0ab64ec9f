"""``python -m benchmarks.peers``: the ceiling, every server checked and loaded, the report written."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort

from benchmarks import peers
from benchmarks.peers import CPUS, FULL, PEER_PACKAGES, SERVER_FAMILIES, SMOKE
from benchmarks.peers.bodies import answer, make_bodies
from benchmarks.peers.ceiling import ceiling
from benchmarks.peers.report import goals, markdown
from benchmarks.peers.servers import load, start_servers, stop_all
from benchmarks.peers.venvs import peer_venv
from cifar10_pipeline.inference.runtime import load_session
from harness.models import make_models
from harness.report import machine, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=peers.__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for peers.json/.md")
    parser.add_argument("--smoke", action="store_true", help="tiny durations, concurrency 1 only")
    parser.add_argument("--servers", default=",".join(SERVER_FAMILIES),
                        help=f"comma-separated, of {', '.join(SERVER_FAMILIES)} (default all); the ceiling always runs")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.servers.split(",") if f.strip()]
    unknown = sorted(set(families) - set(SERVER_FAMILIES))
    if unknown or not families:
        parser.error(f"--servers: unknown {unknown}; choose from {', '.join(SERVER_FAMILIES)}")
    if shutil.which("wrk") is None:
        parser.error("needs wrk, the HTTP load generator (Debian: apt-get install wrk; or .ci/system-deps.sh)")
    counts = SMOKE if args.smoke else FULL

    versions = {"onnxruntime": ort.__version__}
    for family in families:
        if family in PEER_PACKAGES:
            versions[family] = peer_venv(family)[1]

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        workdir = Path(tmp)
        _, onnx_path = make_models(workdir)
        model = load_session(onnx_path, ["CPUExecutionProvider"], intra_op_threads=1)  # as the service loads it
        bodies = make_bodies(workdir, model.info.input_shape)
        labels = list(model.info.labels)
        expected = labels[int(model.run(bodies.pixels).argmax())]
        print("ceiling: onnxruntime in-process", file=sys.stderr, flush=True)
        top = ceiling(model.session, bodies.pixels, counts)

        servers, targets, info = start_servers(families, workdir, onnx_path, bodies, versions)
        try:
            for target in targets:  # every server classifies the image as onnxruntime does, before any load
                server = servers[target.server]
                try:
                    got = answer(target, server.port, labels)
                except (OSError, RuntimeError) as e:
                    raise RuntimeError(f"{target.name} fails: {e}\n{server.log.read_text()[-3000:]}") from e
                if got != expected:
                    raise RuntimeError(f"{target.name} answers {got!r} for the image, onnxruntime {expected!r}")
            rows = load(servers, targets, counts, top["images_per_s"])
        finally:
            stop_all(servers)

    report = {
        "smoke": args.smoke,
        "machine": machine(),
        "cpus": CPUS,
        "versions": versions,
        "bytes": bodies.sizes,
        "measure_s": counts.rounds * counts.round_s,
        "concurrency": list(counts.concurrency),
        "ceiling": top,
        "servers": info,
        "order": [target.name for target in targets],
        "load": rows,
        "goals": goals(rows, top["images_per_s"]),
    }
    write_report(args.out, "peers", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
