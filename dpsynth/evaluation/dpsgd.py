"""DP-SGD baselines: the fixed two-layer MLP and a linear probe on real private rows.

Opacus (pinned in requirements/eval.txt) needs per-sample gradients
materialised per layer, which is slow on CPU, so this module computes the
per-sample gradients of the two-layer network in closed form, which is exact for these two architectures: for a linear layer with
input a_i and output gradient g_i, the per-sample weight gradient is the outer
product g_i a_i^T, its squared Frobenius norm is |g_i|^2 |a_i|^2, and the sum
of clipped per-sample gradients is (c * G)^T A with c_i the clip factors. No
per-sample gradient tensor is ever built (the "ghost norm" trick).

Privacy: Poisson sampling with rate q = batch / n, Gaussian noise of standard
deviation sigma * C on the sum of clipped gradients, `steps` steps. sigma is
calibrated with dp-accounting's RDP accountant for the target (epsilon,
delta); `opacus_epsilon` recomputes the spend with Opacus's own RDP
accountant as an independent check. Only the final model is released.

Hyper-parameters are fixed in advance from Tramer & Boneh (ICLR 2021), who
ran DP-SGD on ScatterNet features: clip norm C = 0.1, momentum 0.9, large
batches; they are not tuned here on private or test rows. Inputs are
standardised with statistics of public rows only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import dp_accounting
from dp_accounting import rdp

from dpsynth.evaluation.mlp import WIDTH, Standardizer, TrainedClassifier, build_mlp, encode_labels

CLIP_NORM = 0.1
MOMENTUM = 0.9
EXPECTED_BATCH = 4096
EPOCHS = 40
LR_LINEAR = 4.0
LR_MLP = 2.0


@dataclass(frozen=True)
class DpSgdPlan:
    """What DP-SGD will do and what it costs: everything the ledger needs."""

    epsilon: float
    delta: float
    num_rows: int
    sampling_rate: float
    steps: int
    noise_multiplier: float
    clip_norm: float = CLIP_NORM
    accountant: str = "dp_accounting.rdp.RdpAccountant"

    def to_json(self) -> dict:
        return {"mechanism": "DP-SGD (Poisson-subsampled Gaussian)", "epsilon": self.epsilon,
                "delta": self.delta, "num_rows": self.num_rows, "sampling_rate": self.sampling_rate,
                "steps": self.steps, "noise_multiplier": self.noise_multiplier,
                "clip_norm": self.clip_norm, "accountant": self.accountant,
                "spent_epsilon": dpsgd_epsilon(self.noise_multiplier, self.sampling_rate, self.steps,
                                               self.delta)}


def _event(noise_multiplier: float, q: float, steps: int) -> dp_accounting.DpEvent:
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)


@functools.lru_cache(maxsize=256)
def dpsgd_epsilon(noise_multiplier: float, q: float, steps: int, delta: float) -> float:
    """epsilon spent by `steps` Poisson-sampled Gaussian steps, by dp-accounting's RDP accountant."""
    acc = rdp.RdpAccountant()
    acc.compose(_event(noise_multiplier, q, steps))
    return float(acc.get_epsilon(delta))


@functools.lru_cache(maxsize=256)  # repetitions and both models reuse one calibration
def calibrate_noise(epsilon: float, delta: float, q: float, steps: int) -> float:
    """Smallest noise multiplier (to 1e-4 relative) whose RDP spend is at most epsilon."""
    sigma = dp_accounting.calibrate_dp_mechanism(
        rdp.RdpAccountant, lambda s: _event(s, q, steps), epsilon, delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(0.05, 500.0), tol=1e-4)
    sigma = float(sigma)
    if dpsgd_epsilon(sigma, q, steps, delta) > epsilon * (1 + 1e-9):
        raise RuntimeError("noise calibration missed the target epsilon")
    return sigma


def opacus_epsilon(noise_multiplier: float, q: float, steps: int, delta: float) -> float:
    """The same spend by Opacus's RDP accountant: an independent cross-check of the accounting."""
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(noise_multiplier, q, steps)]
    return float(acc.get_epsilon(delta))


def plan_dpsgd(epsilon: float, delta: float, num_rows: int, *, expected_batch: int = EXPECTED_BATCH,
               epochs: int = EPOCHS) -> DpSgdPlan:
    if num_rows <= 0:
        raise ValueError("DP-SGD needs at least one private row")
    q = min(1.0, expected_batch / num_rows)
    steps = max(1, int(round(epochs / q)))
    return DpSgdPlan(epsilon, delta, num_rows, q, steps, calibrate_noise(epsilon, delta, q, steps))


