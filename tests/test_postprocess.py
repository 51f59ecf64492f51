"""Label maps into colour masks, overlays and class shares."""

from __future__ import annotations

import numpy as np
import pytest

from zoo import postprocess
from zoo.registry.spec import CITYSCAPES_LABELS, Architecture, pseudo_color_palette


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_colorize_is_a_palette_lookup_with_wraparound(dtype):
    palette = ((10, 20, 30), (40, 50, 60), (70, 80, 90))
    labels = np.array([[0, 1, 2], [3, 4, 5]], dtype=dtype)  # 3..5 wrap around a 3-colour palette
    mask = postprocess.colorize(labels, palette)
    expected = np.array([[palette[0], palette[1], palette[2]], [palette[0], palette[1], palette[2]]], np.uint8)
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)


def test_colorize_large_maps_matches_reference():
    labels = np.random.default_rng(0).integers(0, 19, (123, 257)).astype(np.uint8)
    colors = pseudo_color_palette(256)
    reference = np.asarray(colors, np.uint8)[labels.astype(np.int64)]
    assert np.array_equal(postprocess.colorize(labels, colors), reference)
    assert np.array_equal(postprocess.colorize(labels.astype(np.int32), colors), reference)


def test_overlay_blends_within_one_level_of_exact():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (64, 96, 3)).astype(np.uint8)
    mask = rng.integers(0, 256, (64, 96, 3)).astype(np.uint8)
    for alpha in (0.0, 0.3, 0.5, 1.0):
        exact = rgb.astype(np.float64) * (1 - alpha) + mask.astype(np.float64) * alpha
        got = postprocess.overlay(rgb, mask, alpha)
        assert got.dtype == np.uint8 and got.shape == rgb.shape
        assert np.abs(got.astype(np.float64) - exact).max() <= 1.0
    with pytest.raises(ValueError, match="differ in size"):
        postprocess.overlay(rgb, mask[:10], 0.5)


def test_class_shares_names_and_orders_classes():
    labels = np.zeros((10, 10), np.uint8)
    labels[:3] = 13  # car
    labels[9, 9] = 25  # past the label list
    shares = postprocess.class_shares(labels, CITYSCAPES_LABELS)
    assert list(shares) == ["road", "car", "class_25"]
    assert shares == {"road": 0.69, "car": 0.3, "class_25": 0.01}


def test_architecture_colorize_and_overlay_use_its_palette():
    arch = Architecture(name="t", summary="", labels=("a", "b"), palette=((255, 0, 0), (0, 0, 255)), overlay_alpha=1.0)
    labels = np.array([[0, 1]], np.uint8)
    assert arch.colorize(labels).tolist() == [[[255, 0, 0], [0, 0, 255]]]
    assert arch.overlay(np.zeros((1, 2, 3), np.uint8), labels).tolist() == [[[255, 0, 0], [0, 0, 255]]]
