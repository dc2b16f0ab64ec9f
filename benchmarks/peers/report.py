"""The goals, met or not with the figures behind them, and the report's Markdown."""

from __future__ import annotations

from benchmarks.peers import GOAL_BINARY, GOAL_PREDICT, GOAL_RATIO, TUNING
from harness.load import failed_cell


def goals(rows: list[dict], ceiling_rps: float) -> list[dict]:
    """The goals, each with ``met`` (None when not measured) and the figures behind it."""

    def best(name_or_family: str) -> dict | None:
        candidates = [r for r in rows if name_or_family in (r["server"], r["family"])]
        return max(candidates, key=lambda r: r["requests_per_s"]) if candidates else None

    def at(name: str, concurrency: int) -> dict | None:
        return next((r for r in rows if r["server"] == name and r["concurrency"] == concurrency), None)

    out = []
    # like against like: the same body to both, an upload for BentoML, a V2 JSON tensor for MLServer
    for family, ours in (("bentoml", "this service: /predict"), ("mlserver", "this service: /v2 infer, JSON")):
        goal = f"{ours} >= {GOAL_RATIO:g}x the best configuration of {family}, at a lower p99"
        peer = best(family)
        mine = at(ours, peer["concurrency"]) if peer else None
        if peer is None or mine is None:
            out.append({"goal": goal, "met": None, "detail": "not measured"})
            continue
        ratio = mine["requests_per_s"] / peer["requests_per_s"]
        out.append({
            "goal": goal, "met": ratio >= GOAL_RATIO and mine["p99_ms"] < peer["p99_ms"], "ratio": ratio,
            "detail": f"at concurrency {peer['concurrency']}, where {peer['server']} peaks: "
                      f"{mine['requests_per_s']:.0f} against {peer['requests_per_s']:.0f} req/s = {ratio:.2f}x, "
                      f"p99 {mine['p99_ms']:.1f} against {peer['p99_ms']:.1f} ms",
        })
    for name, share in (("this service: /predict", GOAL_PREDICT), ("this service: /v2 infer, binary", GOAL_BINARY)):
        goal = f"{name} >= {share:.0%} of the onnxruntime ceiling"
        mine = best(name)
        if mine is None:
            out.append({"goal": goal, "met": None, "detail": "not measured"})
            continue
        fraction = mine["requests_per_s"] / ceiling_rps
        out.append({"goal": goal, "met": fraction >= share, "fraction": fraction,
                    "detail": f"{mine['requests_per_s']:.0f} req/s at concurrency {mine['concurrency']} against "
                              f"{ceiling_rps:.0f} images/s = {fraction:.1%}"})
    return out


def markdown(report: dict) -> str:
    ceiling_rps = report["ceiling"]["images_per_s"]
    lines = [
        f"# Serving against its peers ({report['machine']}{', smoke durations' if report['smoke'] else ''})",
        "",
        f"The same ONNX file served by this service, BentoML and MLServer (each peer in its own venv), all with "
        f"onnxruntime {report['versions']['onnxruntime']} on the same {report['cpus']} CPUs that wrk also runs "
        f"on. Upload servers get the same multipart body with a {report['bytes']['png']}-byte PNG; tensor servers "
        f"the same image as a UINT8 tensor ({report['bytes']['v2_json']} bytes of JSON, "
        f"{report['bytes']['v2_binary']} binary). {report['measure_s']:g} s measured per server and concurrency, "
        "in turns with the others; p50 of the median round, p99 of the worst; CPU: all the server's processes.",
        "",
        f"Ceiling: onnxruntime alone in-process, batch 1, {report['ceiling']['threads']} threads calling: "
        f"**{ceiling_rps:.0f} images/s**.",
        "",
        "| server | concurrency | requests/s | p50 ms | p99 ms | server CPU ms/request | failed | of ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(report["load"], key=lambda r: (report["order"].index(r["server"]), r["concurrency"])):
        lines.append(
            f"| {row['server']} | {row['concurrency']} | {row['requests_per_s']:.1f} | {row['p50_ms']:.1f} "
            f"| {row['p99_ms']:.1f} | {row['server_cpu_ms_per_request']:.2f} | {failed_cell(row)} "
            f"| {row['fraction_of_ceiling']:.1%} |")
    lines += ["", "Goals:", ""]
    for goal in report["goals"]:
        verdict = {True: "met", False: "not met", None: "not measured"}[goal["met"]]
        lines.append(f"- {goal['goal']}: **{verdict}** ({goal['detail']})")
    lines += ["", "Servers and tuning:", ""]
    for server in report["servers"]:
        lines.append(f"- {server['server']}: {server['config']}; start to ready {server['start_to_ready_s']:.1f} s")
    for family, text in TUNING.items():
        if family in report["versions"]:
            lines.append(f"- {family} tuning: {text}")
    lines.append("")
    return "\n".join(lines)
