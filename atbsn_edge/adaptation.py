"""Adapting a teacher and its student to one camera from that camera's own noisy frames.

Self-supervised throughout: the blind-spot teacher (AT-BSN) is fine-tuned with its own
training loss (L1 to the noisy input at its training hole), then the student is fine-tuned
by distillation from the adapted teacher at several hole sizes (the sum of L1 distances, or
the distance to their mean, as :mod:`atbsn_edge.distillation`), both starting from the given
weights. No clean image is used.

On a CPU the teacher is the expensive part: one multi-hole teacher pass over a 4 x 128 x 128
batch costs about ten student training iterations. With ``targets="pool"`` (the default) the
teacher's outputs are computed once on a pool of regions of the frames (a third of the
student's time), and the student then trains on random crops, flips and rotations of those
regions and of their targets: many more student iterations for the same time. With
``targets="online"`` every batch gets fresh teacher outputs, as ``distill`` does.

The report printed before and after is :mod:`atbsn_edge.adaptation_report`; the pool of
teacher targets is :mod:`atbsn_edge.adaptation_pool`.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .adaptation_pool import build_pool, pool_capacity, pooled_loss
from .adaptation_report import no_reference_report, report_crops
from .distillation import PUBLISHED_HOLES, MultiTeacher, distillation_loss
from .distillation import TARGETS as DISTILL_TARGETS
from .errors import AtbsnError
from .models.atbsn import hole_to_shift
from .models.checkpoint import save_checkpoint
from .models.denoiser import Denoiser
from .strength import STRENGTH_KEY
from .sources import expand_sources, load_pictures
from .training import CropSampler, TrainConfig, TrainState, blind_spot_loss, optimise

log = logging.getLogger(__name__)

MIN_SIDE = 128          # the smallest crop training accepts (TrainConfig.validate)
POOL_SHARE = 1 / 3      # of the student's time, spent computing the pool's teacher targets
#: batches of fixed crops of the frames on which the teacher's own blind-spot loss is measured
#: before and after its fine-tune; the fine-tune is kept only if that loss went down
TEACHER_CHECK_BATCHES = 2
POOL_AUTO_UNTIMED = 64  # regions without a time limit, when --pool-regions is not given
NO_LIMIT = 10 ** 9      # iteration cap that never binds: the clock ends the phase
TARGETS = ("pool", "online")


@dataclass
class AdaptConfig:
    """Every knob of an adaptation run; saved in the adapted checkpoint's metadata.

    With ``time_limit`` > 0 the teacher gets ``time_limit * teacher_share`` seconds and the
    student (its targets included) the rest; ``teacher_iterations`` / ``student_iterations``
    then cap the phases (0: no cap). With ``time_limit`` 0 the iteration counts decide
    (``teacher_iterations`` 0 skips the teacher phase).
    """

    time_limit: float = 300.0
    teacher_share: float = 0.5
    teacher_iterations: int = 0
    student_iterations: int = 0
    targets: str = "pool"
    pool_regions: int = 0
    region: int = 256
    holes: list = field(default_factory=lambda: list(PUBLISHED_HOLES))
    distill_target: str = "holes"
    batch: int = 4
    crop: int = 128
    teacher_lr: float = 1e-4
    student_lr: float = 1e-4
    lr_min: float = 1e-6
    warmup: float = 0.0
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    threads: int = 0
    report_frames: int = 8
    report_crop: int = 512

    def validate(self) -> None:
        """Raise :class:`AtbsnError` naming the first unusable value and the valid ones."""
        if self.time_limit < 0:
            raise AtbsnError(f"--time-limit must be a number of seconds >= 0; got {self.time_limit}")
        if not 0 <= self.teacher_share < 1:
            raise AtbsnError(f"--teacher-share must be in [0, 1) (the student needs some of the "
                             f"time); got {self.teacher_share}")
        if self.teacher_iterations < 0 or self.student_iterations < 0:
            raise AtbsnError("--teacher-iterations and --student-iterations must be >= 0")
        if self.time_limit == 0 and self.student_iterations < 1:
            raise AtbsnError("without --time-limit give --student-iterations N (and "
                             "--teacher-iterations N to fine-tune the teacher too)")
        if self.targets not in TARGETS:
            raise AtbsnError(f"--targets must be one of {', '.join(TARGETS)}; got {self.targets!r}")
        if self.distill_target not in DISTILL_TARGETS:
            raise AtbsnError(f"--distill-target must be one of {', '.join(DISTILL_TARGETS)}; "
                             f"got {self.distill_target!r}")
        if self.crop % 32 or self.crop < MIN_SIDE:
            raise AtbsnError(f"--crop must be a multiple of 32 and at least {MIN_SIDE}; got {self.crop}")
        if self.region % 32 or self.region < self.crop:
            raise AtbsnError(f"--region must be a multiple of 32 and at least --crop "
                             f"({self.crop}); got {self.region}")
        if self.batch < 1 or self.pool_regions < 0 or self.report_frames < 0:
            raise AtbsnError("--batch must be positive, --pool-regions and --report-frames >= 0")
        if self.report_crop < 32:
            raise AtbsnError(f"--report-crop must be at least 32; got {self.report_crop}")
        if not self.holes:
            raise AtbsnError("--holes needs at least one hole size")
        for hole in self.holes:
            hole_to_shift(hole)

    @property
    def teacher_seconds(self) -> float:
        """The teacher phase's clock budget (0: not clock-limited)."""
        return self.time_limit * self.teacher_share

    def runs_teacher(self) -> bool:
        """Whether the teacher is fine-tuned at all."""
        if self.time_limit > 0:
            return self.teacher_share > 0
        return self.teacher_iterations > 0


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------

