"""Folding the decoders' upsampling into their first convolution changes no output."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from atbsn_edge.models.atbsn import FixedHole  # noqa: E402
from atbsn_edge.models.complexity import count_macs  # noqa: E402
from atbsn_edge.models.registry import ARCHITECTURES  # noqa: E402
from atbsn_edge.models.upsample_fusion import fuse_upsampling  # noqa: E402

FUSED_REL_L2 = 1e-5  # same arithmetic regrouped: float32 rounding only
DECODERS = {"atbsn": 5, "student_a": 2, "student_b": 2, "student_c": 5}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_fused_network_computes_the_same(name):
    network = ARCHITECTURES[name].build().eval()
    for parameter in network.parameters():  # weights that let every tap matter
        parameter.data.normal_(0.0, 0.15)
    module = FixedHole(network, 3) if name == "atbsn" else network
    fused, count = fuse_upsampling(module)
    assert count == DECODERS[name]
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.inference_mode():
        want, got = module(x), fused(x)
    assert got.shape == want.shape
    assert float((got - want).norm() / want.norm()) < FUSED_REL_L2
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in module.modules()), \
        "fusion must leave the original network untouched"


def test_fused_student_c_needs_two_thirds_of_the_multiply_adds():
    network = ARCHITECTURES["student_c"].build().eval()
    fused, _ = fuse_upsampling(network)
    x = torch.zeros(1, 3, 512, 512)
    assert count_macs(network, x) / 1e9 == pytest.approx(48.7, abs=0.05)  # the paper's figure
    assert count_macs(fused, x) / 1e9 == pytest.approx(32.6, abs=0.05)
