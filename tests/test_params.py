import pytest

from beam_pipeline.options import as_flag
from dpsynth.errors import OptionError, UserError
from dpsynth.params import SynthesisConfig, parse_label_list


@pytest.mark.parametrize("changes", [
    {"epsilon": 0}, {"epsilon": -1}, {"epsilon": float("inf")}, {"epsilon": float("nan")},
    {"delta": 0}, {"delta": 1}, {"delta": 1.5}, {"radius": 0}, {"clip_mode": "squash"},
    {"covariance": "tied"}, {"class_balance": "random"}, {"rounds": 0}, {"max_clusters": 0},
    {"num_samples": -1}, {"labels": ()}, {"labels": ("a", "a")},
])
def test_invalid_values_are_user_errors(changes):
    args = {"epsilon": 1.0, "delta": 1e-5, **changes}
    with pytest.raises(UserError):
        SynthesisConfig(**args)


@pytest.mark.parametrize("changes,field", [
    ({"epsilon": 0}, "epsilon"), ({"delta": 1.5}, "delta"), ({"max_rows": 0}, "max_rows"),
    ({"clip_mode": "squash"}, "clip_mode"), ({"num_samples": -1}, "num_samples"), ({"labels": ()}, "labels"),
])
def test_errors_name_the_field_and_a_command_line_renders_its_flag(changes, field):
    with pytest.raises(OptionError) as info:
        SynthesisConfig(**{"epsilon": 1.0, "delta": 1e-5, **changes})
    assert str(info.value).startswith(field + " ") and "--" not in str(info.value)
    assert info.value.render(as_flag).startswith(as_flag(field) + " ")


def test_private_unless_a_test_switch_is_on():
    config = SynthesisConfig(epsilon=1.0, delta=1e-5)
    assert config.is_private
    assert not config.replace(noise_seed=3).is_private
    assert not config.replace(disable_noise=True).is_private


def test_label_list_is_typed_like_the_column():
    assert parse_label_list("1, 2,3", as_int=True) == (1, 2, 3)
    assert parse_label_list("a,b", as_int=False) == ("a", "b")
    with pytest.raises(UserError):
        parse_label_list("1,x", as_int=True)
