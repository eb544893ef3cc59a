"""Empirical DP audit of the release code (dpsynth.auditing).

Every bound here is computed at confidence 1 - 1e-7, so a test asserting
"lower bound <= claimed epsilon" on a correct mechanism fails with probability
at most 1e-7 (the Clopper-Pearson bounds are exact, and the event is chosen
on samples disjoint from those that estimate it). The tests on broken
mechanisms assert the opposite; their failure probabilities are stated per test.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from dpsynth.auditing import (RoundAudit, ScaledNoise, audit_mechanism, claimed_epsilon, clopper_pearson_lower,
                              clopper_pearson_upper, epsilon_lower_bound, pipeline_statistic)
from dpsynth.calibration import plan_releases
from dpsynth.noise import SecureNoise
from dpsynth.params import SynthesisConfig

ALPHA = 1e-7
DELTA = 1e-5
DIM = 4
# What RoundAudit releases: one round's counts and sums (the final pass's other releases are audited alone).
ROUND_MECHANISMS = ("final_count", "final_sum")
ROUND_RUNS = 150_000


def test_clopper_pearson_matches_exact_binomial_tails():
    # The lower bound p_l solves P[Bin(n, p_l) >= k] = alpha; likewise the upper.
    n, k, alpha = 1000, 37, 0.025
    low, high = clopper_pearson_lower(k, n, alpha), clopper_pearson_upper(k, n, alpha)
    assert stats.binom.sf(k - 1, n, low) == pytest.approx(alpha, rel=1e-6)
    assert stats.binom.cdf(k, n, high) == pytest.approx(alpha, rel=1e-6)
    assert clopper_pearson_lower(0, n, alpha) == 0.0 and clopper_pearson_upper(n, n, alpha) == 1.0


def test_bound_on_textbook_gaussian_is_below_its_true_epsilon():
    # Gaussian mechanism with sensitivity/sigma = 1: its exact epsilon at delta
    # follows from the analytic formula; the audit may not exceed it (p <= 1e-7).
    rng = np.random.default_rng(11)  # the sampler of a reference mechanism, not of dpsynth
    mu = 1.0
    true_eps = _gaussian_epsilon(mu, DELTA)
    result = epsilon_lower_bound(rng.standard_normal(60_000), mu + rng.standard_normal(60_000), DELTA, ALPHA)
    assert 0.5 < result.epsilon_lower_bound <= true_eps
    assert result.confidence == 1 - ALPHA


def _gaussian_epsilon(mu: float, delta: float) -> float:
    def delta_of(eps: float) -> float:
        return stats.norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * stats.norm.cdf(-mu / 2 - eps / mu)
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


@pytest.fixture(scope="module")
def round_audit() -> tuple[RoundAudit, float]:
    """The final Lloyd round of a run at epsilon 4: its own claimed epsilon is about 2.37."""
    config = SynthesisConfig(epsilon=4.0, delta=DELTA, labels=(0,), max_clusters=2)
    plan = plan_releases(config, DIM, discover_labels=False)
    rng = np.random.default_rng(3)
    centres = np.eye(DIM)[:2]
    audit = RoundAudit(plan, centres, np.array([40.0, 60.0]), rng.normal(size=(2, DIM)), np.eye(DIM)[0])
    return audit, claimed_epsilon(plan.ledger, ROUND_MECHANISMS, DELTA)


def test_lloyd_round_release_passes_the_audit(round_audit):
    audit, claim = round_audit
    source = SecureNoise()
    result = audit_mechanism(lambda with_record, n: audit.statistic(with_record, n, source), ROUND_RUNS, DELTA,
                             ALPHA)
    assert result.epsilon_lower_bound <= claim, result
    # A vacuous audit would prove nothing: it must see a good share of the leak.
    assert result.epsilon_lower_bound > 0.3 * claim, result


def test_audit_catches_halved_noise(round_audit):
    # Noise halved: the true epsilon is about twice the claim (2.37). Over
    # 6 repeated runs the bound came out 2.69 on average with a standard
    # deviation of 0.05, so falling to the claim is a deviation of about
    # 6.3 sigma: probability below 1e-9 (normal approximation).
    audit, claim = round_audit
    source = ScaledNoise(SecureNoise(), 0.5)
    result = audit_mechanism(lambda with_record, n: audit.statistic(with_record, n, source), ROUND_RUNS, DELTA,
                             ALPHA)
    assert result.epsilon_lower_bound > claim, result


def test_audit_catches_sensitivity_off_by_a_factor(round_audit):
    # A bound step that lets a row of norm 3R through: the sum's sensitivity is
    # 3x the ledger's. The bound came out 3.21 on average (standard deviation
    # 0.10, 6 runs) against the claim 2.37: a margin near 8.8 sigma, failure
    # probability below 1e-17 (normal approximation).
    audit, claim = round_audit
    broken = RoundAudit(audit.plan, audit.centres, audit.base_count, audit.base_total, audit.record,
                        record_scale=3.0)
    source = SecureNoise()
    result = audit_mechanism(lambda with_record, n: broken.statistic(with_record, n, source), ROUND_RUNS, DELTA,
                             ALPHA)
    assert result.epsilon_lower_bound > claim, result


def _table(X: np.ndarray) -> pa.Table:
    return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]),
                     "label": pa.array([0] * len(X))})


def test_whole_pipeline_passes_the_audit():
    # Every pass (class, seed, Lloyd, final) of the local reference, which
    # calls the same release functions as the Beam pipeline. The added record
    # sits at the radius, opposite the class's mass (worst case for the mean).
    config = SynthesisConfig(epsilon=4.0, delta=DELTA, labels=(0,), max_clusters=1)
    plan = plan_releases(config, DIM, discover_labels=False)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, DIM))
    X[:, 0] += 2.0
    record = _table(-np.eye(DIM)[:1])
    runs = 450
    source = SecureNoise()
    stat_d = pipeline_statistic([_table(X)], record, config, plan, source, runs, with_record=False)
    stat_d_prime = pipeline_statistic([_table(X)], record, config, plan, source, runs, with_record=True)
    result = epsilon_lower_bound(stat_d, stat_d_prime, DELTA, ALPHA)
    assert result.epsilon_lower_bound <= config.epsilon, result


# --- White-box: every draw against the ledger, sensitivities under adversarial rows, sigmas -----

from dpsynth import local  # noqa: E402
from dpsynth.auditing import (RecordingNoise, ReleaseKindAudit, ledger_name, mechanism_claim,  # noqa: E402
                              standardised_noise, variance_interval)
from dpsynth.noise import grid_for  # noqa: E402
from dpsynth.grid import row_grid  # noqa: E402
from dpsynth.passes import ScatterRelease  # noqa: E402
from dpsynth.private_stats import (NearestCentre, SimHash, WholeClass, bound_rows, centred_scatter,  # noqa: E402
                                   partial_stats, scale_packed)
from dpsynth.validation import InputSpec, validate_table  # noqa: E402

WB_DIM = 8
# Every covariance model, both bound modes, and label discovery: together they hold every release kind.
LEDGER_CASES = {
    "spherical": dict(covariance="spherical"),
    "spherical_clip": dict(covariance="spherical", clip_mode="clip"),
    "diagonal": dict(covariance="diagonal"),
    "full": dict(covariance="full"),
    "full_clip": dict(covariance="full", clip_mode="clip"),
    "lowrank": dict(covariance="lowrank"),
    "discovered_labels": dict(covariance="diagonal", labels=None),
}


def _config(**changes) -> SynthesisConfig:
    base = dict(epsilon=2.0, delta=DELTA, labels=(0, 1, 2), rounds=3, max_clusters=2)
    base.update(changes)
    return SynthesisConfig(**base)


def _three_classes(rows_per_class: int = 300, d: int = WB_DIM) -> pa.Table:
    rng = np.random.default_rng(8)
    y = np.repeat(np.arange(3), rows_per_class)
    X = rng.normal(size=(len(y), d)) + 3.0 * np.eye(d)[y]
    return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d), "label": y})


def _raw_sensitivity(name: str, radius: float) -> float:
    """What one record changes, before the ledger adds the grid rounding (noise.effective_sensitivity)."""
    if name == "label_selection" or name.endswith("_count") or name == "class_norm_histogram":
        return 1.0
    if name.endswith("_sum"):
        return radius
    if name.endswith("second_moment"):
        return radius**2
    if name == "final_within_scatter":  # centred rows scaled into the unit ball, whatever R
        return 1.0
    raise KeyError(f"unknown release kind {name!r}: add it to the white-box tests")


@pytest.mark.parametrize("case", sorted(LEDGER_CASES))
def test_every_noise_draw_matches_the_ledger(case, monkeypatch):
    # Deterministic (no statistics): every release of a whole local run, recorded at the noise source.
    config = _config(**LEDGER_CASES[case])
    source = RecordingNoise(SecureNoise())
    monkeypatch.setattr(local, "noise_source", lambda *args, **kwargs: source)
    result = local.synthesize_tables([_three_classes()], config)
    ledger = result.ledger
    names = {m.name for m in ledger.mechanisms}
    draws = source.draws
    assert draws and all(d.mechanism in names for d in draws)  # no release outside the ledger
    seen = [(d.stream) for d in draws]
    assert len(seen) == len(set(seen))  # each aggregate noised once
    for m in ledger.mechanisms:  # generic over the ledger: a new release kind is covered as it lands
        mine = [d for d in draws if d.mechanism == m.name]
        assert mine, f"{m.name} is in the ledger but never released"
        assert {d.sigma for d in mine} == {m.sigma}, m.name
        assert len({d.grid for d in mine}) == 1, m.name
        grid = mine[0].grid
        raw = _raw_sensitivity(m.name, config.radius)
        assert grid == grid_for(raw), m.name
        coordinates = max(int(np.prod(d.value.shape[1:])) if d.value.ndim > 1 else 1 for d in mine)
        if m.name == "label_selection":
            assert {d.pass_name for d in mine} == {"labels"} and m.count == 1
            assert len(mine) == 3  # one per label present in the data
        else:
            passes = {d.pass_name for d in mine}
            assert len(passes) == m.count, (m.name, passes)
            for p in passes:  # every class released in every pass (parallel composition), or one pooled release
                keys = sorted(str(d.stream[1]) for d in mine if d.pass_name == p)
                assert keys == (["pooled"] if m.name == "final_within_scatter" else ["0", "1", "2"]), m.name
        # The ledger pays for rounding the aggregate to the release grid (noise.effective_sensitivity).
        assert m.l2_sensitivity >= raw + grid * math.sqrt(coordinates) * (1 - 1e-12), m.name
    for d in draws:
        assert np.all(d.released == np.round(d.released / d.grid) * d.grid)  # on the grid


HOSTILE_RECORDS = {
    "denormal": [1e-310, -2e-310] + [0.0] * (WB_DIM - 2),
    "near_float_max": [1.7e308, -1.7e308] + [1e308] * (WB_DIM - 2),
    "float32_max": [3.4e38] * WB_DIM,
    "negative_zero": [-0.0] * (WB_DIM - 1) + [0.25],
    "at_radius": [1.0] + [0.0] * (WB_DIM - 1),
    "above_radius": [np.nextafter(1.0, 2.0)] + [0.0] * (WB_DIM - 1),
    "spread": [1.0 / math.sqrt(WB_DIM)] * WB_DIM,
    "far_side": [-50.0] * WB_DIM,
}


def _partitioners(rng: np.random.Generator) -> dict[str, dict]:
    centres = bound_rows(rng.normal(size=(3, WB_DIM)), 1.0, "normalize")[0].astype(np.float64)
    return {"whole": {0: WholeClass()},
            "simhash": {0: SimHash(centres[0], rng.normal(size=(3, WB_DIM)))},
            "nearest": {0: NearestCentre(centres)}}


@pytest.mark.parametrize("clip_mode", ["normalize", "clip"])
def test_one_hostile_record_changes_each_release_by_at_most_its_sensitivity(clip_mode):
    # Deterministic: the record goes through the real validation, bound and partition code.
    rng = np.random.default_rng(9)
    config = _config(clip_mode=clip_mode, labels=(0,))
    spec = InputSpec("embedding", "label", WB_DIM, (0,), config.radius, clip_mode, config.max_rows)
    base = pa.table({"embedding": pa.array(rng.normal(size=(200, WB_DIM)).tolist(), pa.list_(pa.float64())),
                     "label": [0] * 200})
    worst: dict[str, float] = {"count": 0.0, "sum": 0.0, "scalar": 0.0, "diagonal": 0.0, "scatter": 0.0}
    for record_name, values in HOSTILE_RECORDS.items():
        for value_type in (pa.float64(), pa.float32()):
            record = pa.table({"embedding": pa.array([values], pa.list_(value_type)), "label": [0]}).cast(
                pa.schema([("embedding", pa.list_(pa.float64())), ("label", pa.int64())]))
            d_rows = validate_table(base, spec).valid
            d_prime = validate_table(pa.concat_tables([base, record]), spec).valid
            assert np.isfinite(d_prime.embeddings).all(), record_name
            for partition, partitioners in _partitioners(rng).items():
                for moment in ("scalar", "diagonal"):
                    a = partial_stats(d_rows.class_ids, d_rows.embeddings, partitioners, moment)[0]
                    b = partial_stats(d_prime.class_ids, d_prime.embeddings, partitioners, moment)[0]
                    worst["count"] = max(worst["count"], float(np.linalg.norm(b.count - a.count)))
                    worst["sum"] = max(worst["sum"], float(np.linalg.norm(b.total - a.total)))
                    worst[moment] = max(worst[moment], float(np.linalg.norm(b.second - a.second)))
                if partition == "nearest":  # the scatter (pooled, per class), at a scale far below the record's distance
                    for per_class in (False, True):
                        scatter = ScatterRelease((0.25,) * 2, 1.0, 1.0, row_grid(1.0), per_class)
                        a, b = (scale_packed(centred_scatter(v.class_ids, v.embeddings, partitioners, scatter),
                                             WB_DIM) for v in (d_rows, d_prime))
                        worst["scatter"] = max(worst["scatter"], float(np.linalg.norm(b - a)))
    radius = config.radius
    assert worst["count"] == 1.0 and worst["sum"] <= radius
    assert max(worst["scalar"], worst["diagonal"]) <= radius**2
    assert 0.5 < worst["scatter"] <= 1.0  # the clip bounds it, and the hostile records reach it
    # ... and within every ledger's sensitivity for that kind of release.
    for case in LEDGER_CASES.values():
        cfg = _config(**case)
        ledger = plan_releases(cfg, WB_DIM, discover_labels=cfg.labels is None).ledger
        for m in ledger.mechanisms:
            kind = ("count" if m.name.endswith("_count") or m.name == "label_selection" else
                    "sum" if m.name.endswith("_sum") else
                    "scatter" if m.name == "final_within_scatter" else
                    "diagonal" if cfg.covariance == "diagonal" else "scalar")
            assert worst[kind] <= m.l2_sensitivity, (m.name, worst[kind])


KIND_RUNS = 100_000
# The claim is checked at a point of the privacy profile where events are frequent enough to
# estimate tightly: every (eps, delta) pair of the ledger's PLD profile must hold.
AUDIT_DELTA = 0.05
# Bounds per test: at most len(KIND_AUDITS) = 14; 1e-8 each keeps a test's failure below 1e-6.
KIND_ALPHA = 1e-8


def _kind_audits(epsilon: float = 8.0) -> list[tuple[str, ReleaseKindAudit]]:
    """One black-box harness per mechanism of every ledger case (each release kind at least once)."""
    rng = np.random.default_rng(10)
    out, seen = [], set()
    for case_name in ("discovered_labels", "full", "spherical_clip", "lowrank"):
        config = _config(epsilon=epsilon, **LEDGER_CASES[case_name])
        plan = plan_releases(config, DIM, discover_labels=config.labels is None)
        base = bound_rows(rng.normal(size=(50, DIM)) + 2.0, config.radius, config.clip_mode)[0]
        for m in plan.ledger.mechanisms:
            if case_name == "lowrank" and m.name != "final_within_scatter":
                continue  # its other releases are the cases above's (its moments are diagonal's)
            key = (m.name, config.covariance if "second" in m.name or "scatter" in m.name else "")
            if key not in seen:
                seen.add(key)
                out.append((f"{case_name}:{m.name}", ReleaseKindAudit(plan, config, m.name, base,
                                                                         -3.0 * np.eye(DIM)[0], AUDIT_DELTA,
                                                                         KIND_ALPHA)))
    return out


KIND_AUDITS = _kind_audits()


def test_label_audit_count_follows_the_threshold_and_keeps_the_event_above_delta():
    # Deterministic: the count is picked from the plan's public threshold and sigma alone.
    from dpsynth.auditing import label_audit_count

    base = label_audit_count(14.1, 2.76, 66_667, KIND_ALPHA, AUDIT_DELTA)
    assert all(label_audit_count(14.1 + shift, 2.76, 66_667, KIND_ALPHA, AUDIT_DELTA) == base + shift
               for shift in (1, 5, 40))
    # D' (base + 1 records) must clear the threshold with probability well above delta.
    assert stats.norm.sf((14.1 - base - 1) / 2.76) > 2 * AUDIT_DELTA


def test_black_box_audits_cover_every_release_kind():
    kinds = {a.mechanism for _, a in KIND_AUDITS}
    assert {"label_selection", "class_count", "class_sum", "seed_count", "seed_sum", "lloyd_count", "lloyd_sum",
            "final_count", "final_sum", "final_second_moment", "class_norm_histogram",
            "final_within_scatter"} <= kinds
    # the scatter both pooled (lowrank) and one matrix per class (full)
    assert {"full:final_within_scatter", "lowrank:final_within_scatter"} <= {name for name, _ in KIND_AUDITS}
    assert len(KIND_AUDITS) * KIND_ALPHA < 1e-6


def _kind_bound(audit: ReleaseKindAudit, source, runs: int = KIND_RUNS, alpha: float = KIND_ALPHA
                ) -> tuple[float, float]:
    result = audit_mechanism(lambda with_record, n: audit.statistic(with_record, n, source), runs,
                             AUDIT_DELTA, alpha)
    return result.epsilon_lower_bound, mechanism_claim(audit.plan.ledger, audit.mechanism, AUDIT_DELTA)


@pytest.mark.parametrize("name,audit", KIND_AUDITS, ids=[n for n, _ in KIND_AUDITS])
def test_each_release_kind_passes_the_black_box_audit(name, audit):
    # Fails with probability at most KIND_ALPHA = 1e-8 on a correct mechanism (Clopper-Pearson).
    bound, claim = _kind_bound(audit, SecureNoise())
    assert bound <= claim, (name, bound, claim)
    assert bound > 0.5 * claim, (name, bound, claim)  # not vacuous (measured: 0.67-0.84 of the claim)


@pytest.mark.parametrize("name,audit", KIND_AUDITS, ids=[n for n, _ in KIND_AUDITS])
def test_black_box_audit_catches_noise_scaled_by_0_7_on_each_release_kind(name, audit):
    # Noise x 0.7: over repeats (benchmarks/audit.py --only-kinds) the bound's mean sat 1.34-1.6x the
    # claim, 8 sd or more above it; label selection, at the count auditing.label_audit_count picks,
    # 0.41-0.42 against 0.289 (sd 0.005, 25 sd). A miss has probability below 1e-8 (normal approximation).
    bound, claim = _kind_bound(audit, ScaledNoise(SecureNoise(), 0.7))
    assert bound > claim, (name, bound, claim)


@pytest.mark.parametrize("name,audit", [a for a in KIND_AUDITS if a[1].mechanism != "label_selection"],
                         ids=[n for n, a in KIND_AUDITS if a.mechanism != "label_selection"])
def test_empirical_sigma_of_released_minus_exact_matches_the_ledger(name, audit):
    # mean of squared standardised noise over >= 20,000 coordinates inside its chi-square interval
    # at failure probability 1e-7; noise x 0.7 (variance 0.49) falls far outside it.
    for factor, inside in ((1.0, True), (0.7, False)):
        source = RecordingNoise(ScaledNoise(SecureNoise(), factor))
        audit.statistic(False, 20_000, source)
        z = standardised_noise([d for d in source.draws if ledger_name(d.stream) == audit.mechanism])
        assert z.size >= 20_000
        lo, hi = variance_interval(z.size, 1e-7)
        assert (lo <= np.mean(z**2) <= hi) == inside, (name, factor, np.mean(z**2), lo, hi)