def _init(dim: int, num_classes: int, linear: bool, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    if linear:
        layer = torch.nn.Linear(dim, num_classes)
        return {"w2": layer.weight.detach().clone(), "b2": layer.bias.detach().clone()}
    net = build_mlp(dim, num_classes)
    return {"w1": net[0].weight.detach().clone(), "b1": net[0].bias.detach().clone(),
            "w2": net[2].weight.detach().clone(), "b2": net[2].bias.detach().clone()}


def clipped_gradient_sum(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                         clip_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Sum over the batch of per-sample cross-entropy gradients, each clipped to L2 norm clip_norm.

    Returns the sums and the per-sample gradient norms before clipping.
    """
    linear = "w1" not in params
    if linear:
        h = x
    else:
        pre = x @ params["w1"].T + params["b1"]               # [b, WIDTH]
        h = torch.relu(pre)
    logits = h @ params["w2"].T + params["b2"]                # [b, classes]
    g2 = torch.softmax(logits, dim=1)
    g2[torch.arange(len(y)), y] -= 1.0                        # dL/dlogits per sample
    sq = (g2 * g2).sum(1) * ((h * h).sum(1) + 1.0)            # |grad w2|^2 + |grad b2|^2
    if not linear:
        g1 = (g2 @ params["w2"]) * (pre > 0)                  # dL/dpre per sample
        sq = sq + (g1 * g1).sum(1) * ((x * x).sum(1) + 1.0)
    norms = sq.sqrt()
    c = torch.clamp(clip_norm / (norms + 1e-12), max=1.0)[:, None]
    grads = {"w2": (c * g2).T @ h, "b2": (c * g2).sum(0)}
    if not linear:
        grads["w1"] = (c * g1).T @ x
        grads["b1"] = (c * g1).sum(0)
    return grads, norms


def train_dpsgd(x: np.ndarray, labels: np.ndarray, epsilon: float, delta: float, *,
                standardizer: Standardizer, classes: np.ndarray | None = None, linear: bool = False,
                seed: int | None = None, expected_batch: int = EXPECTED_BATCH, epochs: int = EPOCHS,
                lr: float | None = None) -> tuple[TrainedClassifier, DpSgdPlan]:
    """DP-SGD on private rows; `standardizer` must be fitted on public rows.

    `seed` fixes sampling and noise for tests only; None draws fresh OS entropy.
    `classes` is the public label set (default: the sorted distinct labels,
    which a real deployment must know in advance).
    """
    if torch.get_num_threads() > 2:
        torch.set_num_threads(2)
    y_idx, classes = encode_labels(labels, classes)
    plan = plan_dpsgd(epsilon, delta, len(x), expected_batch=expected_batch, epochs=epochs)
    xs = torch.from_numpy(standardizer(np.asarray(x, dtype=np.float32)))
    yt = torch.from_numpy(y_idx)
    seed_seq = np.random.SeedSequence(seed)
    init_seed, sample_seed, noise_seed = (int(s.generate_state(1)[0]) for s in seed_seq.spawn(3))
    params = _init(xs.shape[1], len(classes), linear, init_seed)
    velocity = {k: torch.zeros_like(v) for k, v in params.items()}
    sample_gen = torch.Generator().manual_seed(sample_seed)
    noise_gen = torch.Generator().manual_seed(noise_seed)
    step_size = lr if lr is not None else (LR_LINEAR if linear else LR_MLP)
    denom = plan.sampling_rate * len(x)                       # expected batch: unbiased, private
    for _ in range(plan.steps):
        mask = torch.rand(len(x), generator=sample_gen) < plan.sampling_rate
        idx = mask.nonzero().squeeze(1)
        if len(idx):
            grads, _ = clipped_gradient_sum(params, xs[idx], yt[idx], plan.clip_norm)
        else:
            grads = {k: torch.zeros_like(v) for k, v in params.items()}
        for k in params:
            noisy = grads[k] + torch.randn(grads[k].shape, generator=noise_gen) * (
                plan.noise_multiplier * plan.clip_norm)
            velocity[k].mul_(MOMENTUM).add_(noisy / denom)
            params[k].sub_(step_size * velocity[k])
    if linear:
        model = torch.nn.Linear(xs.shape[1], len(classes))
        model.weight.data.copy_(params["w2"]); model.bias.data.copy_(params["b2"])
    else:
        model = build_mlp(xs.shape[1], len(classes), WIDTH)
        model[0].weight.data.copy_(params["w1"]); model[0].bias.data.copy_(params["b1"])
        model[2].weight.data.copy_(params["w2"]); model[2].bias.data.copy_(params["b2"])
    model.eval()
    return TrainedClassifier(model, standardizer, classes), plan
