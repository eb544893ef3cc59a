"""Larger empirical DP audit than CI's: prints lower bounds on epsilon next to the claims.

Usage: PYTHONPATH=. python benchmarks/audit.py [--runs 400000] [--pipeline-runs 1500] [--alpha 0.05]

Part 1 audits one Lloyd round's release (the final round of a run at each
total epsilon) on adjacent datasets, correct and deliberately broken (noise
halved; a record of norm 3R let through, i.e. sensitivity off by 3). Part 2
audits every DP pass of a small whole run (the local reference, which calls
the same release functions as the Beam pipeline). A bound above the claim is
a proven bug at the stated confidence; a bound below it is what a correct
mechanism must give. Part 3 audits every release kind alone with the CI
harnesses of tests/test_audit.py, correct and with noise scaled by 0.7 and
0.8, repeated to show the spread of the bound.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from dpsynth.auditing import RoundAudit, ScaledNoise, audit_mechanism, claimed_epsilon, epsilon_lower_bound, \
    pipeline_statistic
from dpsynth.calibration import plan_releases
from dpsynth.noise import SecureNoise
from dpsynth.params import SynthesisConfig

DELTA = 1e-5
DIM = 4


def round_audits(runs: int, alpha: float) -> None:
    print(f"## One Lloyd round's release (d={DIM}, k=2, delta={DELTA:g}, {runs} runs per dataset, "
          f"confidence {1 - alpha:g})\n")
    print("| run epsilon | round's claimed epsilon | mechanism | epsilon lower bound | verdict | seconds |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(3)
    base_total = rng.normal(size=(2, DIM))
    for total in (1.0, 4.0, 8.0):
        config = SynthesisConfig(epsilon=total, delta=DELTA, labels=(0,), max_clusters=2)
        plan = plan_releases(config, DIM, discover_labels=False)
        claim = claimed_epsilon(plan.ledger, ("final_count", "final_sum"), DELTA)
        audit = RoundAudit(plan, np.eye(DIM)[:2], np.array([40.0, 60.0]), base_total, np.eye(DIM)[0])
        variants = [("correct", audit, SecureNoise()),
                    ("noise halved (bug)", audit, ScaledNoise(SecureNoise(), 0.5)),
                    ("sensitivity x3 (bug)", RoundAudit(plan, audit.centres, audit.base_count, audit.base_total,
                                                        audit.record, 3.0), SecureNoise())]
        for name, harness, source in variants:
            start = time.time()
            result = audit_mechanism(lambda with_record, n: harness.statistic(with_record, n, source), runs, DELTA,
                                     alpha)
            verdict = "BUG FOUND" if result.epsilon_lower_bound > claim else "consistent"
            print(f"| {total:g} | {claim:.3f} | {name} | {result.epsilon_lower_bound:.3f} | {verdict} | "
                  f"{time.time() - start:.1f} |", flush=True)


def pipeline_audit(runs: int, alpha: float) -> None:
    print(f"\n## Whole run, every DP pass (local reference, 100 rows, d={DIM}, k=1, {runs} runs per dataset)\n")
    print("| run epsilon | noise | epsilon lower bound | verdict | seconds |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, DIM))
    X[:, 0] += 2.0

    def table(rows: np.ndarray) -> pa.Table:
        return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), DIM),
                         "label": pa.array([0] * len(rows))})

    record = table(-np.eye(DIM)[:1])
    for total in (1.0, 4.0):
        config = SynthesisConfig(epsilon=total, delta=DELTA, labels=(0,), max_clusters=1)
        plan = plan_releases(config, DIM, discover_labels=False)
        for name, source in (("correct", SecureNoise()), ("noise x0.1 (bug)", ScaledNoise(SecureNoise(), 0.1))):
            start = time.time()
            stat_d = pipeline_statistic([table(X)], record, config, plan, source, runs, with_record=False)
            stat_d_prime = pipeline_statistic([table(X)], record, config, plan, source, runs, with_record=True)
            result = epsilon_lower_bound(stat_d, stat_d_prime, DELTA, alpha)
            verdict = "BUG FOUND" if result.epsilon_lower_bound > total else "consistent"
            print(f"| {total:g} | {name} | {result.epsilon_lower_bound:.3f} | {verdict} | "
                  f"{time.time() - start:.1f} |", flush=True)


def release_kind_audits(runs: int, alpha: float, repeats: int) -> None:
    """Part 3: every release kind alone, as tests/test_audit.py audits it, correct and with scaled noise."""
    import statistics

    from tests.test_audit import AUDIT_DELTA, KIND_AUDITS, _kind_bound  # the CI harnesses themselves

    print(f"\n## Each release kind alone ({runs} runs per dataset, confidence 1 - {alpha:g}, "
          f"audit delta {AUDIT_DELTA}, {repeats} repeats: mean (sd) of the bound)\n")
    print("| release | claimed epsilon | correct | noise x0.7 | noise x0.8 | seconds |")
    print("|---|---|---|---|---|---|")
    for name, audit in KIND_AUDITS:
        start = time.time()
        cells, claim = [], 0.0
        for factor in (1.0, 0.7, 0.8):
            bounds = []
            for _ in range(repeats):
                source = SecureNoise() if factor == 1.0 else ScaledNoise(SecureNoise(), factor)
                bound, claim = _kind_bound(audit, source, runs, alpha)
                bounds.append(bound)
            spread = statistics.stdev(bounds) if repeats > 1 else 0.0
            caught = sum(b > claim for b in bounds)
            cells.append(f"{statistics.mean(bounds):.3f} ({spread:.3f}), {caught}/{repeats} above")
        print(f"| {name} | {claim:.3f} | {' | '.join(cells)} | {time.time() - start:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400_000)
    parser.add_argument("--pipeline-runs", type=int, default=1500)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--kind-runs", type=int, default=100_000)
    parser.add_argument("--kind-alpha", type=float, default=1e-8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only-kinds", action="store_true", help="run part 3 only")
    args = parser.parse_args()
    if args.only_kinds:
        release_kind_audits(args.kind_runs, args.kind_alpha, args.repeats)
        return
    round_audits(args.runs, args.alpha)
    pipeline_audit(args.pipeline_runs, args.alpha)
    release_kind_audits(args.kind_runs, args.kind_alpha, args.repeats)


if __name__ == "__main__":
    main()
