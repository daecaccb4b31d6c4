"""The blind spot of AT-BSN: a centred (2k - 1) square, k = (b + 1) // 2, for every hole b."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atbsn_edge.models import ATBSN  # noqa: E402
from atbsn_edge.training import init_weights  # noqa: E402
from conftest import textured_image  # noqa: E402

PERTURBATION = 80.0
UNCHANGED = 1e-3   # float rounding of convolution algorithms, on outputs of ~100
CHANGED = 1e-2     # a pixel the network does see moves the output far more than this


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    model = ATBSN()
    init_weights(model)
    return model.eval()


def output_at(model, image, y, x, hole):
    with torch.no_grad():
        out = model(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], hole_size=hole)
    return out[0, :, y, x].numpy()


@pytest.mark.parametrize("shape", [(64, 64), (64, 96)], ids=["square", "non-square"])
@pytest.mark.parametrize("hole", [1, 3, 5, 9])
def test_blind_spot_is_the_centred_square(network, shape, hole):
    image = textured_image(*shape, seed=hole)
    k = (hole + 1) // 2
    for y, x in [(32, 32), (20, 41), (k, shape[1] - 1 - k)]:
        before = output_at(network, image, y, x, hole)
        inside = image.copy()
        inside[y - k + 1:y + k, x - k + 1:x + k] += PERTURBATION
        assert np.abs(output_at(network, inside, y, x, hole) - before).max() < UNCHANGED
        for dy, dx in [(-k, 0), (k, 0), (0, -k), (0, k), (k, k)]:
            outside = image.copy()
            outside[y + dy, x + dx] += PERTURBATION
            change = np.abs(output_at(network, outside, y, x, hole) - before).max()
            assert change > CHANGED, f"pixel ({dy},{dx}) from the centre is not seen at hole {hole}"


def test_hole_zero_sees_the_pixel_itself(network):
    image = textured_image(64, 64)
    before = output_at(network, image, 30, 30, 0)
    image[30, 30] += PERTURBATION
    assert np.abs(output_at(network, image, 30, 30, 0) - before).max() > CHANGED


def _reference_atbsn(model: ATBSN, x: torch.Tensor, hole: int) -> torch.Tensor:
    """The network written literally from docs/atbsn-networks.md, one orientation at a time."""
    k = (hole + 1) // 2
    rotations = [lambda t: t, lambda t: t.transpose(2, 3).flip(3), lambda t: t.flip(2).flip(3),
                 lambda t: t.transpose(2, 3).flip(2)]
    inverses = [lambda t: t, lambda t: t.transpose(2, 3).flip(2), lambda t: t.flip(2).flip(3),
                lambda t: t.transpose(2, 3).flip(3)]
    branches = []
    for rotate, unrotate in zip(rotations, inverses):
        f = model.unet(rotate(x))
        if k:
            f = torch.cat([torch.zeros_like(f[:, :, :k]), f[:, :, :f.shape[2] - k]], dim=2)
        branches.append(unrotate(f))
    act = torch.nn.functional.leaky_relu
    h = act(model.nin_A(torch.cat(branches, dim=1)), 0.1)
    return model.nin_C(act(model.nin_B(h), 0.1))


@pytest.mark.parametrize("hole", [0, 3, 9])
def test_non_square_equals_per_orientation_definition(network, hole):
    x = torch.from_numpy(textured_image(64, 128).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        ours = network(x, hole_size=hole)
        reference = _reference_atbsn(network, x, hole)
    assert float((ours - reference).norm() / reference.norm()) < 1e-5


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True])
def test_invalid_hole_sizes_are_rejected(network, bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        network(torch.zeros(1, 3, 32, 32), hole_size=bad)
