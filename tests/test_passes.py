"""Pass kinds: one source for the names of noise streams, Beam steps and ledger mechanisms."""
import pytest

from dpsynth import algorithm
from dpsynth.auditing import ledger_name
from dpsynth.calibration import plan_releases
from dpsynth.params import SynthesisConfig
from dpsynth.passes import PassKind, kind_of_name, mechanism_name, pass_kinds, pass_names


def test_a_run_is_class_seed_lloyd_rounds_and_final():
    assert pass_kinds(1) == (PassKind.CLASS, PassKind.SEED, PassKind.FINAL)
    assert pass_names(3) == ["class", "seed", "round1", "round2", "final"]
    assert [kind_of_name(name) for name in pass_names(3)] == list(pass_kinds(3))
    assert kind_of_name("labels") is None and kind_of_name("lloyd") is None


def test_advance_handles_every_kind():
    assert set(algorithm._AFTER_PASS) == set(PassKind)


@pytest.mark.parametrize("covariance, clip_mode", [("full", "normalize"), ("diagonal", "clip")])
def test_every_ledger_mechanism_is_named_by_a_pass_kind(covariance, clip_mode):
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, rounds=3, covariance=covariance, clip_mode=clip_mode)
    plan = plan_releases(config, 4, discover_labels=False)
    releases = ([(kind, field) for kind in PassKind for field in ("count", "sum")]
                + [(PassKind.FINAL, "second"), (PassKind.CLASS, "norms"), (PassKind.FINAL, "scatter")])
    named = {mechanism_name(kind, field) for kind, field in releases}
    assert {m.name for m in plan.ledger.mechanisms} <= named
    for name in pass_names(config.rounds):
        assert ledger_name((name, 0, "count")) == mechanism_name(kind_of_name(name), "count")
    with pytest.raises(KeyError):
        mechanism_name(PassKind.SEED, "second")
    with pytest.raises(KeyError):  # a full covariance's class matrices are the final pass's scatter now
        mechanism_name(PassKind.CLASS, "second")
