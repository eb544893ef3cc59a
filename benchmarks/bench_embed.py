"""Embed-stage throughput: Beam + RunInference against the same model called directly.

    PYTHONPATH=. python benchmarks/bench_embed.py [--images N] [--texts N] [--image-size 96]

Both paths see the same pre-decoded batches (digits images upsampled by the
encoder; short templated sentences) and the same torch thread count. The
direct path is a plain loop of encoder.preprocess + forward in this process
with the model already loaded. Two Beam figures:
- whole job: N / wall time of the whole pipeline (start-up, model load,
  preprocess, RunInference, Table building) - a lower bound;
- steady: the marginal rate between a run on N/4 items and one on N items,
  (3N/4) / (T_N - T_N/4), which cancels the fixed start-up and model load and
  is the stage's throughput on a large input.
"""
from __future__ import annotations

import argparse
import time

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from dpsynth.encoders import configure_torch_threads, get_encoder
from transforms.embedding import EmbedRecords, embedding_schema
from transforms.readers import RecordBatch

WORDS = ("the a our their this every new old small large quick slow red blue market river city "
         "garden report meeting price train music letter doctor student window storm").split()
VERBS = "sees finds opens closes follows reaches builds moves changes sends".split()


def digit_images(n: int) -> list[np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.rint(d.images * (255 / 16)).astype(np.uint8)
    return [imgs[i % len(imgs)] for i in range(n)]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = rng.choice(WORDS, size=6)
        out.append(f"{w[0]} {w[1]} {w[2]} {rng.choice(VERBS)} {w[3]} {w[4]} near the {w[5]}.")
    return out


def make_batches(items: list, batch_size: int) -> list[RecordBatch]:
    return [RecordBatch("bench", items[i:i + batch_size], [0] * len(items[i:i + batch_size]), None)
            for i in range(0, len(items), batch_size)]


def direct(encoder, batches: list[RecordBatch]) -> float:
    model = encoder.load_model()
    encoder.forward(model, encoder.preprocess(batches[0].items))  # warm-up, as RunInference's first call
    start = time.perf_counter()
    for b in batches:
        encoder.forward(model, encoder.preprocess(b.items))
    return time.perf_counter() - start


class _Count(beam.DoFn):
    def __init__(self):
        self.rows = beam.metrics.Metrics.counter("bench", "rows")

    def process(self, table):
        self.rows.inc(table.num_rows)


def beam_run(encoder, batches: list[RecordBatch], threads: int, beam_args: list[str]) -> tuple[float, int]:
    schema = embedding_schema("int64", False, encoder)
    start = time.perf_counter()
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    emb = (p | "Batches" >> beam.Create(batches, reshuffle=False)
           | "Embed" >> EmbedRecords(encoder, schema, threads))
    _ = emb["embeddings"] | "Count" >> beam.ParDo(_Count())
    result = p.run()
    result.wait_until_finish()
    elapsed = time.perf_counter() - start
    rows = sum(c.committed for c in result.metrics().query()["counters"] if c.key.metric.name == "rows")
    return elapsed, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--texts", type=int, default=1024)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--encoders", default="efficientnet-lite0,minilm,scatternet")
    args, beam_args = ap.parse_known_args()
    beam_args = beam_args or ["--runner=DirectRunner"]
    threads = configure_torch_threads(args.threads)
    print(f"torch threads {threads}; batch size {args.batch_size}; beam args {' '.join(beam_args)}")
    print(f"{'encoder':<26}{'items':>6}{'direct/s':>10}{'beam job/s':>11}{'ratio':>7}"
          f"{'beam steady/s':>14}{'ratio':>7}")
    for name in args.encoders.split(","):
        kwargs = {"image_size": args.image_size} if name == "efficientnet-lite0" else {}
        encoder = get_encoder(name, **kwargs)
        n = args.texts if encoder.modality == "text" else args.images
        items = sentences(n) if encoder.modality == "text" else digit_images(n)
        batches = make_batches(items, args.batch_size)
        t_direct_before = direct(encoder, batches)
        t_beam, rows = beam_run(encoder, batches, threads, beam_args)
        assert rows == n, (rows, n)
        quarter = batches[: max(1, len(batches) // 4)]
        n_q = sum(len(b) for b in quarter)
        t_q, rows_q = beam_run(encoder, quarter, threads, beam_args)
        assert rows_q == n_q
        # the machine is shared: time the direct path before and after the Beam runs
        t_direct = 0.5 * (t_direct_before + direct(encoder, batches))
        steady = (n - n_q) / max(t_beam - t_q, 1e-9)
        unit = "texts" if encoder.modality == "text" else "img"
        label = name + (f" @{args.image_size}px" if kwargs else "")
        r_direct = n / t_direct
        print(f"{label:<26}{n:>6}{r_direct:>10.1f}{n / t_beam:>11.1f}{n / t_beam / r_direct:>7.2f}"
              f"{steady:>14.1f}{steady / r_direct:>7.2f}  ({unit}/s)", flush=True)


if __name__ == "__main__":
    main()
