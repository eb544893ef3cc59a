"""Scale benchmark: the same synthesis job on each runner, at 1e5 and 1e6 rows.

    python benchmarks/bench_scale.py generate                 # benchmarks/cache/, once (1.5 GB)
    python benchmarks/bench_scale.py run [--sizes 100000,1000000] [--runners ...]

Each (runner, size) runs in its own child process; the parent samples the
resident memory of the child's whole process tree (Dask and multi_processing
workers are grandchildren) every 0.1 s and records wall time and peak memory:
`peak_tree_mb` (all processes together) and `peak_proc_mb` (the largest one).
The local numpy reference (dpsynth.local.synthesize_tables, what
`dpsynth synthesize --runner local` runs) reads the same row groups the same
way, so the comparison includes the read.
Figures go to benchmarks/results/scale.json and a markdown table on stdout.

The data: 10 classes, each a mixture of 5 Gaussian clusters in 384-d,
L2-normalised, written as Parquet shards of 1e5 rows with row groups of 20,000
rows (the 1e5 run reads shard 0 of the 1e6 set).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
SHARD_ROWS = 100_000
ROW_GROUP_ROWS = 20_000
DIM = 384
CLASSES = 10
RUNNERS = ("reference", "in_memory", "multi_processing", "portable", "dask")


def dataset_dir(rows_total: int = 1_000_000, dim: int = DIM) -> Path:
    return CACHE / f"scale-{rows_total}x{dim}"


def shard_paths(rows: int, dim: int = DIM) -> list[Path]:
    """The shards holding the first `rows` rows of the 1e6 set."""
    if rows % SHARD_ROWS:
        raise SystemExit(f"--sizes must be multiples of {SHARD_ROWS}")
    return [dataset_dir(dim=dim) / f"part-{i:05d}.parquet" for i in range(rows // SHARD_ROWS)]


def generate(rows_total: int, dim: int, seed: int) -> None:
    """Write the synthetic private set as Parquet shards (embedding list<float32>, label int64)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = dataset_dir(rows_total, dim)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, 5, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=-1, keepdims=True)
    for shard in range(rows_total // SHARD_ROWS):
        path = out / f"part-{shard:05d}.parquet"
        if path.exists():
            continue
        labels = rng.integers(0, CLASSES, SHARD_ROWS)
        comps = rng.integers(0, 5, SHARD_ROWS)
        noise = rng.standard_normal((SHARD_ROWS, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim))
        x = centres[labels, comps] + noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        assert x.dtype == np.float32
        embedding = pa.ListArray.from_arrays(
            pa.array(np.arange(0, SHARD_ROWS * dim + 1, dim, dtype=np.int32)), pa.array(x.ravel()))
        table = pa.table({"embedding": embedding, "label": pa.array(labels.astype(np.int64))})
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, compression="none", use_dictionary=False)
        tmp.rename(path)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)


# ---------------------------------------------------------------- child side

def _config(args):
    from dpsynth.params import SynthesisConfig

    return SynthesisConfig(epsilon=args.epsilon, delta=args.delta, labels=tuple(range(CLASSES)))


def _run_reference(args, paths: list[Path]) -> dict:
    """`dpsynth synthesize --runner local`'s path: dpsynth.local.synthesize_tables on the row groups."""
    import pyarrow.parquet as pq

    from dpsynth.local import synthesize_tables

    t0 = time.perf_counter()
    tables = []
    for path in paths:
        f = pq.ParquetFile(path)
        tables.extend(f.read_row_group(i) for i in range(f.num_row_groups))
    t_read = time.perf_counter() - t0
    result = synthesize_tables(tables, _config(args), "embedding", "label", args.dim)
    return {"read_s": t_read, "synthetic_rows": int(len(result.synthetic_labels)),
            "spent_epsilon": float(result.ledger.spent_epsilon)}


