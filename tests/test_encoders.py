"""Encoders on real items: scikit-learn digits and short sentences.

Every assertion here is deterministic (fixed weights, fixed inputs): no
failure probability to state.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from beam_pipeline.embed import encoder_from_args
from dpsynth.encoders import ENCODER_NAMES, configure_torch_threads, get_encoder
from dpsynth.encoders.imaging import to_grey_float, to_rgb_float
from dpsynth.errors import UserError


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    # 4 images of each of the classes 0, 1 and 7 (uint8, 8x8 grey)
    idx = np.concatenate([np.flatnonzero(d.target == c)[:4] for c in (0, 1, 7)])
    images = np.rint(d.images[idx] * (255 / 16)).astype(np.uint8)
    return list(images), d.target[idx]


def _class_separation(emb: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cosine distance within classes and across classes."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dist = 1.0 - unit @ unit.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    return float(dist[same & off_diag].mean()), float(dist[~same].mean())


def test_unknown_encoder_is_a_user_error():
    with pytest.raises(UserError, match="unknown encoder 'resnet'"):
        get_encoder("resnet")
    # The library names settings as parameters; the command line, which the flags below come from,
    # renders the same errors with its flag names.
    with pytest.raises(UserError, match="image-size"):
        encoder_from_args(_embed_args("minilm", image_size=64))
    with pytest.raises(UserError, match="--channels and --normalize"):
        encoder_from_args(_embed_args("efficientnet-lite0", normalize="imagenet"))
    with pytest.raises(UserError, match=r"\(image_size\) apply to efficientnet-lite0, torchscript:PATH") as info:
        get_encoder("minilm", image_size=64)
    with pytest.raises(UserError, match=r"\(channels and normalize\) apply to torchscript:PATH and onnx:PATH"):
        get_encoder("efficientnet-lite0", normalize="imagenet")
    assert "--" not in str(info.value)


def _embed_args(encoder: str, **flags) -> argparse.Namespace:
    values = {"image_size": None, "channels": None, "normalize": None, "project_dim": None, **flags}
    return argparse.Namespace(encoder=encoder, **values)


def test_registry_names_are_documented():
    assert {"efficientnet-lite0", "scatternet", "minilm", "none"} <= set(ENCODER_NAMES)


def test_scatternet_spec_shape_determinism_and_classes(digits):
    images, labels = digits
    enc = get_encoder("scatternet")
    assert (enc.modality, enc.output_dim) == ("image", 3969)
    emb = enc.embed(images)
    assert emb.shape == (12, 3969) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb)) and np.all(np.linalg.norm(emb, axis=1) > 0)
    np.testing.assert_array_equal(emb, enc.embed(images))
    within, across = _class_separation(emb, labels)
    assert within < across
    # The spec: 28x28 bilinear grey in [0,1] -> ScatteringTorch2D(J=2) -> 81x7x7 flattened.
    from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

    x = torch.from_numpy(np.stack([im.astype(np.float32) / 255 for im in images[:2]]))[:, None]
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    ref = ScatteringTorch2D(J=2, shape=(28, 28))(x).reshape(2, -1).numpy()
    np.testing.assert_allclose(emb[:2], ref, rtol=1e-5, atol=1e-6)


def test_scatternet_colour_is_luma_and_28px_is_untouched():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    enc = get_encoder("scatternet")
    a, b = enc.embed([grey, rgb])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    colour = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    expected = (colour.astype(np.float32) / 255) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(to_grey_float(colour), expected, rtol=1e-6)
    np.testing.assert_array_equal(enc.preprocess([grey])[0].numpy(), grey.astype(np.float32) / 255)


def test_efficientnet_shape_determinism_and_classes(digits):
    images, labels = digits
    enc = get_encoder("efficientnet-lite0", image_size=96)
    assert (enc.modality, enc.output_dim) == ("image", 1280)
    emb = enc.embed(images)
    assert emb.shape == (12, 1280) and emb.dtype == np.float32 and np.all(np.isfinite(emb))
    np.testing.assert_allclose(emb, enc.embed(images), rtol=1e-5, atol=1e-5)
    within, across = _class_separation(emb, labels)
    assert within < across
    # grey input is replicated to 3 channels: a grey image and its RGB copy embed alike
    np.testing.assert_allclose(to_rgb_float(images[0]), to_rgb_float(np.stack([images[0]] * 3, -1)))
    full = get_encoder("efficientnet-lite0")  # 224 px default, odd-sized colour input
    rng = np.random.default_rng(1)
    out = full.embed([rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8), images[0]])
    assert out.shape == (2, 1280) and np.all(np.isfinite(out))


def test_minilm_shape_norm_determinism_and_similarity():
    enc = get_encoder("minilm")
    assert (enc.modality, enc.output_dim) == ("text", 384)
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.",
             "Stock markets fell sharply after the interest rate decision."]
    emb = enc.embed(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, enc.embed(texts), atol=1e-6)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    assert emb[0] @ emb[1] > emb[1] @ emb[2] + 0.2
    # same result alone as in a padded batch
    np.testing.assert_allclose(enc.embed(texts[:1])[0], emb[0], atol=1e-5)


def test_precomputed_vectors_pass_through():
    enc = get_encoder("none")
    assert enc.modality == "vector"
    v = enc.embed([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    np.testing.assert_array_equal(v, np.array([[1, 2], [3, 4]], np.float32))


class _TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 5, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_torchscript_user_model(tmp_path, digits):
    images, _ = digits
    path = tmp_path / "tiny.pt"
    net = _TinyNet().eval()
    torch.jit.script(net).save(str(path))
    enc = get_encoder(f"torchscript:{path}", image_size=32, normalize="imagenet")
    assert (enc.modality, enc.output_dim) == ("image", 5)
    emb = enc.embed(images[:3])
    with torch.no_grad():
        ref = net(enc.preprocess(images[:3])).numpy()
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-6)
    import pickle

    clone = pickle.loads(pickle.dumps(enc))  # workers reload from the path
    np.testing.assert_allclose(clone.embed(images[:3], clone.load_model()), emb, rtol=1e-5, atol=1e-6)


def test_onnx_user_model_takes_size_from_the_file(tmp_path, digits):
    images, _ = digits
    path = tmp_path / "tiny.onnx"
    net = _TinyNet().eval()
    torch.onnx.export(net, (torch.zeros(2, 3, 40, 40),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    enc = get_encoder(f"onnx:{path}")
    assert (enc.image_size, enc.channels, enc.output_dim) == (40, 3, 5)
    emb = enc.embed(images[:3])
    with torch.no_grad():
        ref = net(enc.preprocess(images[:3])).numpy()
    np.testing.assert_allclose(emb, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_model_file_that_does_not_load_is_one_line(tmp_path, kind):
    bad = tmp_path / "broken.bin"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(UserError) as err:
        get_encoder(f"{kind}:{bad}")
    assert "does not load" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="does not load|cannot|not"):
        get_encoder(f"{kind}:{tmp_path / 'missing.bin'}")


def test_configure_torch_threads_sets_the_count():
    before = torch.get_num_threads()
    try:
        assert configure_torch_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_random_projection_is_public_deterministic_and_keeps_geometry(digits):
    import pickle

    images, labels = digits
    base = get_encoder("scatternet")
    enc = get_encoder("scatternet", project_dim=256)
    assert (enc.name, enc.output_dim, enc.modality) == ("scatternet+rp256", 256, "image")
    full, low = base.embed(images), enc.embed(images)
    assert low.shape == (12, 256) and low.dtype == np.float32
    np.testing.assert_array_equal(low, pickle.loads(pickle.dumps(enc)).embed(images))  # same matrix anywhere
    from dpsynth.encoders.projection import projection_matrix

    np.testing.assert_allclose(low, full @ projection_matrix(3969, 256), rtol=1e-5)
    # Johnson-Lindenstrauss: pairwise distances kept within 30% (deterministic for this fixed matrix)
    d_full = np.linalg.norm(full[:, None] - full[None], axis=-1)
    d_low = np.linalg.norm(low[:, None] - low[None], axis=-1)
    off = ~np.eye(12, dtype=bool)
    ratio = d_low[off] / d_full[off]
    assert ratio.min() > 0.7 and ratio.max() < 1.3
    within, across = _class_separation(low, labels)
    assert within < across
    with pytest.raises(UserError, match="not below"):
        get_encoder("minilm", project_dim=384)