def load_camera_frames(items: Sequence[str | Path], min_side: int = MIN_SIDE,
                       frames_per_video: int = 32) -> tuple[list[Path], list[tuple[str, np.ndarray]]]:
    """The files ``items`` name (images, folders, globs, videos) and their pictures as
    ``(name, HxWx3 float32)``. Unreadable files are skipped with a warning; a picture smaller
    than ``min_side`` on its short side is refused (:class:`AtbsnError` naming it)."""
    if frames_per_video < 1:
        raise AtbsnError(f"--frames-per-video must be at least 1; got {frames_per_video}")
    paths = expand_sources(items)
    pictures = load_pictures(paths, frames_per_video)
    small = [(name, rgb.shape) for name, rgb in pictures if min(rgb.shape[:2]) < min_side]
    if small:
        shown = ", ".join(f"{name} ({shape[1]}x{shape[0]})" for name, shape in small[:3])
        more = f" and {len(small) - 3} more" if len(small) > 3 else ""
        raise AtbsnError(f"{shown}{more}: smaller than {min_side} pixels on the short side; "
                         f"adaptation trains on crops of at least {min_side} pixels (smaller "
                         "crops teach the network image borders), so give full-size frames of "
                         "the camera or leave these out")
    if not pictures:
        raise AtbsnError(f"no readable picture among {len(paths)} file(s); give the camera's "
                         "noisy images or videos")
    return paths, pictures


# --------------------------------------------------------------------------------------------
# the two phases
# --------------------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    """What one phase did: iterations and seconds of optimisation (targets: regions, seconds)."""

    iterations: int = 0
    seconds: float = 0.0
    regions: int = 0
    target_seconds: float = 0.0
    check: dict = field(default_factory=dict)