def _beam_options(runner: str, job_endpoint: str | None, dask_address: str | None) -> list[str]:
    if runner == "in_memory":
        return ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
    if runner == "multi_processing":
        return ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    if runner == "portable":
        return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}", "--environment_type=LOOPBACK"]
    if runner == "dask":
        return ["--runner=beam_pipeline.dask_runner.DaskRunner", f"--dask_client_address={dask_address}"]
    raise SystemExit(f"unknown runner {runner}")


def _run_beam(args, paths: list[Path]) -> dict:
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipeline.synthesize import run_synthesis_job

    pattern = str(paths[0]) if len(paths) == 1 else str(paths[0].parent / "part-*.parquet")
    if len(paths) not in (1, len(list(paths[0].parent.glob("part-*.parquet")))):
        raise SystemExit("sizes between one shard and the whole set are not supported")

    reads: list[str] = []

    def read_tables(pipeline, name=""):
        reads.append(name)  # one read of the input per pass over the private rows
        # element: pyarrow.Table of one row group (20,000 rows x 384-d); one read per pass,
        # as `dpsynth synthesize` does for Parquet input (bounded worker memory)
        return pipeline | f"ReadParquet{name}" >> beam.io.ReadFromParquetBatched(pattern)

    cluster = None
    dask_address = args.dask_address
    if args.runner == "dask" and not dask_address:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0", memory_limit=0)
        dask_address = cluster.scheduler_address
    try:
        options = PipelineOptions(_beam_options(args.runner, args.job_endpoint, dask_address))
        with tempfile.TemporaryDirectory(dir=args.workdir) as out:
            summary = run_synthesis_job(read_tables, _config(args), os.path.join(out, "synthetic"), options,
                                        dimension=args.dim, label_type=pa.int64(), reread_input=read_tables)
        return {"diagnostics": summary.diagnostics, "synthetic_rows": int(sum(summary.rows_per_class)),
                "input_reads": len(reads), "read_names": reads}
    finally:
        if cluster is not None:
            cluster.close()


def child(args) -> None:
    paths = shard_paths(args.rows, args.dim) if args.data_rows is None else \
        [dataset_dir(args.data_rows, args.dim) / f"part-{i:05d}.parquet" for i in range(args.rows // SHARD_ROWS)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"missing {missing[0]}: run `bench_scale.py generate` first")
    t0 = time.perf_counter()
    extra = _run_reference(args, paths) if args.runner == "reference" else _run_beam(args, paths)
    extra["inner_wall_s"] = time.perf_counter() - t0
    print("RESULT " + json.dumps(extra, default=str), flush=True)


# ---------------------------------------------------------------- parent side

def _measure(cmd: list[str], timeout_s: float, pythonpath: Path = ROOT) -> dict:
    """Run cmd, sampling the RSS of its process tree; returns wall time, peaks and the child's RESULT.

    pythonpath: the checkout whose dpsynth the child imports (another commit's, to compare).
    """
    import psutil

    load_1m = os.getloadavg()[0]  # this machine is shared: record how busy it was
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(pythonpath)})
    root = psutil.Process(proc.pid)
    peak_tree = peak_proc = 0
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    timed_out = False
    while proc.poll() is None:
        if time.perf_counter() - t0 > timeout_s:
            for p in root.children(recursive=True) + [root]:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            timed_out = True
            break
        try:
            procs = [root] + root.children(recursive=True)
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            peak_tree = max(peak_tree, sum(rss))
            peak_proc = max(peak_proc, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.1)
    proc.wait()
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    result = None
    for line in lines:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    return {"wall_s": round(wall, 2), "load_1m_at_start": round(load_1m, 1), "peak_tree_mb": round(peak_tree / 2**20), "peak_proc_mb": round(peak_proc / 2**20),
            "ok": proc.returncode == 0 and result is not None and not timed_out, "timed_out": timed_out,
            "returncode": proc.returncode, "result": result, "log_tail": "".join(lines[-15:]) if proc.returncode else ""}


def _start_job_service() -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return proc, f"localhost:{port}"
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the local job service did not start")


