"""Self-supervised AT-BSN training: crops of noisy images, L1 to the input at the training hole.

The loop is written for cheap CPU iterations (channels-last, bf16 autocast where the CPU has
it) and runs unchanged on CUDA. Checkpoints are written atomically in the project's format,
with the optimizer state, so that an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .distributed import slowest, start_distributed
from .errors import AtbsnError, CheckpointError, first_line
from .metrics import psnr
from .models.atbsn import ATBSN, hole_to_shift
from .models.checkpoint import read_checkpoint_file, save_checkpoint
from .output_paths import same_file
from .sources import expand_sources, load_pictures

log = logging.getLogger(__name__)

LOG_EVERY = 10  # iterations between loss readings (each one waits for the GPU)


@dataclass
class TrainConfig:
    """Every knob of a training run; saved into the checkpoint so that resume is faithful."""

    iterations: int = 6000
    batch: int = 4
    crop: int = 128
    lr: float = 3e-4
    lr_min: float = 1e-6
    train_hole: int = 9
    infer_hole: int = 3
    seed: int = 0
    checkpoint_every: int = 100
    validate_every: int = 500
    device: str = "cpu"
    bf16: bool = True
    threads: int = 0
    time_limit: float = 0.0
    warmup: float = 0.0
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Refuse settings a run cannot use: a hole size out of range (``ValueError``), or a
        crop, batch, iteration count, time limit or warm-up out of range (:class:`AtbsnError`)."""
        hole_to_shift(self.train_hole)
        hole_to_shift(self.infer_hole)
        if self.crop % 32 or self.crop < 128:
            raise AtbsnError(f"--crop must be a multiple of 32 and at least 128 (a 64-pixel "
                             f"crop teaches the network the borders of small images); got {self.crop}")
        if self.batch < 1 or self.iterations < 1:
            raise AtbsnError("--batch and --iterations must be positive")
        if self.time_limit < 0:
            raise AtbsnError(f"--time-limit must be a number of seconds >= 0; got {self.time_limit}")
        if not 0 <= self.warmup < 1:
            raise AtbsnError(f"the learning-rate warm-up must be a fraction in [0, 1); got {self.warmup}")

    def progress(self, step: int, elapsed: float) -> float:
        """How far through the run (0..1): iterations done, or the clock under ``time_limit``."""
        done = step / self.iterations
        if self.time_limit > 0:
            done = max(done, elapsed / self.time_limit)
        return min(done, 1.0)


def load_noisy_images(items: Sequence[str | Path], min_side: int,
                      frames_per_video: int = 32) -> list[np.ndarray]:
    """Training pictures as HxWx3 float32 from image files, folders, globs and videos
    (``frames_per_video`` evenly spaced frames each); unreadable files are skipped with a
    warning naming them, pictures smaller than the crop with another."""
    if frames_per_video < 1:
        raise AtbsnError(f"--frames-per-video must be at least 1; got {frames_per_video}")
    paths = expand_sources(items)
    images = []
    for name, rgb in load_pictures(paths, frames_per_video):
        if min(rgb.shape[:2]) < min_side:
            log.warning("skipping %s: %dx%d is smaller than the %d-pixel crop", name,
                        rgb.shape[1], rgb.shape[0], min_side)
            continue
        images.append(rgb)
    if not images:
        raise AtbsnError(f"no usable training picture among {len(paths)} file(s) "
                         f"(each must be readable and at least {min_side} pixels on its short side)")
    return images


class CropSampler:
    """Random crops with random flips and 90-degree rotations, as float32 NCHW batches."""

    def __init__(self, images: Sequence[np.ndarray], crop: int, seed: int) -> None:
        self.images = list(images)
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        weights = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = weights / weights.sum()

    def sample(self, batch: int) -> torch.Tensor:
        """``batch`` random crops (images drawn in proportion to their area), each flipped and
        rotated at random: ``batch x 3 x crop x crop`` float32."""
        crops = []
        for _ in range(batch):
            image = self.images[self.rng.choice(len(self.images), p=self.weights)]
            y = self.rng.integers(0, image.shape[0] - self.crop + 1)
            x = self.rng.integers(0, image.shape[1] - self.crop + 1)
            patch = image[y:y + self.crop, x:x + self.crop]
            patch = np.rot90(patch, self.rng.integers(4))
            if self.rng.integers(2):
                patch = patch[:, ::-1]
            crops.append(np.ascontiguousarray(patch.transpose(2, 0, 1)))
        return torch.from_numpy(np.stack(crops))


