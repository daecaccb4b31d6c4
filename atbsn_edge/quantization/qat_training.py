"""Quantization-aware fine-tuning: the int8 form of a network learns to match its float self.

The float network is copied twice: a frozen copy is the teacher, the other is trained through
:class:`~atbsn_edge.quantization.qat_network.QuantizationAware` (fake int8 at every Q/DQ point
of the export) on the L1 distance between the two outputs on noisy training crops, so no
clean image and no blind-spot teacher is needed. The activation steps start at the
least-squared-error step of a few calibration batches and are then learned with the weights.
Training runs in float32 (bf16 autocast would round the fake-quantized values again).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import Distributed
from ..errors import AtbsnError
from ..models.checkpoint import float_network, read_checkpoint_file, save_checkpoint
from ..models.denoiser import Denoiser, pad_reflect_to_multiple
from ..strength import STRENGTH_KEY
from ..training import CropSampler, TrainConfig, TrainState, optimise, validate_pairs
from .offsets import OFFSET_MODES
from .qat_network import (QuantizationAware, output_point, portable_weight_bits,
                          quantization_aware, shared_input_points)

log = logging.getLogger(__name__)


@torch.no_grad()
def initial_ranges(wrapped: QuantizationAware, sampler: CropSampler, batches: int, batch: int,
                   device: torch.device, centred: Sequence[str] = (),
                   only: Sequence[str] | None = None) -> dict[str, float]:
    """Set the activation steps (of every point, or of the ``only`` ones) from ``batches``
    calibration batches, and the offsets of the ``centred`` points (the middle of their
    range); returns the steps set."""
    quantizers = {name: q for name, q in wrapped.quantizers().items()
                  if only is None or name in only}
    wrapped.eval()
    for quantizer in quantizers.values():
        quantizer.observing = True
    try:
        for _ in range(batches):
            wrapped(sampler.sample(batch).to(device))
    finally:
        for quantizer in quantizers.values():
            quantizer.observing = False
    return {name: q.start_from_observations(centred=name in centred)
            for name, q in quantizers.items()}


def quantized_runner(wrapped: QuantizationAware,
                     stride: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> int8-simulated output`` for any H x W (padded like :class:`Denoiser`)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return wrapped(pad_reflect_to_multiple(x, stride))[:, :, :h, :w]
    return run


def _continued(start: Denoiser, denoiser: Denoiser, start_source: str) -> QuantizationAware:
    """A copy of the int8 simulation of ``start``, an int8-ready checkpoint of ``denoiser``'s
    architecture, to train further."""
    ranges = start.metadata.get("int8_ranges")
    if not ranges:
        raise AtbsnError(f"--continue-from {start_source} is not int8-ready: give a checkpoint "
                         "written by python -m atbsn_edge.qat")
    origin, source = start.metadata.get("qat_from_sha256"), denoiser.metadata.get("checkpoint_sha256")
    if origin and source and origin != source:
        raise AtbsnError(f"--continue-from {start_source} was fine-tuned from another float "
                         f"checkpoint ({start.metadata.get('qat_from') or origin[:12]}) than "
                         "--checkpoint: give that one, the teacher of the distillation")
    if start.architecture.name != denoiser.architecture.name:
        raise AtbsnError(f"--continue-from {start_source} is {start.architecture.name}, the "
                         f"float checkpoint {denoiser.architecture.name}: give the float "
                         f"checkpoint it was fine-tuned from "
                         f"({start.metadata.get('qat_from') or 'see its metadata'})")
    return quantization_aware(copy.deepcopy(float_network(start.network)), ranges)


def train_qat(config: TrainConfig, denoiser: Denoiser, images: Sequence[np.ndarray], out: Path,
              *, resume: Path | None = None,
              val_pairs: Sequence[tuple[np.ndarray, np.ndarray]] = (),
              calibration_batches: int = 8, source: str = "",
              description: str = "", weight_bits: int | None = None,
              sums: str = "low", output_offset: str = "after",
              start: Denoiser | None = None, start_source: str = "",
              train: bool = True, shared_steps: bool | None = None) -> Path:
    """Fine-tune ``denoiser`` (a student; AT-BSN with its hole fixed is not supported) for
    int8 into ``out``: its float weights, with the learned ranges as ``int8_ranges``.
    ``weight_bits`` 7 or 8 for every weight; None: :func:`portable_weight_bits` (7 bits except
    the output's weights, and with float sums the image's), which runs alike on CPUs without
    VNNI.
    ``sums``: how each decoder adds its two terms (``quantization.sums.SUMS``: float, or ``low``,
    the transposed convolution's output quantized first, the graph OpenVINO runs fastest).
    ``output_offset`` (:data:`OFFSET_MODES`): when the output convolution's input gets its
    offset, the middle of its range (:func:`output_point`; a constant the export adds back
    exactly, which doubles that map's int8 resolution): ``after`` training (calibrated on the
    trained network, that point alone), ``during`` (from the start) or ``none``.
    ``start``: an int8-ready checkpoint fine-tuned from ``denoiser`` to continue from (its
    weights, steps, widths and sums; ``weight_bits`` and ``sums`` are then its own); an offset
    it already has is kept.
    ``shared_steps``: the points that read the same tensor share one step
    (:func:`shared_input_points`; the export then quantizes each encoder's map before its pool,
    docs/export.md). None: yes for a new run, a resumed run's own form, a ``start``'s own
    form; True with a ``start`` that has none shares them, its owners' steps kept.
    ``train`` False (with ``start``): the offset calibrated and the steps shared, no
    iteration."""
    if output_offset not in OFFSET_MODES:
        raise ValueError(f"output offset {output_offset!r}: valid are {', '.join(OFFSET_MODES)}")
    if not train and (start is None or resume is not None):
        raise AtbsnError("--iterations 0 only calibrates the output offset of a --continue-from "
                         "checkpoint, into a new --out: give --continue-from, and no --resume")
    resumed = read_checkpoint_file(resume) if resume is not None else None
    if resumed is not None:
        _check_resumed_mode(resume, resumed, output_offset)
    if denoiser.metadata.get("int8_ranges"):
        raise ValueError(f"{denoiser.metadata.get('checkpoint', 'this checkpoint')} is already "
                         "int8-ready (its float weights were tuned for int8); fine-tune the float "
                         f"checkpoint it came from ({denoiser.metadata.get('qat_from') or 'qat_from'})")
    if denoiser.architecture.tunable_hole:
        raise ValueError("quantization-aware training takes a student (A, B or C); AT-BSN's "
                         "tunable blind spot is not a fixed graph")
    config = replace(config, bf16=False)
    config.validate()
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    reference = copy.deepcopy(denoiser.network).eval().requires_grad_(False).to(device)
    if start is None:
        if shared_steps is None:  # a resumed run's own; one from before the option: none
            recorded = (resumed or {}).get("metadata") or {}
            shared_steps = resumed is None or recorded.get("qat_shared_steps") == "yes" or bool(
                (recorded.get("int8_ranges") or {}).get("shared"))
        wrapped = quantization_aware(copy.deepcopy(denoiser.network), sums=sums).to(device)
        wrapped.set_weight_bits(portable_weight_bits(wrapped, denoiser.stride)
                                if weight_bits is None else weight_bits)
    else:
        wrapped = _continued(start, denoiser, start_source).to(device)
        if shared_steps is False and wrapped.shared:
            raise AtbsnError(f"--continue-from {start_source} shares the steps of "
                             f"{len(wrapped.shared)} points; --shared-steps no cannot undo "
                             "that: leave the flag out, or start from the float checkpoint")
    newly_shared: list[str] = []
    if shared_steps and not wrapped.shared:  # a new run, or a start whose steps are separate
        shared = shared_input_points(wrapped, denoiser.stride)
        wrapped.share_steps(shared)
        newly_shared = sorted(shared)
    if wrapped.shared:
        log.info("steps shared by the points that read one tensor: %s",
                 ", ".join(f"{a} = {o}" for a, o in sorted(wrapped.shared.items())))
    eight = [point for point, b in wrapped.weight_bits().items() if b == 8]
    log.info("weights: %d at 7 bits, %d at 8 bits (%s)", len(wrapped.weight_bits()) - len(eight),
             len(eight), ", ".join(eight) or "none")
    sampler = CropSampler(images, config.crop, config.seed)
    calibration = CropSampler(images, config.crop, config.seed + 1)
    point = output_point(wrapped, denoiser.stride) if output_offset != "none" else None
    if output_offset != "none" and point is None:
        log.info("no output offset: %s's last convolution is a decoder's upsampling",
                 denoiser.architecture.name)
    centred = [name for name in ([point] if point else [])
               if not wrapped.quantizers()[name].offset]  # a start's offset is kept
    if not train and not centred and not newly_shared:
        why = ("--output-offset none" if output_offset == "none"
               else "it has its output offset already" if point
               else f"{denoiser.architecture.name} takes no output offset")
        shares = ("its steps are shared already" if wrapped.shared
                  else "--shared-steps yes shares the steps of the points that read one tensor")
        raise AtbsnError(f"--continue-from {start_source}: nothing to calibrate or share with "
                         f"--iterations 0 ({why}; {shares})")
    centred_now = centred if output_offset == "during" or not train else []
    if resume is None and (start is None or centred_now):
        steps = initial_ranges(wrapped, calibration, calibration_batches, config.batch, device,
                               centred_now, only=None if start is None else centred_now)
        log.info("int8 ranges started from %d calibration batches (%d points%s)",
                 calibration_batches, len(steps), _offsets_line(wrapped, centred_now))

    def compute_loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = reference(batch)
        return F.l1_loss(net(batch), target)

    inherited = {k: v for k, v in denoiser.metadata.items()
                 if k in ("teacher", "teacher_holes", "description", "iterations")}

    # denoise blends as with the float student (its recommended strength, e.g. auto)
    strength = {k: denoiser.metadata[k] for k in (STRENGTH_KEY,) if k in denoiser.metadata}

    # a continued run records the run it continued (its iterations are counted apart)
    continued = {} if start is None else {"qat_continued": {
        "checkpoint": start_source, "iterations": start.metadata.get("iterations"),
        "history": start.metadata.get("history", []),
        "offsets_added": centred, "steps_shared": newly_shared}}

    # the flags that shaped the int8 form, so that a resume with others is refused (a
    # continued run's come from its --continue-from checkpoint, whatever the flags say)
    shape = {} if start is not None else {
        "qat_weight_bits": "portable" if weight_bits is None else str(weight_bits),
        "qat_sums": sums, "qat_shared_steps": "yes" if shared_steps else "no"}

    def metadata(state: TrainState) -> dict[str, Any]:
        return {"description": description or f"{denoiser.architecture.name} fine-tuned for "
                                              "int8 (quantization-aware) with atbsn-edge",
                "qat_from": source, "qat_from_sha256": denoiser.metadata.get("checkpoint_sha256", ""),
                "float_training": inherited, "iterations": state.step, "config": asdict(config),
                "output_offset": output_offset, **shape, **continued, **strength}

    if not train:
        save_checkpoint(out, wrapped, metadata(TrainState()))
        done = ([f"{', '.join(centred)} calibrated"] if centred else []) + (
            [f"{len(newly_shared)} steps shared"] if newly_shared else [])
        log.info("wrote %s: %s, no training iteration", out, "; ".join(done))
        return out
    # after: calibrated at the end of every run that trains (a resumed one included)
    centred_after = [point] if output_offset == "after" and point else []

    validate = None
    if val_pairs:
        run = quantized_runner(wrapped, denoiser.stride)
        validate = lambda: validate_pairs(run, val_pairs, device)  # noqa: E731
        if resume is None:  # a resumed run's ranges are loaded by the training loop
            with torch.no_grad():
                before = validate_pairs(Denoiser(reference, denoiser.architecture), val_pairs,
                                        device)
                initial = validate_pairs(run, val_pairs, device)
            log.info("validation PSNR: float %.3f dB, int8 before fine-tuning %.3f dB",
                     before, initial)
    optimise(wrapped, compute_loss, config, sampler, out, metadata=metadata, resume=resume,
             validate=validate, desc="int8 fine-tune", bar_by_progress=config.time_limit > 0)
    if centred_after and Distributed.from_environment().is_main:
        training = read_checkpoint_file(out).get("training") or {}
        if resumed is not None and _already_centred(resumed, training):
            # a finished run run again (train_demo_models.sh reruns its steps): nothing was
            # trained, so its offsets stand; calibrating again would move them
            log.info("%s: nothing trained, its output offset kept", out)
            scored = TrainState.from_record(training).scored("output_offset")
            if validate is not None and not scored:
                # stopped during the validation with the offset (Ctrl-C): scored now
                _record_offset_score(wrapped, out, training, metadata, validate)
        else:
            _centre_after_training(wrapped, out, training, centred_after, calibration,
                                   calibration_batches, config.batch, device, metadata, validate)
    return out


def _already_centred(resumed: dict, training: dict) -> bool:
    """Whether a resumed run (checkpoint ``resumed``) trained nothing, ``training`` being the
    training state written, on a checkpoint whose output offsets were already calibrated (its
    metadata's int8 ranges hold them)."""
    step = (resumed.get("training") or {}).get("step")
    ranges = (resumed.get("metadata") or {}).get("int8_ranges") or {}
    return step is not None and step == training.get("step") and bool(ranges.get("offsets"))


def _check_resumed_mode(resume: Path, resumed: dict, output_offset: str) -> None:
    """Refuse to resume a run (``resumed``: the checkpoint ``resume`` read) with another
    ``--output-offset`` than it was started with (checkpoints from before the option: any)."""
    recorded = (resumed.get("metadata") or {}).get("output_offset")
    if recorded not in (None, output_offset):
        raise AtbsnError(f"--resume {resume} was trained with --output-offset {recorded}; "
                         f"resume it with the same, not {output_offset}")


def _centre_after_training(wrapped: QuantizationAware, out: Path, training: dict,
                           points: Sequence[str], sampler: CropSampler, batches: int, batch: int,
                           device: torch.device, metadata,
                           validate: Callable[[], float] | None = None) -> None:
    """Calibrate the offsets (and steps) of ``points`` on the trained network and rewrite
    ``out`` with them, its training state ``training`` (as written there) kept (a
    ``--resume`` continues with the offset).
    With ``validate``, the network's validation PSNR with the offsets is logged and recorded
    as the history's last entry (``"output_offset": true``), so that the run's closing line
    quotes the network as written, not as it was before the offsets."""
    initial_ranges(wrapped, sampler, batches, batch, device, points, only=points)
    log.info("after training, from %d calibration batches%s", batches,
             _offsets_line(wrapped, points))
    state = TrainState.from_record(training)
    save_checkpoint(out, wrapped, metadata(state), training)  # the offsets first, then the score
    if validate is not None:
        _record_offset_score(wrapped, out, training, metadata, validate)


def _record_offset_score(wrapped: QuantizationAware, out: Path, training: dict, metadata,
                         validate: Callable[[], float]) -> None:
    """Validate the network with its output offset and rewrite ``out`` with the score as the
    history's last entry (``"output_offset": true``), ``training`` otherwise kept."""
    state = TrainState.from_record(training)
    psnr = validate()
    log.info("validation PSNR with the output offset: %.3f dB", psnr)
    state.add_score(psnr, output_offset=True)
    save_checkpoint(out, wrapped, metadata(state), {**training, "history": state.history})


def _offsets_line(wrapped: QuantizationAware, points: Sequence[str]) -> str:
    """``; point offset O, step S`` for the log, one per point."""
    quantizers = wrapped.quantizers()
    return "".join(f"; {name} offset {quantizers[name].offset:.2f}, step "
                   f"{quantizers[name].step:.3f}" for name in points)