def _phase_config(config: AdaptConfig, *, iterations: int, seconds: float, lr: float,
                  train_hole: int = 9, infer_hole: int = 3) -> TrainConfig:
    cap = iterations if iterations > 0 else NO_LIMIT
    return TrainConfig(iterations=cap, batch=config.batch, crop=config.crop, lr=lr,
                       lr_min=min(config.lr_min, lr), train_hole=train_hole,
                       infer_hole=infer_hole, seed=config.seed, checkpoint_every=NO_LIMIT,
                       validate_every=NO_LIMIT, device=config.device, bf16=config.bf16,
                       threads=config.threads, time_limit=seconds, warmup=config.warmup)


def _run(model: nn.Module, loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
         train: TrainConfig, sampler, work: Path, desc: str) -> PhaseResult:
    """:func:`optimise` into a scratch checkpoint under ``work``; its step and seconds."""
    final: dict = {}

    def metadata(state: TrainState) -> dict:
        final.update(step=state.step, elapsed=state.elapsed)
        return {"description": f"atbsn-edge adapt scratch ({desc})"}

    optimise(model, loss, train, sampler, work / f"{desc.replace(' ', '_')}.pt",
             metadata=metadata, desc=desc, bar_by_progress=train.time_limit > 0)
    return PhaseResult(iterations=int(final.get("step", 0)),
                       seconds=float(final.get("elapsed", 0.0)))


def _infer_hole(teacher: Denoiser) -> int:
    hole = teacher.default_hole
    return 3 if hole is None else int(hole)


def mean_blind_spot_loss(network: nn.Module, crops: torch.Tensor, hole: int, batch: int,
                         device: torch.device) -> float:
    """:func:`~atbsn_edge.training.blind_spot_loss` over all of ``crops``, in float32 without
    gradients, ``batch`` crops per pass."""
    network.eval()
    total = 0.0
    with torch.no_grad():
        for chunk in crops.split(batch):
            chunk = chunk.to(device).contiguous(memory_format=torch.channels_last)
            total += float(blind_spot_loss(network, chunk, hole)) * chunk.numel()
    return total / crops.numel()


def fine_tune_teacher(teacher: Denoiser, pictures: Sequence[np.ndarray], config: AdaptConfig,
                      work: Path) -> PhaseResult:
    """Fine-tune the AT-BSN in ``teacher`` in place with its training loss (L1 to the input at
    its training hole) on crops of ``pictures``, from its current weights. The same loss on
    :data:`TEACHER_CHECK_BATCHES` batches of fixed crops, before and after, decides: if the
    fine-tune did not lower it, the teacher's given weights are restored
    (``result.check["kept"]`` False). The check's time comes out of the teacher's clock and
    counts in ``result.seconds``."""
    started = time.perf_counter()
    device = torch.device(config.device)
    train_hole = int(teacher.metadata.get("train_hole", 9))
    crops = TEACHER_CHECK_BATCHES * config.batch
    check_crops = CropSampler(pictures, config.crop, config.seed + 1).sample(crops)
    given = {k: v.detach().clone() for k, v in teacher.network.state_dict().items()}
    loss_before = mean_blind_spot_loss(teacher.network, check_crops, train_hole, config.batch,
                                       device)
    seconds = config.teacher_seconds
    if seconds > 0:     # the check before and the one after come out of the teacher's clock
        seconds = max(seconds - 2 * (time.perf_counter() - started), 1.0)
    train = _phase_config(config, iterations=config.teacher_iterations, seconds=seconds,
                          lr=config.teacher_lr, train_hole=train_hole,
                          infer_hole=_infer_hole(teacher))
    train.validate()
    sampler = CropSampler(pictures, config.crop, config.seed)

    def loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return blind_spot_loss(net, batch, train_hole)

    result = _run(teacher.network, loss, train, sampler, work, "adapt teacher")
    loss_after = mean_blind_spot_loss(teacher.network, check_crops, train_hole, config.batch,
                                       device)
    kept = loss_after < loss_before
    if not kept:
        teacher.network.load_state_dict(given)
        log.warning("the teacher's fine-tune (%d iterations) raised its blind-spot loss on %d "
                    "fixed crops of the frames from %.4f to %.4f: distilling from the given "
                    "teacher instead (more --time-limit or a GPU gives the fine-tune more "
                    "iterations)", result.iterations, crops, loss_before, loss_after)
    else:
        log.info("teacher blind-spot loss on %d fixed crops: %.4f -> %.4f", crops, loss_before,
                 loss_after)
    teacher.network.eval()
    result.check = {"crops": crops, "hole": train_hole,
                    "loss_before": round(loss_before, 5), "loss_after": round(loss_after, 5),
                    "kept": kept}
    result.seconds = time.perf_counter() - started
    return result


