"""dpsynth.decoders: registry errors, scatternet inversion, user TorchScript/ONNX models, images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dpsynth.decoders import get_decoder
from dpsynth.decoders.custom import OnnxDecoder, TorchScriptDecoder
from dpsynth.decoders.images import contact_sheet, label_folder, png_bytes, read_png
from dpsynth.decoders.scatternet import DIMENSION, PUBLIC_SCALE, ScatterNetInversion, public_scale, scattering
from dpsynth.errors import UserError
from tests.decoder_models import LinearImageDecoder


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    """Four public digits (scikit-learn), 28x28 in [0, 1], and their unit scattering embeddings."""
    from sklearn.datasets import load_digits

    small = torch.from_numpy(load_digits().images[:4].astype(np.float32) / 16.0)[:, None]
    images = torch.nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    with torch.no_grad():
        features = scattering()(images).reshape(4, -1).numpy()
    return images.numpy(), features / np.linalg.norm(features, axis=1, keepdims=True)


def _cosine(images_uint8: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    with torch.inference_mode():  # the decoder keeps its own instance: this must not break it
        f = scattering()(torch.from_numpy(images_uint8.astype(np.float32) / 255.0)).reshape(len(images_uint8), -1)
    f = f.numpy()
    return (f * embeddings).sum(1) / np.linalg.norm(f, axis=1)


def test_public_scale_is_the_digits_median():
    assert public_scale() == pytest.approx(PUBLIC_SCALE, abs=1e-3)


def test_inversion_matches_the_embedding_better_with_steps(digits):
    images, embeddings = digits
    start = ScatterNetInversion(steps=0).decode(embeddings)
    fitted = ScatterNetInversion(steps=8).decode(embeddings)
    assert fitted.shape == (4, 28, 28) and fitted.dtype == np.uint8
    assert np.all(_cosine(fitted, embeddings) > _cosine(start, embeddings))
    assert np.all(_cosine(fitted, embeddings) > 0.95)
    # the pixels come back too, not only the features: closer to the digit than its blurred start
    error = lambda decoded: ((decoded / 255.0 - images) ** 2).mean(axis=(1, 2))
    assert error(fitted).mean() < error(start).mean()
    assert np.all(fitted.reshape(4, -1).max(axis=1) == 255)  # stretched: brightest pixel is 1


def test_inversion_is_deterministic_and_per_row(digits):
    _, embeddings = digits
    decoder = ScatterNetInversion(steps=2)
    both = decoder.decode(embeddings[:2])
    assert np.array_equal(both, decoder.decode(embeddings[:2]))
    # a row's image does not depend on its batch-mates (up to one grey level of float noise)
    assert np.abs(both[1].astype(int) - decoder.decode(embeddings[1:2])[0].astype(int)).max() <= 1


def test_scale_free_and_empty_rows(digits):
    _, embeddings = digits
    decoder = ScatterNetInversion(steps=2)
    # only the direction counts (a power-of-two rescale is exact in float, so the images are equal)
    assert np.array_equal(decoder.decode(embeddings[:1]), decoder.decode(4.0 * embeddings[:1]))
    rows = np.zeros((2, DIMENSION), np.float32)
    rows[1, :] = np.nan
    assert not decoder.decode(rows).any()  # no direction: black, not stretched noise


def test_scatternet_checks_dimension_and_settings():
    decoder = get_decoder("scatternet", steps=1, lr=None)
    with pytest.raises(UserError, match="3969-d"):
        decoder.check(8)
    decoder.check(DIMENSION)
    with pytest.raises(UserError, match="steps"):
        get_decoder("scatternet", steps=-1)


@pytest.mark.parametrize("name, message", [
    ("efficientnet-lite0", "encoder 'efficientnet-lite0' has no decoder"),
    ("minilm", "encoder 'minilm' has no decoder"),
    ("none", "has no decoder"),
    ("stylegan", "unknown decoder 'stylegan'; choose one of: scatternet"),
    ("torchscript:", "unknown decoder"),
    ("torchscript:/no/such/file.pt", "file not found"),
])
def test_registry_errors_are_one_line(name, message):
    with pytest.raises(UserError, match=message) as info:
        get_decoder(name)
    assert "\n" not in str(info.value)


def _tiny_decoder() -> LinearImageDecoder:
    """8-d embedding -> 1x12x10 image in [0, 1] (NCHW)."""
    return LinearImageDecoder(12, 10)


def _torchscript(tmp_path, module=None):
    path = tmp_path / "decoder.pt"
    torch.jit.script(module or _tiny_decoder()).save(str(path))
    return str(path)


def _onnx(tmp_path, weight: np.ndarray, bias: np.ndarray, shape=(-1, 1, 12, 10)):
    """The same map as an ONNX graph built by hand (no exporter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Sigmoid", ["a"], ["s"]), helper.make_node("Reshape", ["s", "shape"], ["y"])],
        "decoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight.T.astype(np.float32), "w"), numpy_helper.from_array(bias, "b"),
         numpy_helper.from_array(np.array(shape, np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "decoder.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_torchscript_and_onnx_decoders_agree(tmp_path):
    module = _tiny_decoder()
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    scripted = get_decoder(f"torchscript:{_torchscript(tmp_path, module)}")
    onnx_model = get_decoder(f"onnx:{_onnx(tmp_path, module.linear.weight.detach().numpy(), module.linear.bias.detach().numpy())}")
    assert isinstance(scripted, TorchScriptDecoder) and isinstance(onnx_model, OnnxDecoder)
    a, b = scripted.decode(x), onnx_model.decode(x)
    assert a.shape == (5, 12, 10) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with torch.inference_mode():
        expected = np.rint(module(torch.from_numpy(x)).numpy()[:, 0] * 255)
    assert np.abs(a - expected).max() <= 1
    scripted.check(8)
    assert onnx_model.input_dim == 8


def test_user_decoder_errors(tmp_path):
    bad_file = tmp_path / "junk.onnx"
    bad_file.write_bytes(b"not a model")
    with pytest.raises(UserError, match="does not load") as info:
        get_decoder(f"onnx:{bad_file}")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="apply to scatternet only"):
        get_decoder(f"torchscript:{_torchscript(tmp_path)}", steps=3)
    module = _tiny_decoder()
    wrong = get_decoder(f"onnx:{_onnx(tmp_path, module.linear.weight.detach().numpy(), module.linear.bias.detach().numpy(), shape=(-1, 120))}")
    with pytest.raises(UserError, match="returned shape"):
        wrong.check(8)


def test_png_round_trip_and_contact_sheet():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    colour = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(read_png(png_bytes(grey)), grey)
    assert np.array_equal(read_png(png_bytes(colour)), colour)
    sheet = contact_sheet([grey] * 5, pad=1, zoom=2)  # 3 columns x 2 rows of 10x12 tiles
    assert sheet.shape == (2 * 11 + 1, 3 * 13 + 1)
    assert np.array_equal(sheet[1:11, 1:13], np.kron(grey, np.ones((2, 2), np.uint8)))
    assert contact_sheet([grey, colour], zoom=1).shape[-1] == 3
    with pytest.raises(ValueError):
        contact_sheet([grey, grey[:4]])


def test_label_folders_are_safe():
    assert label_folder(3) == "3"
    assert label_folder("ankle boot") == "ankle_boot"
    assert label_folder("../etc") == "_.._etc"  # no separator, no leading dot
    assert label_folder("..") == "_.."
    assert label_folder(".hidden") == "_.hidden"


def test_inverts_exactly_the_scatternet_encoder():
    """The decoder's transform is the encoder's (dpsynth.encoders.scatternet): same features, same size."""
    from dpsynth.encoders import get_encoder

    images = np.random.default_rng(5).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    encoder = get_encoder("scatternet")
    assert encoder.output_dim == DIMENSION
    with torch.no_grad():
        ours = scattering()(torch.from_numpy(images.astype(np.float32) / 255.0)).reshape(2, -1).numpy()
    np.testing.assert_allclose(encoder.embed(list(images)), ours, rtol=1e-5, atol=1e-6)