def markdown(rows: list[dict]) -> str:
    ref = {r["rows"]: r["wall_s"] for r in rows if r["runner"] == "reference" and r["ok"]}
    by = {(r["runner"], r["rows"]): r for r in rows}
    out = ["| runner | rows | wall s | x reference | peak MB (all procs) | peak MB (largest proc) | ok |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['wall_s'] / ref[r['rows']]:.2f}" if r["rows"] in ref and r["ok"] else ""
        out.append(f"| {r['runner']} | {r['rows']:,} | {r['wall_s']} | {ratio} | {r['peak_tree_mb']} "
                   f"| {r['peak_proc_mb']} | {'yes' if r['ok'] else 'TIMEOUT' if r['timed_out'] else 'FAILED'} |")
    sizes = sorted({r["rows"] for r in rows})
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        out.append("")
        out.append(f"| runner | time {hi:,} / time {lo:,} | peak memory {hi:,} / {lo:,} |")
        out.append("|---|---|---|")
        for runner in dict.fromkeys(r["runner"] for r in rows):
            a, b = by.get((runner, lo)), by.get((runner, hi))
            if a and b and a["ok"] and b["ok"]:
                out.append(f"| {runner} | {b['wall_s'] / a['wall_s']:.2f} | {b['peak_tree_mb'] / a['peak_tree_mb']:.2f} |")
    return "\n".join(out)


def run(args) -> None:
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    runners = args.runners.split(",")
    rows: list[dict] = []
    job_service = None
    try:
        for size in sizes:
            for runner in runners:
                cmd = [sys.executable, __file__, "one", "--runner", runner, "--rows", str(size),
                       "--epsilon", str(args.epsilon), "--delta", str(args.delta)]
                if runner == "portable":
                    if job_service is None:
                        job_service = _start_job_service()
                    cmd += ["--job-endpoint", job_service[1]]
                print(f"running {runner} on {size:,} rows ...", flush=True)
                m = _measure(cmd, args.timeout)
                m.update(runner=runner, rows=size)
                rows.append(m)
                print(f"  {m['wall_s']} s, peak {m['peak_tree_mb']} MB (largest process {m['peak_proc_mb']} MB), "
                      f"ok={m['ok']}" + (f"\n{m['log_tail']}" if not m["ok"] else ""), flush=True)
    finally:
        if job_service is not None:
            job_service[0].terminate()
            job_service[0].wait(timeout=30)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() and args.append else {"runs": []}
    record = {"runs": previous["runs"] + rows, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "dim": DIM, "classes": CLASSES, "epsilon": args.epsilon, "delta": args.delta,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.write_text(json.dumps(record, indent=1, default=str))
    print(markdown(record["runs"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, default=1_000_000)
    g.add_argument("--seed", type=int, default=20261130)
    g.add_argument("--dim", type=int, default=DIM)
    for name in ("run", "one"):
        p = sub.add_parser(name)
        p.add_argument("--epsilon", type=float, default=1.0)
        p.add_argument("--delta", type=float, default=1e-5)
    r = sub.choices["run"]
    r.add_argument("--sizes", default="100000,1000000")
    r.add_argument("--runners", default=",".join(RUNNERS))
    r.add_argument("--timeout", type=float, default=1800, help="seconds per (runner, size)")
    r.add_argument("--append", action="store_true", help="add to the runs already in scale.json")
    o = sub.choices["one"]
    o.add_argument("--runner", choices=RUNNERS, required=True)
    o.add_argument("--rows", type=int, required=True)
    o.add_argument("--job-endpoint")
    o.add_argument("--dask-address")
    o.add_argument("--workdir", default=None)
    o.add_argument("--dim", type=int, default=DIM)
    o.add_argument("--data-rows", type=int, default=None,
                   help="rows of the generated set to read from (default: the 1e6 set)")
    args = parser.parse_args(argv)
    if args.cmd == "generate":
        generate(args.rows, args.dim, args.seed)
    elif args.cmd == "run":
        run(args)
    else:
        child(args)


if __name__ == "__main__":
    main()