def init_weights(model: nn.Module) -> None:
    """He-normal convolutions for LeakyReLU(0.1), zero biases: activations keep the input scale."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@torch.no_grad()
def init_neighbour_average(model: ATBSN, random_scale: float = 0.1) -> None:
    """Start AT-BSN as the mean of the four pixels just outside its blind spot.

    One path per colour channel is set to carry the input through ``dec1`` (the row tap of
    both blind convolutions, so each orientation sees the pixel ``k`` rows away after the
    shift), and the head averages the four orientations. Everything else is He-initialised and
    scaled by ``random_scale``. On the Nam pairs this starts within a few dB of the noisy input
    at hole 3, where default initialisation starts near 0 and needs thousands of iterations
    to reach the input's scale. The weights' layout is unchanged.
    """
    init_weights(model)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.mul_(random_scale)
    width = model.nin_C.in_channels  # decoder channels (96)
    for conv, source in ((model.unet.dec1.conv1.conv, width), (model.unet.dec1.conv2.conv, 0)):
        conv.weight[0:3].zero_()
        for c in range(3):
            conv.weight[c, source + c, 2, 1] = 1.0  # tap on the output's own row
    for j in range(4):
        model.nin_A.weight[width * j:width * j + 3].zero_()
        for c in range(3):
            model.nin_A.weight[width * j + c, width * j + c] = 1.0
    model.nin_B.weight[0:3].zero_()
    model.nin_C.weight.zero_()
    model.nin_C.bias.zero_()
    for c in range(3):
        for j in range(4):
            model.nin_B.weight[c, width * j + c] = 0.25
        model.nin_C.weight[c, c] = 1.0


def blind_spot_loss(network: nn.Module, batch: torch.Tensor, hole: int) -> torch.Tensor:
    """AT-BSN's self-supervised training loss: mean L1 of its output at ``hole`` to its input."""
    return F.l1_loss(network(batch, hole_size=hole).float(), batch)


