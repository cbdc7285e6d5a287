"""Run every benchmark and write bench/results/<name>.json (atomically).

    python bench/run_all.py                 # `make bench`: all six, ~20 min on 2 CPU cores
    python bench/run_all.py --quick         # smoke run, rough figures
    python bench/run_all.py --only inference,serving --output bench/results/gpu.json
    python bench/run_all.py --only train_step --repeats 7 --merge   # rerun one, keep the rest

Each benchmark runs in its own process (its own TF runtime, no state shared between
benchmarks); its JSON lines are collected, and the file holds the machine description,
every figure, and the targets with met/missed. A benchmark that fails is recorded with
its error and the others still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCHMARKS = ("input_pipeline", "train_step", "inference", "serving", "serving_memory", "scaling")


def run_one(name: str, quick: bool, extra: list[str], timeout: float) -> dict:
    handle, lines_path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".jsonl")
    os.close(handle)
    command = [sys.executable, os.path.join(common.HERE, f"{name}.py"), "--json", lines_path, *extra]
    if quick:
        command.append("--quick")
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.time()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    try:
        result = subprocess.run(command, timeout=timeout, env=env)
        error = None if result.returncode == 0 else f"exit code {result.returncode}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s"
    with open(lines_path, encoding="utf-8") as handle:
        figures = [json.loads(line) for line in handle if line.strip()]
    os.unlink(lines_path)
    return {"seconds": round(time.time() - start, 1), "error": error, "figures": figures}


def merge(earlier: dict, results: dict) -> dict:
    """The earlier document's benchmark results, with those run now replacing theirs."""
    merged = dict(results)
    for name, result in earlier.get("benchmarks", {}).items():
        if name not in merged:
            merged[name] = {**result, "from_earlier_run": result.get("from_earlier_run")
                            or earlier.get("machine", {}).get("date_utc")}
    return {name: merged[name] for name in BENCHMARKS if name in merged}


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks to run")
    p.add_argument("--output", default=os.path.join(common.RESULTS, "cpu-2core.json"))
    p.add_argument("--note", default="", help="free text stored with the results (e.g. what else ran)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per benchmark")
    p.add_argument("--merge", action="store_true",
                   help="keep the other benchmarks' results already in --output; replace only those run now")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        p.error(f"unknown benchmarks {unknown}; valid: {', '.join(BENCHMARKS)}")

    started = time.time()
    load_start = os.getloadavg()
    extra = ["--repeats", str(args.repeats)] if args.repeats else []
    results = {name: run_one(name, args.quick, extra, args.timeout) for name in names}
    load_end = os.getloadavg()
    earlier = {}
    if args.merge and os.path.exists(args.output):
        with open(args.output, encoding="utf-8") as handle:
            earlier = json.load(handle)
        results = merge(earlier, results)

    common.quiet_tensorflow()
    machine = common.machine()
    machine["load_average_at_start"] = [round(x, 2) for x in load_start]
    machine["load_average_at_end"] = [round(x, 2) for x in load_end]
    cores = os.cpu_count() or 1
    notes = [args.note] if args.note else []
    if load_start[0] > 0.5 * cores:
        notes.append(f"other jobs were running: 1-min load average {load_start[0]:.1f} on {cores} cores at the "
                     "start; absolute figures are noisy, the ratios were measured side by side in this run")
    if earlier:
        # Keep what the earlier run measured and how busy the machine was, replaced results included.
        machine["earlier_run"] = {"machine": earlier.get("machine"), "total_seconds": earlier.get("total_seconds"),
                                  "replaced": {n: earlier["benchmarks"][n] for n in names
                                               if n in earlier.get("benchmarks", {})}}
    targets = [{key: f[key] for key in ("bench", "name", "value", "unit", "target", "met", "baseline", "what")}
               for r in results.values() for f in r["figures"] if f.get("target")]
    document = {
        "machine": machine,
        "note": " ".join(notes + ([f"merged: {', '.join(names)} rerun now; the others are from the run of "
                                    f"{earlier.get('machine', {}).get('date_utc')}"] if earlier else [])) or None,
        "quick": bool(args.quick),
        "command": " ".join([os.path.relpath(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "total_seconds": round(time.time() - started, 1) if not earlier else
        round(sum(r["seconds"] for r in results.values()), 1),
        "targets": targets,
        "benchmarks": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    temporary = f"{args.output}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, args.output)

    print("\n=== targets")
    common.print_table([common.Figure(t["bench"], f"{t['bench']}.{t['name']}", t["value"], t["unit"], t["what"],
                                      t["baseline"], t["target"], t["met"]) for t in targets])
    for name, r in results.items():
        status = f"FAILED ({r['error']})" if r["error"] else "ok"
        print(f"{name:16s} {r['seconds']:7.1f} s  {status}")
    print(f"total {document['total_seconds']:.0f} s -> {os.path.relpath(args.output)}")
    return 1 if any(r["error"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
