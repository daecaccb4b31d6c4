"""Tiled denoising: layout rules, exact blending, and agreement with whole-image output."""
from __future__ import annotations

import numpy as np
import pytest

from atbsn_edge.tiling import (AUTO_TILE_AREA, DEFAULT_OVERLAP, DEFAULT_TILE, TileSpec,
                               auto_tile_shape, denoise_tiled, feather_weights, plan_tiles,
                               reflect_indices, tile_origins)
from conftest import textured_image


def test_reflect_indices_match_numpy_reflect():
    for length in (1, 2, 5, 17):
        for total in (1, 7, 40, 100):
            expected = np.pad(np.arange(length), (0, max(0, total - length)), mode="reflect")[:total] \
                if length > 1 else np.zeros(total, int)
            assert np.array_equal(reflect_indices(length, total), expected)


@pytest.mark.parametrize("length,tile,overlap", [(1024, 512, 128), (704, 512, 128),
                                                 (2048, 256, 64), (512, 512, 128)])
def test_origins_on_grid_cover_everything(length, tile, overlap):
    origins = tile_origins(length, tile, overlap)
    assert origins[0] == 0 and origins[-1] == length - tile
    assert all(o % 32 == 0 for o in origins)
    assert all(b - a <= tile - overlap for a, b in zip(origins, origins[1:]))
    total = np.zeros(length)
    for o, w in zip(origins, feather_weights(origins, tile, length)):
        total[o:o + tile] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_tile_borders_get_no_weight_inside_the_image():
    origins = tile_origins(1024, 512, 128)
    weights = feather_weights(origins, 512, 1024)
    assert weights[1][:32].max() == 0 and weights[0][-32:].max() == 0


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (31, 33), (100, 45), (300, 700)])
def test_identity_network_reproduces_image_exactly(shape):
    image = textured_image(*shape)
    out = denoise_tiled(image, lambda batch: batch, TileSpec(128, 128, 64, batch=3))
    np.testing.assert_allclose(out, image, atol=1e-3)


def test_small_image_is_padded_to_one_tile():
    plan = plan_tiles(20, 50, TileSpec(64, 96, 32))
    assert (plan.ys, plan.xs, plan.tile_h, plan.tile_w) == ([0], [0], 64, 96)


def test_whole_image_plan_pads_to_the_stride_only():
    plan = plan_tiles(70, 90, TileSpec(0, 0, 32, stride=4))
    assert (plan.tile_h, plan.tile_w, plan.count) == (72, 92, 1)


def test_tiles_are_batched():
    sizes = []
    denoise_tiled(textured_image(300, 300), lambda b: sizes.append(len(b)) or b,
                  TileSpec(128, 128, 32, batch=4))
    assert sizes == [4, 4, 1]


@pytest.mark.parametrize("bad", [dict(tile_h=100), dict(overlap=48), dict(overlap=512),
                                 dict(batch=0), dict(stride=5)])
def test_invalid_specs(bad):
    with pytest.raises(ValueError):
        plan_tiles(100, 100, TileSpec(**bad))


def test_wrong_network_output_shape_is_reported():
    with pytest.raises(ValueError, match="expected"):
        denoise_tiled(textured_image(64, 64), lambda b: b[:, :, :32], TileSpec(64, 64, 32))


def test_each_tile_is_its_window_of_the_reflect_padded_image():
    """Inner tiles are sliced, border tiles gathered with reflection: both give the window."""
    image = textured_image(100, 230)
    spec = TileSpec(64, 64, 32, batch=2)
    plan = plan_tiles(100, 230, spec)
    padded = np.pad(image, ((0, 128 - 100), (0, 256 - 230), (0, 0)), mode="reflect")
    seen = []
    denoise_tiled(image, lambda batch: seen.append(batch.copy()) or batch, spec)
    tiles = np.concatenate(seen)[:plan.count]
    for k, (i, j) in enumerate(plan.tiles()):
        y, x = plan.ys[i], plan.xs[j]
        np.testing.assert_array_equal(tiles[k], padded[y:y + 64, x:x + 64].transpose(2, 0, 1))


# --------------------------------------------------------------------------------------------
# --tile auto: a tile shape per image
# --------------------------------------------------------------------------------------------

