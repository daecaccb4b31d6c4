"""Teacher targets computed once for ``adapt``: a pool of regions of the frames with the
teacher's outputs at the student's hole sizes, and random crops of them (flipped and rotated
alike) for the student's distillation."""
from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .distillation import MultiTeacher, distillation_loss
from .training import autocast_context

log = logging.getLogger(__name__)

POOL_MIN = 4            # regions computed even when the clock says stop
POOL_MAX = 256          # regions at most (about 3.5 MB each at 256 x 256 with 7 holes)


class PoolSampler:
    """Random crops of pooled regions with their teacher targets, flipped and rotated alike.

    ``sample(batch)`` returns ``N x (3 + 3K) x crop x crop`` float32: the noisy crop, then
    the K teacher outputs, so that :func:`~atbsn_edge.training.optimise` can carry both.
    """

    def __init__(self, inputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                 crop: int, seed: int) -> None:
        if not inputs or len(inputs) != len(targets):
            raise ValueError("give as many target stacks as input regions, at least one")
        self.inputs = list(inputs)      # 3 x s x s float32
        self.targets = list(targets)    # 3K x s x s float16
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        for region in self.inputs:
            if min(region.shape[1:]) < crop:
                raise ValueError(f"a region of {tuple(region.shape[1:])} is smaller than the "
                                 f"crop {crop}")

    def __len__(self) -> int:
        return len(self.inputs)

    def sample(self, batch: int) -> torch.Tensor:
        """``batch`` random crops of the regions with their targets, each flipped and rotated at
        random: ``batch x (3 + 3K) x crop x crop`` float32."""
        crops = []
        for _ in range(batch):
            index = int(self.rng.integers(len(self.inputs)))
            stack = torch.cat((self.inputs[index], self.targets[index].float()), dim=0)
            y = int(self.rng.integers(0, stack.shape[1] - self.crop + 1))
            x = int(self.rng.integers(0, stack.shape[2] - self.crop + 1))
            patch = stack[:, y:y + self.crop, x:x + self.crop]
            patch = torch.rot90(patch, int(self.rng.integers(4)), dims=(1, 2))
            if self.rng.integers(2):
                patch = patch.flip(2)
            crops.append(patch.contiguous())
        return torch.stack(crops)


def pool_capacity(pictures: Sequence[np.ndarray], region: int) -> int:
    """Regions worth pooling: twice the frames' area in regions, within [POOL_MIN, POOL_MAX]."""
    area = sum(p.shape[0] * p.shape[1] for p in pictures)
    return int(min(POOL_MAX, max(POOL_MIN, math.ceil(2 * area / region ** 2))))


@torch.no_grad()
def build_pool(teacher: nn.Module, pictures: Sequence[np.ndarray], holes: Sequence[int], *,
               region: int, crop: int, count: int, seconds: float, device: torch.device,
               bf16: bool, seed: int) -> PoolSampler:
    """Teacher outputs at ``holes`` on random regions of ``pictures`` (at most ``region`` on a
    side, a multiple of 32), until ``count`` regions or ``seconds`` (0: no clock) are reached
    (at least :data:`POOL_MIN` regions). Returns the sampler of crops over them."""
    from .progress import progress_bar

    teachers = MultiTeacher(teacher, holes).to(device).to(memory_format=torch.channels_last)
    rng = np.random.default_rng([seed, 7])
    weights = np.array([p.shape[0] * p.shape[1] for p in pictures], dtype=np.float64)
    weights /= weights.sum()
    inputs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    started = time.perf_counter()
    with progress_bar(total=count, desc="teacher targets", unit="region") as bar:
        while len(inputs) < count:
            if seconds > 0 and len(inputs) >= POOL_MIN and time.perf_counter() - started >= seconds:
                break
            picture = pictures[int(rng.choice(len(pictures), p=weights))]
            h, w = picture.shape[:2]
            side_h = min(region, h // 32 * 32)
            side_w = min(region, w // 32 * 32)
            y = int(rng.integers(0, h - side_h + 1))
            x = int(rng.integers(0, w - side_w + 1))
            noisy = torch.from_numpy(np.ascontiguousarray(
                picture[y:y + side_h, x:x + side_w].transpose(2, 0, 1)))
            batch = noisy[None].to(device).contiguous(memory_format=torch.channels_last)
            with autocast_context(device, bf16):
                outputs = teachers(batch)
            stacked = torch.cat([o.float() for o in outputs], dim=1)[0]
            inputs.append(noisy.clone())
            targets.append(stacked.clamp(-1024, 1024).to(torch.float16).cpu())
            bar.update(1)
    log.info("teacher targets on %d regions in %.1f s", len(inputs), time.perf_counter() - started)
    return PoolSampler(inputs, targets, crop, seed)


def pooled_loss(net: nn.Module, batch: torch.Tensor, target: str = "holes") -> torch.Tensor:
    """The distillation loss (``target``: :data:`atbsn_edge.distillation.TARGETS`) of the
    student's output on ``batch[:, :3]`` against the 3-channel targets that follow it (a
    :class:`PoolSampler` batch)."""
    noisy = batch[:, :3].contiguous(memory_format=torch.channels_last)
    return distillation_loss(net(noisy).float(), batch[:, 3:].float().split(3, dim=1), target)