def cosine_lr(progress: float, lr: float, lr_min: float, warmup: float = 0.0) -> float:
    """Cosine decay from ``lr`` to ``lr_min`` at progress 1, after a linear rise from
    ``lr_min`` over the first ``warmup`` of the progress (0: none, the decay starts at 0)."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return lr_min + (lr - lr_min) * progress / warmup
    rest = (progress - warmup) / (1.0 - warmup)
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * rest))


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (``avx512_bf16``, ``amx_bf16``, Arm ``bf16``).

    Elsewhere PyTorch emulates bf16, and autocast is several times slower than float32: a
    student C training step (4 x 128 x 128) took 16.5 s under bf16 autocast against 2.5-2.9 s in
    float32 on an AMD EPYC with AVX2 only (2026-12-02, alternating, 2 threads). Where it is
    native, autocast wins: on an AMD EPYC with ``avx512_bf16`` the same step took 0.25 s against
    0.56 s, an AT-BSN step 2.11 s against 5.29 s (2026-12-02, alternating, 2 threads).
    """
    from .profiling.machine import cpu_info

    flags = set(cpu_info()["flags_that_matter"])
    native = bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    if not native:
        log.info("bf16 autocast off: this CPU has no native bf16 (avx512_bf16, amx_bf16 or "
                 "Arm bf16), where it is emulated and slower than float32")
    return native


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast where the device computes bf16 natively (CUDA; a CPU with
    :func:`cpu_has_native_bf16`), otherwise a no-op context."""
    if enabled and (device.type == "cuda" or (
            torch.backends.mkldnn.is_available() and cpu_has_native_bf16())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def validate_pairs(denoise: Callable[[torch.Tensor], torch.Tensor],
                   pairs: Sequence[tuple[np.ndarray, np.ndarray]], device: torch.device) -> float:
    """Mean PSNR against clean references of ``denoise`` on whole images, float32."""
    scores = []
    for noisy, clean in pairs:
        x = torch.from_numpy(noisy.transpose(2, 0, 1).copy())[None].to(device)
        out = denoise(x)[0].float().cpu().numpy().transpose(1, 2, 0)
        scores.append(psnr(out, clean))
    return float(np.mean(scores))


@dataclass
class TrainState:
    """What a checkpoint carries to resume: step, training seconds and the loss / validation history."""

    step: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)

    @classmethod
    def from_record(cls, training: dict) -> "TrainState":
        """The state a checkpoint's ``training`` record holds (a new run's where it has none)."""
        return cls(step=int(training.get("step", 0)), elapsed=float(training.get("elapsed", 0.0)),
                   history=list(training.get("history", [])))

    def scored(self, mark: str = "val_psnr") -> bool:
        """Whether the history holds a record of this step with ``mark`` set: its validation
        score, or (``"output_offset"``) the score qat records with the output offset."""
        return any(isinstance(r, dict) and r.get("step") == self.step and mark in r
                   and r[mark] is not False for r in self.history)

    def add_score(self, psnr: float, **marks: object) -> None:
        """Append this step's validation score ``psnr`` to the history, with ``marks`` (qat's
        ``output_offset=True``)."""
        self.history.append({"step": self.step, "seconds": round(self.elapsed, 1),
                             "val_psnr": round(psnr, 4), **marks})


#: the least memory a CPU training step holds per pixel of its crops: half the smallest
#: measured (``distill`` 7.3 KB, ``qat`` 8.1, ``train`` 10.7 a pixel, batches 1-8 of 128 x 128
#: crops, PyTorch 2.13 on the AMD EPYC), so that only a batch that cannot fit is refused
MIN_BYTES_PER_CROP_PIXEL = 3_500


def available_memory_bytes() -> int | None:
    """The memory this process may still take (Linux: ``MemAvailable``, and a cgroup v2
    limit where one is set); None where it cannot be read."""
    from .profiling.machine import meminfo_bytes

    available = meminfo_bytes("MemAvailable")
    if available is None:
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit.isdigit():
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_batch_fits(config: TrainConfig, available: int | None = None) -> None:
    """Refuse, in one line, a CPU run whose crops cannot fit in memory even at
    :data:`MIN_BYTES_PER_CROP_PIXEL` (``train --batch 20000`` was killed by the kernel, which
    no program can catch); ``available`` defaults to :func:`available_memory_bytes`."""
    if not config.device.startswith("cpu"):
        return
    available = available_memory_bytes() if available is None else available
    need = config.batch * config.crop * config.crop * MIN_BYTES_PER_CROP_PIXEL
    if available is not None and need > available:
        raise AtbsnError(f"--batch {config.batch} of {config.crop} x {config.crop} crops needs at "
                         f"least {need / 1e9:.1f} GB to train on this CPU, and {available / 1e9:.1f}"
                         f" GB is available: lower --batch or --crop")


def _interrupt_on_sigterm() -> Callable[[], None]:
    """Treat SIGTERM (a scheduler's stop, ``kill``) like Ctrl-C: save a checkpoint, then stop.
    Returns the function that restores the previous handler (call it when the loop ends)."""
    from .cli import sigterm_as_interrupt

    context = sigterm_as_interrupt()
    context.__enter__()
    return lambda: context.__exit__(None, None, None)


# What a run trains towards, as its checkpoint's metadata records it, and the flag that sets
# each: a resumed run must keep them (a flag left out would otherwise fall back to its default)
OBJECTIVE_FLAGS = {"train_hole": "--train-hole", "infer_hole": "--infer-hole",
                   "teacher_holes": "--holes", "distillation_target": "--target",
                   "output_offset": "--output-offset", "qat_from_sha256": "--checkpoint",
                   "qat_weight_bits": "--weight-bits", "qat_sums": "--sums",
                   "qat_shared_steps": "--shared-steps"}

# The settings (TrainConfig fields, and the teacher in the checkpoint's metadata) a resumed
# run may change, and their flags: the run goes on with the new value, and says so, since a
# flag left out takes its default (a forgotten --time-limit turns a 20-minute run into 6000
# iterations) and a changed teacher is only right when it was trained further on purpose
CONTINUED_SETTINGS = {"iterations": "--iterations", "time_limit": "--time-limit",
                      "batch": "--batch", "crop": "--crop", "lr": "--lr", "lr_min": "--lr-min",
                      "bf16": "--no-bf16"}


def _check_same_objective(stored: dict, current: dict, resume: Path) -> None:
    """Refuse to continue the run of ``resume`` with other objective settings
    (:data:`OBJECTIVE_FLAGS`) than it was trained with, naming the flag and the value that
    continues it."""
    for key, flag in OBJECTIVE_FLAGS.items():
        if key in stored and key in current and stored[key] != current[key]:
            old, new = stored[key], current[key]
            if isinstance(old, list):
                old, new = ",".join(map(str, old)), ",".join(map(str, new))
            if key == "qat_from_sha256":
                raise CheckpointError(f"--resume {resume} was fine-tuned from another --checkpoint "
                                      f"than this run's; give the float checkpoint it came from")
            raise CheckpointError(f"--resume {resume} was trained with {flag} {old}, this run "
                                  f"has {flag} {new} (a flag left out takes its default): give "
                                  f"{flag} {old} to continue it, or start a new run")


def _setting_text(key: str, value: object) -> str:
    """A stored or given setting as its flag shows it."""
    if key == "bf16":
        return "bf16 autocast " + ("on" if value else "off (--no-bf16)")
    if key == "time_limit" and not value:
        return "no --time-limit"
    return f"{CONTINUED_SETTINGS[key]} {value:g}" if isinstance(value, float) else \
        f"{CONTINUED_SETTINGS[key]} {value}"


def changed_settings(stored: dict, current: dict, config: TrainConfig) -> list[str]:
    """What a resumed run changes of the run it continues (:data:`CONTINUED_SETTINGS`), as
    ``"--lr 0.0003 -> --lr 0.0001"``: ``stored`` and ``current`` are the checkpoint's metadata
    and this run's, ``config`` this run's settings. Checkpoints that predate a record: nothing."""
    changes = []
    old_config = stored.get("config") if isinstance(stored.get("config"), dict) else {}
    new_config = asdict(config)
    for key in CONTINUED_SETTINGS:
        if key in old_config and old_config[key] != new_config[key]:
            changes.append(f"{_setting_text(key, old_config[key])} -> "
                           f"{_setting_text(key, new_config[key])}")
    old_teacher, new_teacher = stored.get("teacher_sha256"), current.get("teacher_sha256")
    if old_teacher and new_teacher and old_teacher != new_teacher:
        changes.append(f"the teacher {stored.get('teacher') or old_teacher[:12]} -> "
                       f"--teacher {current.get('teacher') or new_teacher[:12]} (another "
                       "checkpoint: the student learns from it from here on)")
    return changes


def _restore(model: nn.Module, payload: dict, resume: Path, desc: str) -> None:
    """Load a checkpoint to resume into ``model``, or say in one line why it cannot be: it
    must be one this toolkit wrote of the same network, a run's ``--out`` (resumed where it
    stopped) or weights alone such as a bundled demo model (a fresh optimizer)."""
    why = None
    if "state_dict" not in payload:
        why = "it is a plain state dict, not a checkpoint this toolkit wrote"
    else:
        restore = getattr(model, "restore_checkpoint", None)  # a wrapper saving its inner network
        try:
            restore(payload) if restore is not None else model.load_state_dict(payload["state_dict"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            first = re.sub(r"^Error\(s\) in loading state_dict for (\w+):?$",
                           r"its weights do not fit \1", first_line(exc))
            why = f"it holds another network or another kind of run ({first})"
    if why is not None:
        raise CheckpointError(f"--resume {resume}: {why}; --resume takes a checkpoint of the "
                              f"same network that this toolkit wrote: an interrupted {desc} "
                              "run's --out, or weights such as a bundled demo model's")


def optimise(model: nn.Module, compute_loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
             config: TrainConfig, sampler: CropSampler, out: Path, *,
             metadata: Callable[[TrainState], dict],
             resume: Path | None = None,
             validate: Callable[[], float] | None = None,
             desc: str = "train", bar_by_progress: bool = False) -> Path:
    """The loop shared by training and distillation: Adam, cosine decay, bf16 autocast,
    channels-last, atomic checkpoints with optimizer and sampler state, resume, progress bar,
    and DistributedDataParallel when started by ``torchrun`` (each process draws its own
    crops; rank 0 validates and writes checkpoints). The run ends when
    :meth:`TrainConfig.progress` reaches 1 (iterations, or ``time_limit`` seconds of training
    counted across resumes), and the learning rate follows that progress.

    ``compute_loss(net, batch)`` runs under autocast with ``net`` the (possibly DDP-wrapped)
    model and returns a scalar; ``validate()`` returns a PSNR logged every
    ``config.validate_every`` iterations. ``bar_by_progress`` makes the progress bar count
    percent of :meth:`TrainConfig.progress` (the clock under a time limit) instead of
    iterations, whose total means nothing when the clock ends the run.
    """
    from .progress import progress_bar

    check_batch_fits(config)
    job, device = start_distributed(config.device)
    state = TrainState()
    optimizer_state = None
    if resume is not None:
        payload = read_checkpoint_file(resume)
        training = payload.get("training") or {}
        continued = isinstance(payload.get("training"), dict)  # weights alone: a new run
        stored, current = payload.get("metadata") or {}, metadata(TrainState())
        if continued:
            _check_same_objective(stored, current, resume)  # before the weights: --sums
        _restore(model, payload, resume, desc)
        changes = changed_settings(stored, current, config) if continued else []
        if changes:  # only for a checkpoint this run can continue
            log.warning("--resume %s goes on with other settings than its run had (a flag "
                        "left out takes its default): %s", resume, "; ".join(changes))
        state = TrainState.from_record(training)
        optimizer_state = training.get("optimizer")
        if "sampler" in training:
            sampler.rng.bit_generator.state = training["sampler"]
        if config.progress(state.step, state.elapsed) >= 1:
            limit = (f"--iterations {config.iterations}" if state.step >= config.iterations
                     else f"--time-limit {config.time_limit:g} s ({state.elapsed:.1f} s trained)")
            # not an error: a resumable script reruns its finished steps (train_demo_models.sh)
            log.warning("--resume %s is at iteration %d, already the end of a run of %s: "
                        "nothing to train (raise it to continue)", resume, state.step, limit)
        log.info("resuming from %s at iteration %d", resume, state.step)
    if job.world_size > 1:  # every rank its own crops, reproducibly
        sampler.rng = np.random.default_rng([config.seed, job.rank, state.step])
    model.to(device).to(memory_format=torch.channels_last).train()
    net: nn.Module = model
    if job.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError) as exc:  # the optimizer of another kind of run
            raise AtbsnError(f"--resume {resume}: its optimizer state does not fit this run "
                             f"({exc}); it was written by another command (--resume takes "
                             f"an interrupted run of this one), or give it as the starting "
                             f"weights instead") from None

    def checkpoint() -> None:
        if not job.is_main:
            return
        training = {"step": state.step, "elapsed": round(state.elapsed, 2),
                    "optimizer": optimizer.state_dict(),
                    "sampler": sampler.rng.bit_generator.state, "history": state.history}
        save_checkpoint(out, model, metadata(state), training)

    def score() -> float:
        """This step's validation PSNR (in eval mode), logged and rounded for the history."""
        model.eval()
        try:
            psnr = round(validate(), 4)
        finally:
            model.train()
        log.info("iteration %d: validation PSNR %.3f dB", state.step, psnr)
        return psnr

    if bar_by_progress:
        bar = progress_bar(total=100.0,
                           initial=round(100 * config.progress(state.step, state.elapsed), 1),
                           desc=desc, unit="%", disable=not job.is_main,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                      "[{elapsed}<{remaining}{postfix}]")
    else:
        bar = progress_bar(total=config.iterations, initial=state.step, desc=desc, unit="it",
                           disable=not job.is_main)
    restore_sigterm = _interrupt_on_sigterm()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shape: pick the fastest kernels once
    started, start_step, start_elapsed = time.perf_counter(), state.step, state.elapsed
    try:
        if (resume is not None and validate is not None and job.is_main
                and config.progress(state.step, state.elapsed) >= 1.0 and not state.scored()):
            # a run stopped during its last validation (Ctrl-C): the score it ends with
            log.info("validating iteration %d, the end of the run, which has no score yet",
                     state.step)
            state.add_score(score())
            checkpoint()
        while config.progress(state.step, state.elapsed) < 1.0:
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(config.progress(state.step, state.elapsed),
                                        config.lr, config.lr_min, config.warmup)
            batch = sampler.sample(config.batch).to(device, non_blocking=True)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, config.bf16):
                loss = compute_loss(net, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            seconds = time.perf_counter() - started
            state.elapsed = start_elapsed + seconds
            if config.time_limit > 0 and job.world_size > 1:
                state.elapsed = slowest(state.elapsed, device)  # every rank stops together
            finished = config.progress(state.step, state.elapsed) >= 1.0
            if bar_by_progress:
                bar.update(round(100 * config.progress(state.step, state.elapsed), 1) - bar.n)
            else:
                bar.update(1)
            validating = validate is not None and job.is_main and (
                state.step % config.validate_every == 0 or finished)
            saving = state.step % config.checkpoint_every == 0
            if state.step % LOG_EVERY and not validating and not finished:
                if saving:
                    checkpoint()  # on its own step, not only where the loss is read
                continue  # reading the loss waits for the GPU: do it every LOG_EVERY steps
            value = loss.item()
            if not math.isfinite(value):
                raise AtbsnError(f"loss became {value} at iteration {state.step}; "
                                 "lower --lr or resume from the last checkpoint")
            postfix = {"loss": f"{value:.3f}", "it_s": f"{(state.step - start_step) / seconds:.2f}"}
            if bar_by_progress:
                postfix["it"] = state.step
            bar.set_postfix(postfix)
            record = {"step": state.step, "loss": round(value, 5), "seconds": round(state.elapsed, 1)}
            if validating:
                record["val_psnr"] = score()
                if config.time_limit > 0 and job.world_size == 1 and not finished:
                    # the validation's own time counts now: a validation that passes the limit
                    # ends the run here, not after one more iteration and validation
                    state.elapsed = start_elapsed + (time.perf_counter() - started)
                    finished = config.progress(state.step, state.elapsed) >= 1.0
            state.history.append(record)
            if saving or finished:  # finished: also by the validation's own time
                checkpoint()
    except KeyboardInterrupt:
        log.warning("interrupted at iteration %d; saving a checkpoint to %s", state.step, out)
        checkpoint()
        raise
    else:
        if state.step == start_step and resume is not None and not same_file(out, resume):
            checkpoint()  # a finished run given another --out: it is written there as it is
    finally:
        bar.close()
        restore_sigterm()
        if job.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return out


def run_summary(out: Path) -> str:
    """``out`` and what the run that wrote it recorded, for the last line of a training
    command: ``atbsn.pt (6000 iterations; validation PSNR at iteration 6000: 31.234 dB, best
    31.300 dB at iteration 5500)``. The validation part only where the run validated; the path
    alone where the checkpoint holds no training record."""
    try:
        training = read_checkpoint_file(out).get("training")
    except AtbsnError as exc:  # written a moment ago: not expected, and no reason to fail
        log.debug("cannot read back %s: %s", out, exc)
        training = None
    if not isinstance(training, dict):
        return str(out)
    records = [r for r in training.get("history") or []
               if isinstance(r, dict) and r.get("val_psnr") is not None and "step" in r]
    # qat --output-offset after: the score with the offset replaces its step's score without
    replaced = {r["step"] for r in records if r.get("output_offset")}
    scores = [(int(r["step"]), float(r["val_psnr"]), bool(r.get("output_offset")))
              for r in records if r.get("output_offset") or r["step"] not in replaced]
    steps = int(training.get("step", 0))
    parts = [f"{steps} iteration{'' if steps == 1 else 's'}"]
    if scores:
        last_step, last, last_offset = scores[-1]
        best_step, best, best_offset = max(reversed(scores), key=lambda score: score[1])
        # scores from before the offset was calibrated are of another network: said so
        before = ", without the output offset" if last_offset and not best_offset else ""
        best_text = (f", best {best:.3f} dB at iteration {best_step}{before}" if best > last
                     else "")
        parts.append(f"validation PSNR at iteration {last_step}: {last:.3f} dB{best_text}")
    return f"{out} ({'; '.join(parts)})"


def train(config: TrainConfig, images: Sequence[np.ndarray], out: Path, *,
          resume: Path | None = None,
          val_pairs: Sequence[tuple[np.ndarray, np.ndarray]] = (),
          description: str = "") -> Path:
    """Train AT-BSN on noisy ``images`` (L1 to the input at the training hole) into ``out``."""
    config.validate()
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    model = ATBSN(hole_size=config.infer_hole)
    init_neighbour_average(model)
    sampler = CropSampler(images, config.crop, config.seed)

    def compute_loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return blind_spot_loss(net, batch, config.train_hole)

    def metadata(state: TrainState) -> dict:
        return {"train_hole": config.train_hole, "infer_hole": config.infer_hole,
                "description": description or "AT-BSN trained with atbsn-edge",
                "iterations": state.step, "config": asdict(config)}

    validate = None
    if val_pairs:
        from .models.denoiser import Denoiser
        from .models.registry import get_architecture

        wrapper = Denoiser(model, get_architecture("atbsn"))
        validate = lambda: validate_pairs(  # noqa: E731
            lambda x: wrapper(x, hole_size=config.infer_hole), val_pairs, device)
    return optimise(model, compute_loss, config, sampler, out, metadata=metadata,
                    resume=resume, validate=validate)