def computed_pixels(height: int, width: int, tile_h: int, tile_w: int, overlap: int,
                    lanes: int = 1) -> int:
    """What a tile shape costs an image: rounds of ``lanes`` tiles, each the tile's area."""
    count = plan_tiles(height, width, TileSpec(tile_h, tile_w, overlap)).count
    return -(-count // lanes) * lanes * tile_h * tile_w


@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("shape", [(300, 500), (180, 250), (90, 700), (64, 64), (481, 479)])
def test_auto_tile_shape_computes_the_fewest_pixels_of_every_shape(shape, lanes):
    overlap, max_area = 32, 160 * 224
    best = auto_tile_shape(*shape, overlap, max_area=max_area, lanes=lanes)
    assert best[0] % 32 == 0 and best[1] % 32 == 0 and min(best) > overlap
    assert best[0] * best[1] <= max_area
    cost = computed_pixels(*shape, *best, overlap, lanes)
    every = [computed_pixels(*shape, h, w, overlap, lanes)
             for h in range(64, 1024, 32) for w in range(64, 1024, 32) if h * w <= max_area]
    assert cost == min(every)


def test_auto_tiles_compute_a_12_mp_photo_in_fewer_pixels_than_512_tiles():
    shape = (3000, 4000)
    tile = auto_tile_shape(*shape, DEFAULT_OVERLAP)
    assert tile[0] * tile[1] <= AUTO_TILE_AREA
    fixed = computed_pixels(*shape, DEFAULT_TILE, DEFAULT_TILE, DEFAULT_OVERLAP)
    auto = computed_pixels(*shape, *tile, DEFAULT_OVERLAP)
    assert fixed == 88 * 512 * 512  # 1.92 times the photo
    assert auto <= 0.8 * fixed, (tile, auto / fixed)
    # one tile of an image that fits in one, whatever the lanes would like
    assert auto_tile_shape(600, 800, DEFAULT_OVERLAP) == (608, 800)
    assert auto_tile_shape(100, 100, DEFAULT_OVERLAP, lanes=2) == (160, 160)


def test_auto_tile_shape_refuses_an_area_below_the_overlap():
    with pytest.raises(ValueError, match="no tile above the overlap"):
        auto_tile_shape(1000, 1000, 128, max_area=150 * 150)


@pytest.mark.parametrize("lanes", [1, 2])
def test_computed_pixels_counts_the_plans_tiles(lanes):
    from atbsn_edge.tiling import computed_pixels as library_count

    for shape, tile in (((300, 500), (96, 160)), ((64, 120), (64, 64)), ((3000, 4000), (608, 800)),
                        ((100, 100), (512, 512))):
        assert library_count(*shape, *tile, 32, lanes=lanes) == \
            computed_pixels(*shape, *tile, 32, lanes)


def test_preferred_tile_shape_keeps_a_ready_shape_within_the_switch_cost():
    from atbsn_edge.tiling import preferred_tile_shape

    from atbsn_edge.tiling import RESHAPE_PENALTY_CALLS

    best = auto_tile_shape(300, 400, DEFAULT_OVERLAP)
    extra = {side: computed_pixels(300, 400, side, side, DEFAULT_OVERLAP)
             - computed_pixels(300, 400, *best, DEFAULT_OVERLAP) for side in (512, 160)}
    # 512: one tile where 320 x 416 is enough, within two 512 calls; 160: 54 tiles, beyond
    # two 160 calls
    assert 0 < extra[512] <= RESHAPE_PENALTY_CALLS * 512 * 512
    assert extra[160] > RESHAPE_PENALTY_CALLS * 160 * 160
    assert preferred_tile_shape(300, 400, DEFAULT_OVERLAP, ready=[(512, 512)]) == (512, 512)
    assert preferred_tile_shape(300, 400, DEFAULT_OVERLAP, ready=[(160, 160)]) == best
    assert preferred_tile_shape(300, 400, DEFAULT_OVERLAP) == best  # nothing compiled yet


def test_a_tile_off_the_stride_names_the_stride():
    """The message named the pooling grid while the check is against the network's stride."""
    with pytest.raises(ValueError, match="positive multiple of the network stride 32; got 48"):
        TileSpec(48, 64, 0, stride=32, grid=32).validate()