def teacher_used(config: AdaptConfig, teacher_result: PhaseResult) -> str:
    """Which teacher the student is distilled from, for the log: the adapted one, or the
    given one (no teacher phase, or a fine-tune that raised its loss and was undone)."""
    if not config.runs_teacher():
        return "the given teacher (no teacher phase)"
    if teacher_result.check.get("kept", True):
        return "the adapted teacher"
    return "the given teacher, whose fine-tune was undone"


def distill_student(student: Denoiser, teacher: Denoiser, pictures: Sequence[np.ndarray],
                    config: AdaptConfig, seconds: float, work: Path) -> PhaseResult:
    """Fine-tune ``student`` in place by distillation from ``teacher`` at ``config.holes``,
    within ``seconds`` (0: ``config.student_iterations``), the pool's targets included."""
    device = torch.device(config.device)
    teacher.network.eval()
    result = PhaseResult()
    if config.targets == "pool":
        started = time.perf_counter()
        if config.pool_regions:
            count = config.pool_regions
        elif seconds > 0:
            count = pool_capacity(pictures, config.region)
        else:
            count = min(POOL_AUTO_UNTIMED, pool_capacity(pictures, config.region))
        sampler = build_pool(teacher.network, pictures, config.holes, region=config.region,
                             crop=config.crop, count=count,
                             seconds=seconds * POOL_SHARE if not config.pool_regions else 0.0,
                             device=device, bf16=config.bf16, seed=config.seed)
        result.regions = len(sampler)
        result.target_seconds = time.perf_counter() - started
        if seconds > 0:
            seconds = max(seconds - result.target_seconds, 1.0)
        def loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return pooled_loss(net, batch, config.distill_target)
    else:
        sampler = CropSampler(pictures, config.crop, config.seed)
        teachers = MultiTeacher(teacher.network, config.holes).to(device).to(
            memory_format=torch.channels_last)

        def loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return distillation_loss(net(batch).float(), teachers(batch), config.distill_target)

    train = _phase_config(config, iterations=config.student_iterations, seconds=seconds,
                          lr=config.student_lr)
    train.validate()
    run = _run(student.network, loss, train, sampler, work, "adapt student")
    student.network.eval()
    result.iterations, result.seconds = run.iterations, run.seconds
    return result


# --------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------

@dataclass
class AdaptResult:
    """What :func:`adapt` wrote and measured."""

    out: Path
    teacher_out: Path | None
    teacher: PhaseResult
    student: PhaseResult
    seconds: float
    before: dict
    after: dict


def _source_of(model: Denoiser) -> dict:
    meta = model.metadata
    return {"path": str(meta.get("checkpoint", "")), "sha256": meta.get("checkpoint_sha256", ""),
            "architecture": model.architecture.name,
            "description": str(meta.get("description", meta.get("source", "")))}


