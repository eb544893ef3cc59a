"""Speed of the default path against a base commit, in one run: ratios, not absolute seconds.

    python -m benchmarks.bench_default_speed [--base-commit cd0bcfb] [--base-dir /tmp/base]
        [--runners reference] [--skip-large-d]

The machine is shared, so only figures taken in the same run, one right after
the other, are compared. Two questions of "Utility where users are":

1. at 1e6 x 384, the current default's wall time over the base commit's on
   the same runner (goal: at most 1.5x). Both run the same child
   (benchmarks/bench_scale.py `one`) with PYTHONPATH pointing at a worktree
   of each commit, alternately base, current, base, current when --repeat 2;
2. at 1e5 x 3,969, the current default's wall time on DirectRunner
   (in_memory; goal: under 10 minutes), with the number of reads of the
   input (passes over the private rows) that the pipeline builds.

Data: bench_scale.py's synthetic sets (10 classes x 5 clusters, L2-normalised),
generated on first use into benchmarks/cache/. Figures go to
benchmarks/results/default_speed.json and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import bench_scale

ROOT = bench_scale.ROOT
RESULTS = ROOT / "benchmarks" / "results" / "default_speed.json"


def ensure_base(commit: str, base_dir: Path) -> Path:
    """A detached worktree of the base commit (git worktree add), made once."""
    if not (base_dir / "dpsynth").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_dir), commit], check=True)
    head = subprocess.run(["git", "-C", str(base_dir), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    if not commit.startswith(head) and not head.startswith(commit):
        raise SystemExit(f"{base_dir} is at {head}, not {commit}")
    return base_dir


def ensure_data(rows: int, dim: int) -> None:
    if not all(p.exists() for p in (bench_scale.dataset_dir(rows, dim) / f"part-{i:05d}.parquet"
                                    for i in range(rows // bench_scale.SHARD_ROWS))):
        bench_scale.generate(rows, dim, 20261130)


def one(runner: str, rows: int, dim: int, code: Path, timeout_s: float, epsilon: float) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "one", "--runner", runner,
           "--rows", str(rows), "--dim", str(dim), "--data-rows", str(rows), "--epsilon", str(epsilon)]
    m = bench_scale._measure(cmd, timeout_s, pythonpath=code)
    m.update(runner=runner, rows=rows, dim=dim, code=str(code))
    print(f"  {runner} {rows:,} x {dim} [{code}]: {m['wall_s']} s, peak {m['peak_tree_mb']} MB, ok={m['ok']}"
          + (f"\n{m['log_tail']}" if not m["ok"] else ""), flush=True)
    return m


def markdown(record: dict) -> str:
    out = ["| question | runner | rows x d | code | wall s | load at start | peak MB | ok |",
           "|---|---|---|---|---|---|---|---|"]
    for r in record["runs"]:
        out.append(f"| {r['question']} | {r['runner']} | {r['rows']:,} x {r['dim']} | {r['label']} | {r['wall_s']} "
                   f"| {r['load_1m_at_start']} | {r['peak_tree_mb']} | {'yes' if r['ok'] else 'NO'} |")
    for line in record["verdicts"]:
        out.append(f"\n- {line}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-commit", default="cd0bcfb")
    p.add_argument("--base-dir", default="/tmp/base")
    p.add_argument("--runners", default="reference", help="runners for question 1 (bench_scale.py names)")
    p.add_argument("--repeat", type=int, default=1, help="base/current pairs per runner in question 1")
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--skip-large-d", action="store_true", help="skip question 2 (1e5 x 3,969)")
    p.add_argument("--skip-ratio", action="store_true", help="skip question 1 (1e6 x 384)")
    args = p.parse_args(argv)
    current_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
    runs, verdicts = [], []
    if not args.skip_ratio:
        base = ensure_base(args.base_commit, Path(args.base_dir))
        ensure_data(1_000_000, 384)
        for runner in args.runners.split(","):
            walls: dict[str, list[float]] = {"base": [], "current": []}
            for _ in range(args.repeat):
                for label, code in (("base", base), ("current", ROOT)):
                    m = one(runner, 1_000_000, 384, code, args.timeout, args.epsilon)
                    m.update(question="1e6 x 384 ratio", label=f"{label} ({args.base_commit if label == 'base' else current_commit})")
                    runs.append(m)
                    if m["ok"]:
                        walls[label].append(m["wall_s"])
            if walls["base"] and walls["current"]:
                ratio = min(walls["current"]) / min(walls["base"])
                verdicts.append(f"1e6 x 384, {runner}: current / base = {ratio:.2f} (best of {args.repeat}) -> "
                                f"{'MET' if ratio <= 1.5 else 'NOT met'} (goal: <= 1.5)")
    if not args.skip_large_d:
        ensure_data(100_000, 3969)
        m = one("in_memory", 100_000, 3969, ROOT, args.timeout, args.epsilon)
        m.update(question="1e5 x 3,969 DirectRunner", label=f"current ({current_commit})")
        runs.append(m)
        reads = (m.get("result") or {}).get("input_reads")
        verdicts.append(f"1e5 x 3,969, DirectRunner in_memory: {m['wall_s'] / 60:.1f} min"
                        + ("" if m["ok"] else " (did not finish)") + f", {reads} reads of the input -> "
                        f"{'MET' if m['ok'] and m['wall_s'] < 600 else 'NOT met'} (goal: < 10 min)")
    record = {"runs": runs, "verdicts": verdicts, "cpus": os.cpu_count(), "epsilon": args.epsilon,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps(history + [record], indent=1, default=str))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
