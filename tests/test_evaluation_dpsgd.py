"""DP-SGD: exact clipped per-sample gradients and accounting checked two ways."""
import numpy as np
import pytest
import torch

from dpsynth.evaluation import dpsgd
from dpsynth.evaluation.mlp import Standardizer


@pytest.mark.parametrize("linear", [False, True])
def test_clipped_gradient_sum_matches_autograd_per_sample(linear):
    torch.manual_seed(0)
    params = dpsgd._init(5, 3, linear, seed=1)
    x = torch.randn(7, 5) * 3
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    clip = 0.5
    got, norms = dpsgd.clipped_gradient_sum({k: v.clone() for k, v in params.items()}, x, y, clip)
    want = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(len(x)):
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        h = x[i:i + 1] if linear else torch.relu(x[i:i + 1] @ p["w1"].T + p["b1"])
        loss = torch.nn.functional.cross_entropy(h @ p["w2"].T + p["b2"], y[i:i + 1])
        grads = torch.autograd.grad(loss, list(p.values()))
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        assert norm.item() == pytest.approx(norms[i].item(), rel=1e-4)
        for k, g in zip(p, grads):
            want[k] += g * min(1.0, clip / norm.item())
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("epsilon", [0.5, 3.0])
def test_calibration_meets_target_and_agrees_with_opacus(epsilon):
    plan = dpsgd.plan_dpsgd(epsilon, 1e-5, num_rows=20_000, expected_batch=1000, epochs=5)
    assert plan.steps == 100 and plan.sampling_rate == pytest.approx(0.05)
    spent = dpsgd.dpsgd_epsilon(plan.noise_multiplier, plan.sampling_rate, plan.steps, 1e-5)
    assert spent <= epsilon and spent > 0.99 * epsilon
    other = dpsgd.opacus_epsilon(plan.noise_multiplier, plan.sampling_rate, plan.steps, 1e-5)
    assert other == pytest.approx(spent, rel=0.02)
    # Less noise must cost more: the calibration is not vacuous.
    assert dpsgd.dpsgd_epsilon(0.8 * plan.noise_multiplier, plan.sampling_rate, plan.steps, 1e-5) > epsilon


def test_dpsgd_trains_at_large_epsilon_and_reports_its_plan():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, size=(2, 6))
    y = rng.integers(0, 2, 2000)
    x = (centres[y] + rng.normal(size=(2000, 6))).astype(np.float32)
    public = Standardizer.fit(x[:200])          # stands in for public rows
    clf, plan = dpsgd.train_dpsgd(x, y, 8.0, 1e-5, standardizer=public, linear=True, seed=1,
                                  expected_batch=200, epochs=5)
    # Seeded: deterministic. Classes ~ 3*sqrt(6) sd apart: a working DP-SGD separates them.
    assert clf.accuracy(x, y) > 0.9
    info = plan.to_json()
    assert info["spent_epsilon"] <= 8.0 and info["steps"] == 50
