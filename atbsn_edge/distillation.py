"""Blind-spot multi-teacher distillation: one student learns from AT-BSN at several holes.

The teacher's four-orientation blind unet does not depend on the hole size, so it runs once
per batch (``ATBSN.features``), and so do the rotations back to upright (``ATBSN.upright``)
and the head's first and largest 1x1 layer, applied to each branch before shifting
(``ATBSN.project``: a 1x1 convolution commutes with a shift). Only the shifted sum and the two
small 1x1 layers repeat per hole size. The authors' code runs the whole AT-BSN once per teacher.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models.atbsn import ATBSN, hole_to_shift
from .models.registry import get_architecture
from .training import CropSampler, TrainConfig, TrainState, init_weights, optimise, validate_pairs

log = logging.getLogger(__name__)

PUBLISHED_HOLES = (0, 1, 3, 5, 7, 9, 11)
STUDENTS = ("student_a", "student_b", "student_c")
#: how the student's loss combines the teacher's outputs at several holes: ``holes``, the
#: paper's sum of L1 distances to each (minimised by their per-pixel median), or ``mean``, the
#: L1 distance to their mean (docs/quality.md measures both)
TARGETS = ("holes", "mean")


def _unknown_target(target: str) -> ValueError:
    return ValueError(f"distillation target {target!r}: valid are {', '.join(TARGETS)}")


def distillation_loss(output: torch.Tensor, targets: Sequence[torch.Tensor],
                      target: str = "holes") -> torch.Tensor:
    """The student's ``output`` against the teacher's ``targets`` (one per hole), combined as
    ``target`` says (:data:`TARGETS`)."""
    if target == "holes":
        return sum(F.l1_loss(output, t.float()) for t in targets)
    if target == "mean":
        return F.l1_loss(output, torch.stack([t.float() for t in targets]).mean(dim=0))
    raise _unknown_target(target)


class MultiTeacher(nn.Module):
    """Frozen AT-BSN outputs at several hole sizes, sharing one pass of the blind unet."""

    def __init__(self, teacher: ATBSN, holes: Sequence[int]) -> None:
        super().__init__()
        if not holes:
            raise ValueError("give at least one hole size")
        for hole in holes:
            hole_to_shift(hole)
        self.teacher = teacher.eval().requires_grad_(False)
        self.holes = tuple(holes)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        projection = self.teacher.project(self.teacher.upright(self.teacher.features(x)))
        return [self.teacher.head_from_projection(projection, hole) for hole in self.holes]

    @torch.no_grad()
    def naive(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The authors' way, for comparison: the whole AT-BSN once per hole size."""
        return [self.teacher(x, hole_size=hole) for hole in self.holes]


@torch.no_grad()
def init_identity_student(student: nn.Module, random_scale: float = 0.1) -> None:
    """Start a student as (nearly) the identity: the image skip carried through its last stage.

    The last decoder stage (``dec1``) concatenates the input image last; its first convolution
    copies those three channels (centre tap) and the following ones pass them on, so the
    student starts at the noisy input's PSNR instead of at random outputs. Everything else is
    He-initialised and scaled by ``random_scale``.
    """
    init_weights(student)
    for module in student.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.mul_(random_scale)
    stage = student.unet.dec1 if hasattr(student, "unet") else student.dec1
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    for index, conv in enumerate(convs):
        source = conv.in_channels - 3 if index == 0 else 0
        conv.weight[0:3].zero_()
        for c in range(3):
            conv.weight[c, source + c, 1, 1] = 1.0
        if conv.bias is not None:
            conv.bias[0:3].zero_()


def distill(config: TrainConfig, teacher: ATBSN, student_name: str, holes: Sequence[int],
            images: Sequence[np.ndarray], out: Path, *, resume: Path | None = None,
            val_pairs: Sequence[tuple[np.ndarray, np.ndarray]] = (),
            teacher_source: str = "", teacher_sha256: str = "", description: str = "",
            target: str = "holes") -> Path:
    """Train ``student_name`` on the teacher's outputs at ``holes``, combined as ``target``
    says (:func:`distillation_loss`). ``teacher_source`` and ``teacher_sha256`` (its file and
    hash) are recorded, so that a resume from another teacher is reported."""
    if student_name not in STUDENTS:
        raise ValueError(f"student must be one of {', '.join(STUDENTS)}, got {student_name!r}")
    if target not in TARGETS:  # before the teacher and the data are touched
        raise _unknown_target(target)
    config.validate()
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    student = get_architecture(student_name).build()
    init_identity_student(student)
    teachers = MultiTeacher(teacher, holes).to(device).to(memory_format=torch.channels_last)
    sampler = CropSampler(images, config.crop, config.seed)

    def compute_loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return distillation_loss(net(batch).float(), teachers(batch), target)

    def metadata(state: TrainState) -> dict:
        return {"description": description or f"{student_name} distilled with atbsn-edge",
                "teacher": teacher_source, "teacher_sha256": teacher_sha256,
                "teacher_holes": list(holes),
                "distillation_target": target,
                "iterations": state.step, "config": asdict(config)}

    validate = None
    if val_pairs:
        from .models.denoiser import Denoiser

        wrapper = Denoiser(student, get_architecture(student_name))
        validate = lambda: validate_pairs(wrapper, val_pairs, device)  # noqa: E731
    return optimise(student, compute_loss, config, sampler, out, metadata=metadata,
                    resume=resume, validate=validate, desc=f"distill {student_name}")