def adapt(config: AdaptConfig, teacher: Denoiser, student: Denoiser,
          pictures: Sequence[tuple[str, np.ndarray]], out: Path, *,
          teacher_out: Path | None = None, sources: Sequence[str] = (),
          description: str = "", on_report: Callable[[str, dict], None] | None = None
          ) -> AdaptResult:
    """Adapt ``teacher`` and ``student`` (both modified in place) to ``pictures`` and write the
    student to ``out`` (and the teacher to ``teacher_out``), atomically. ``on_report(label,
    report)`` is called with the no-reference report before and after. The phases' scratch
    checkpoints live in a hidden folder beside ``out``, removed at the end; an interrupted
    run writes nothing."""
    config.validate()
    if teacher.architecture.name != "atbsn":
        raise AtbsnError(f"the teacher is {teacher.architecture.name}, not AT-BSN")
    if not student.architecture.name.startswith("student"):
        raise AtbsnError(f"the student is {student.architecture.name}, not a student (A, B or C)")
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    frames = [rgb for _, rgb in pictures]
    crops = report_crops(pictures, config.report_frames, config.report_crop)
    student_source, teacher_source = _source_of(student), _source_of(teacher)
    student.network.to(device)
    teacher.network.to(device)
    before = no_reference_report(student, crops, device)
    if on_report is not None and before:
        on_report("before", before)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.adapt-", dir=out.parent))
    started = time.perf_counter()
    try:
        teacher_result = PhaseResult()
        if config.runs_teacher():
            log.info("fine-tuning the teacher on %d pictures (%s)", len(frames),
                     f"{config.teacher_seconds:.0f} s" if config.time_limit
                     else f"{config.teacher_iterations} iterations")
            teacher_result = fine_tune_teacher(teacher, frames, config, work)
        student_seconds = 0.0
        if config.time_limit > 0:
            student_seconds = max(config.time_limit - teacher_result.seconds, 1.0)
        log.info("distilling the student from %s (%s targets)",
                 teacher_used(config, teacher_result), config.targets)
        student_result = distill_student(student, teacher, frames, config, student_seconds, work)
    except KeyboardInterrupt:
        log.warning("adapt keeps nothing of an interrupted run (its phase checkpoints are "
                    "scratch, removed now; %s is not written): run it again", out)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    after = no_reference_report(student, crops, device)
    if on_report is not None and after:
        on_report("after", after)
    files = [name for name, _ in pictures]
    adaptation = {
        "sources": [str(s) for s in sources], "pictures": len(pictures),
        "files": files[:100], "files_total": len(files),
        "seconds": {"total": round(seconds, 2), "teacher": round(teacher_result.seconds, 2),
                    "targets": round(student_result.target_seconds, 2),
                    "student": round(student_result.seconds, 2)},
        "iterations": {"teacher": teacher_result.iterations, "student": student_result.iterations},
        "pool_regions": student_result.regions,
        "teacher_check": teacher_result.check,
        "config": asdict(config), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    student_meta = {"description": description or f"{student.architecture.name} adapted to a "
                                                   "camera's noisy frames with atbsn-edge adapt",
                    "teacher_holes": list(config.holes),
                    "distillation_target": config.distill_target,
                    "iterations": student_result.iterations,
                    "adapted_from": {"student": student_source, "teacher": teacher_source},
                    "adaptation": {**adaptation, "report": {"before": before, "after": after}}}
    if STRENGTH_KEY in student.metadata:   # denoise keeps blending as with the given one
        student_meta[STRENGTH_KEY] = student.metadata[STRENGTH_KEY]
    save_checkpoint(out, student.network, student_meta)
    if teacher_out is not None:
        teacher_meta = {"description": f"AT-BSN adapted to a camera's noisy frames with "
                                       f"atbsn-edge adapt{': ' + description if description else ''}",
                        "train_hole": int(teacher.metadata.get("train_hole", 9)),
                        "infer_hole": _infer_hole(teacher),
                        "iterations": teacher_result.iterations,
                        "adapted_from": {"teacher": teacher_source}, "adaptation": adaptation}
        save_checkpoint(teacher_out, teacher.network, teacher_meta)
    return AdaptResult(out=out, teacher_out=teacher_out, teacher=teacher_result,
                       student=student_result, seconds=seconds, before=before, after=after)
