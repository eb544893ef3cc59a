import math

import dp_accounting
import pytest

from dpsynth.accounting import Mechanism, PrivacyLedger, composed_epsilon
from dpsynth.calibration import SPEND_FLOOR, plan_releases
from dpsynth.errors import UserError
from dpsynth.params import SynthesisConfig


def test_composition_matches_the_equivalent_single_gaussian():
    # Gaussians compose exactly like one with 1/z^2 = sum 1/z_i^2.
    mechanisms = [Mechanism("a", "gaussian", 1.0, 4.0, 1), Mechanism("b", "gaussian", 2.0, 5.0, 3)]
    z_eff = 1 / math.sqrt(1 / 4.0**2 + 3 / 2.5**2)
    exact = dp_accounting.get_epsilon_gaussian(z_eff, 1e-5)
    assert composed_epsilon(mechanisms, 1e-5) == pytest.approx(exact, rel=1e-3)
    assert composed_epsilon(mechanisms, 1e-5) >= exact - 1e-9  # PLD is pessimistic


@pytest.mark.parametrize("epsilon", [0.25, 1.0, 3.0, 8.0])
@pytest.mark.parametrize("covariance,discover", [("spherical", False), ("diagonal", True), ("full", False),
                                                ("auto", True)])
def test_calibrated_plan_spends_between_90_and_100_percent(epsilon, covariance, discover):
    config = SynthesisConfig(epsilon=epsilon, delta=1e-5, covariance=covariance, rounds=2)
    plan = plan_releases(config, 64, discover_labels=discover)
    assert SPEND_FLOOR * epsilon <= plan.ledger.spent_epsilon <= epsilon
    # Anyone can recompute the spend from privacy.json alone.
    recomputed = PrivacyLedger.from_json(plan.ledger.to_json())
    assert composed_epsilon(recomputed.mechanisms, 1e-5) == pytest.approx(plan.ledger.spent_epsilon, abs=1e-9)


def test_noise_shrinks_as_epsilon_grows():
    sigmas = [plan_releases(SynthesisConfig(epsilon=e, delta=1e-5), 32, False).final_pass.sum_sigma
              for e in (0.25, 0.5, 1, 2, 4, 8)]
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))


def test_ledger_lists_every_release_with_its_count():
    plan = plan_releases(SynthesisConfig(epsilon=1, delta=1e-5, rounds=3, clip_mode="clip", covariance="spherical"),
                         16, True)
    entries = {m["name"]: m for m in plan.ledger.to_json()["mechanisms"]}
    assert set(entries) == {"label_selection", "class_count", "class_sum", "seed_count", "seed_sum",
                            "lloyd_count", "lloyd_sum", "final_count", "final_sum", "final_second_moment"}
    assert entries["lloyd_sum"]["count"] == 2 and entries["final_sum"]["count"] == 1
    assert entries["label_selection"]["kind"] == "gaussian_thresholding"
    assert entries["class_sum"]["l2_sensitivity"] >= 1.0  # radius 1, plus the grid's rounding slack


def test_privacy_json_has_exactly_the_documented_keys():
    data = plan_releases(SynthesisConfig(epsilon=1, delta=1e-5), 8, False).ledger.to_json()
    assert set(data) == {"target", "spent", "accountant", "adjacency", "mechanisms", "versions"}
    assert data["accountant"] == "pld" and data["adjacency"] == "add_remove"
    assert set(data["mechanisms"][0]) == {"name", "kind", "l2_sensitivity", "sigma", "count"}


def test_noise_free_test_mode_reports_no_privacy():
    plan = plan_releases(SynthesisConfig(epsilon=1, delta=1e-5, disable_noise=True), 8, False)
    assert plan.ledger.to_json()["spent"]["epsilon"] is None
    assert all(m.sigma == 0 for m in plan.ledger.mechanisms)


def test_full_covariance_adds_one_scatter_release_for_all_classes_with_its_sensitivity():
    plan = plan_releases(SynthesisConfig(epsilon=1, delta=1e-5, covariance="full", radius=4.0), 16, False)
    entries = {m["name"]: m for m in plan.ledger.to_json()["mechanisms"]}
    matrix = entries["final_within_scatter"]
    # ||u u^T||_F = ||u||^2 <= 1 whatever R (u: a centred row divided by its class's scale, clipped into the
    # unit ball), plus the grid's rounding slack on 16 * 17 / 2 coordinates; a record is in one class
    assert 1.0 <= matrix["l2_sensitivity"] < 1.01 and matrix["count"] == 1
    assert "class_second_moment_matrix" not in entries
    assert "final_second_moment" not in entries  # on the sphere the scales need no second moment
    assert plan.scatter_sigma == pytest.approx(matrix["sigma"])
    clipped = plan_releases(SynthesisConfig(epsilon=1, delta=1e-5, covariance="full", clip_mode="clip"), 16, False)
    assert "final_second_moment" in {m.name for m in clipped.ledger.mechanisms}  # clipped rows' scales


def test_auto_covariance_is_full_up_to_the_dimension_cap_then_lowrank_then_diagonal():
    config = SynthesisConfig(epsilon=1, delta=1e-5, labels=tuple(range(10)))
    assert config.covariance == "auto"
    assert plan_releases(config, 64, False).covariance == "full"
    assert plan_releases(config, 1024, False).covariance == "full"
    assert plan_releases(config, 2048, False).covariance == "lowrank"
    assert plan_releases(config, 8191, False).covariance == "lowrank"  # 33,550,336 packed values: within 2^25
    assert plan_releases(config, 8192, False).covariance == "diagonal"  # 33,558,528: one matrix no longer fits
    with pytest.raises(UserError, match="2\\^25") as info:
        plan_releases(config.replace(covariance="lowrank"), 8192, False)
    assert "covariance=diagonal" in str(info.value)
    with pytest.raises(UserError, match="d <= 1024") as info:
        plan_releases(config.replace(covariance="full"), 2048, False)
    assert "covariance=diagonal" in str(info.value) and "--" not in str(info.value)  # settings, not flags


def test_auto_covariance_bounds_the_matrices_held_in_all():
    # 1,000 public classes at d = 768 would hold 295 million values: auto falls back to lowrank,
    # whose one pooled matrix does not grow with the classes
    many = SynthesisConfig(epsilon=1, delta=1e-5, labels=tuple(range(1000)))
    assert plan_releases(many, 768, False).covariance == "lowrank"
    assert plan_releases(many, 128, False).covariance == "full"
    # discovered labels: the count is unknown when the plan is made, so full only up to d = 128
    discovered = SynthesisConfig(epsilon=1, delta=1e-5)
    assert plan_releases(discovered, 128, True).covariance == "full"
    assert plan_releases(discovered, 384, True).covariance == "lowrank"
    # an explicit choice is kept
    assert plan_releases(many.replace(covariance="full"), 768, False).covariance == "full"
