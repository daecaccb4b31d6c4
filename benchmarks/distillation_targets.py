"""How good are the distillation targets? The teacher's candidate targets scored against clean.

The student can only be as good as what it is distilled towards. This scores, on the Nam
pairs (the noisy halves are training images of the demo models, so these are exactly the
targets the student sees there; the clean halves only score), the candidates of issue 14:

- the teacher at each hole, and the per-pixel mean and median over sets of holes (the
  student's loss, a sum of L1 distances to several holes, is minimised by their median);
- the teacher's geometric self-ensemble: the 8 flips and rotations of the input, each output
  transformed back, averaged per hole (``x8``);
- AP-BSN's random-replacement refinement (R3): a fraction ``--r3-rate`` of the pixels of a
  denoised image replaced by the noisy ones, run through the teacher at a small hole, averaged
  over ``--r3-passes`` draws; the replaced pixels break the noise's spatial correlation that a
  small hole would otherwise copy;
- for reference the noisy input, the bundled student C (and its own x8 ensemble) and OpenCV's
  NL-means at ``--nlm-h``.

The teacher runs through OpenVINO at f32 (all holes from one pass: they share the blind unet):
13.5 s per 512 x 512 pass against 26 s in PyTorch fp32 on a 2-core AMD EPYC with AVX2 only.
Teacher outputs are cached (float16) under ``--cache`` so a second run only re-scores; each
cache file is named after the image (its name, size and a hash of its pixels), the teacher
(a hash of its checkpoint) and the transforms, so other data, another teacher or another
``--transforms`` never reads another run's outputs.

    python benchmarks/distillation_targets.py --data ../shared/data/real/nam_pairs \\
        --cache runs/targets --json runs/targets/scores.json
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch

from atbsn_edge.arguments import non_negative_int, positive_int
from atbsn_edge.atomic import atomic_path
from atbsn_edge.cli import new_parser
from atbsn_edge.errors import AtbsnError
from atbsn_edge.hashing import file_sha256
from atbsn_edge.imageio import read_image
from atbsn_edge.jsonsafe import write_json
from atbsn_edge.metrics import psnr, ssim
from atbsn_edge.output_paths import check_report_path

log = logging.getLogger(__name__)

HOLES = (0, 1, 3, 5, 7, 9, 11)


def dihedral(image: np.ndarray, index: int) -> np.ndarray:
    """The ``index``-th (0..7) flip/rotation of an H x W x C image."""
    out = np.rot90(image, index % 4, axes=(0, 1))
    return out[:, ::-1] if index >= 4 else out


def undo_dihedral(image: np.ndarray, index: int) -> np.ndarray:
    """Inverse of :func:`dihedral`."""
    out = image[:, ::-1] if index >= 4 else image
    return np.rot90(out, -(index % 4), axes=(0, 1))


class OpenVINOTeacher:
    """The AT-BSN's outputs at ``holes`` (one pass) compiled by OpenVINO for one square size."""

    def __init__(self, checkpoint: str, holes: tuple[int, ...], size: int, work: Path,
                 precision: str = "f32", threads: int = 2) -> None:
        import openvino as ov

        from atbsn_edge.models.checkpoint import load_checkpoint

        self.holes = holes
        self.tag = checkpoint_tag(checkpoint)   # names its outputs in the caches
        teacher = load_checkpoint(checkpoint)
        stack = StackedTeacher(teacher.network, holes).eval()
        onnx_path = work / f"teacher_{self.tag}_{size}.onnx"
        if not onnx_path.exists():
            work.mkdir(parents=True, exist_ok=True)
            with atomic_path(onnx_path) as tmp, torch.no_grad():
                torch.onnx.export(stack, (torch.rand(1, 3, size, size) * 255,), str(tmp),
                                  dynamo=False, opset_version=17, input_names=["noisy"],
                                  output_names=["holes"])
        core = ov.Core()
        self.compiled = core.compile_model(str(onnx_path), "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self._check(stack, size)

    def _check(self, stack, size: int) -> None:
        """OpenVINO against PyTorch once, on a random image."""
        x = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.float32)
        got = self(x)
        with torch.no_grad():
            want = stack(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy()
        want = want.reshape(len(self.holes), 3, size, size).transpose(0, 2, 3, 1)
        err = float(np.abs(got - want).max())
        log.info("OpenVINO teacher vs PyTorch: max abs difference %.4f (0..255 scale)", err)
        if err > 0.5:
            raise SystemExit(f"OpenVINO teacher disagrees with PyTorch by {err:.3f}")

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x 3 float32 -> K x H x W x 3 float32 (one per hole)."""
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None].astype(np.float32)
        out = self.request.infer({0: x})[self.compiled.output(0)]
        k = len(self.holes)
        return out[0].reshape(k, 3, *rgb.shape[:2]).transpose(0, 2, 3, 1)


class StackedTeacher(torch.nn.Module):
    """The AT-BSN's outputs at several holes concatenated on channels (one ONNX output), the
    blind unet run once. Through :meth:`ATBSN.head`, not ``MultiTeacher``'s in-place sums,
    which the ONNX tracer turns into gigabytes of constant indices."""

    def __init__(self, teacher: torch.nn.Module, holes: tuple[int, ...]) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.holes = holes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.teacher.features(x)
        return torch.cat([self.teacher.head(features, h) for h in self.holes], dim=1)


def checkpoint_tag(path: str | Path) -> str:
    """A short hash of a checkpoint file: the part of a cache key that names the network."""
    return file_sha256(path)[:12]


def image_key(prefix: str, stem: str, image: np.ndarray) -> str:
    """A cache key of one image: ``PREFIX_STEM_HxW_HASH``, the hash of its pixels (files of the
    same name in another folder, or of another size, get other keys)."""
    digest = hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest()
    return f"{prefix}_{stem}_{image.shape[0]}x{image.shape[1]}_{digest[:12]}"


def cached(path: Path, compute) -> np.ndarray:
    """``compute()`` stored as float16 at ``path`` (npy), or the stored array."""
    if path.exists():
        return np.load(path).astype(np.float32)
    value = compute()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to the name
            np.save(f, value.astype(np.float16))
    return value.astype(np.float32)


def teacher_outputs(teacher: OpenVINOTeacher, noisy: np.ndarray, cache: Path, key: str,
                    transforms: int) -> np.ndarray:
    """T x K x H x W x 3: the teacher's outputs at its K holes on the first ``transforms``
    flips/rotations of ``noisy``, each transformed back; cached as
    ``cache/KEY_teacherTAG_tN.npy`` (``key`` names the image, see :func:`image_key`; TAG the
    teacher's checkpoint, ``teacher.tag``)."""
    return np.stack([cached(cache / f"{key}_teacher{teacher.tag}_t{t}.npy", lambda t=t: np.stack(
        [undo_dihedral(o, t) for o in teacher(np.ascontiguousarray(dihedral(noisy, t)))]))
        for t in range(transforms)])


def score(estimate: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    return psnr(estimate, clean), ssim(np.clip(estimate, 0, 255), clean)


def nl_means(noisy: np.ndarray, h: float) -> np.ndarray:
    """OpenCV's fastNlMeansDenoisingColored (h = hColor, 7 / 21 windows) of an RGB float image."""
    import cv2

    bgr = np.clip(noisy[:, :, ::-1] + 0.5, 0, 255).astype(np.uint8)
    return cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)[:, :, ::-1].astype(np.float32)


def transforms_arg(text: str) -> int:
    """argparse type: the self-ensemble size, 1 to 8 flips/rotations."""
    value = positive_int(text)
    if value > 8:
        raise argparse.ArgumentTypeError(f"expected 1 to 8 (the flips and rotations of a "
                                         f"square), got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("distillation_targets.py", __doc__)
    parser.add_argument("--data", default="../shared/data/real/nam_pairs",
                        help="folder of NN_noisy.png + NN_clean.png pairs")
    parser.add_argument("--teacher", default="atbsn_edge/assets/demo_atbsn.pt")
    parser.add_argument("--student", default="atbsn_edge/assets/demo_student_c.pt")
    parser.add_argument("--cache", default="runs/targets")
    parser.add_argument("--transforms", type=transforms_arg, default=8,
                        help="self-ensemble size, 1..8")
    parser.add_argument("--r3-passes", type=positive_int, default=8)
    parser.add_argument("--r3-rate", type=float, default=0.16)
    parser.add_argument("--r3-holes", default="1,3,5", help="teacher holes R3 scores")
    parser.add_argument("--nlm-h", type=float, default=4.0)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--limit", type=non_negative_int, default=0, help="first N pairs only (0: all)")
    parser.add_argument("--json", help="write every score here")
    args = parser.parse_args(argv)
    if args.json:
        check_report_path(args.json, "--json")  # before the scoring, not after it
    try:
        r3_holes = [int(h) for h in args.r3_holes.split(",")]
    except ValueError:
        r3_holes = []
    if not r3_holes or any(h not in HOLES for h in r3_holes):
        raise AtbsnError(f"--r3-holes {args.r3_holes}: give comma-separated holes of "
                         f"{','.join(map(str, HOLES))} (the teacher's), e.g. 1,3,5")
    for flag, path in (("--teacher", args.teacher), ("--student", args.student)):
        if not Path(path).is_file():
            raise AtbsnError(f"{flag} {path}: no such file; give a checkpoint file")

    from atbsn_edge.progress import progress_bar

    from atbsn_edge.adaptation_report import run_denoiser
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.profiling.machine import cpu_info

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    pairs = sorted(Path(args.data).glob("*_noisy.png"))
    if args.limit:
        pairs = pairs[:args.limit]
    if not pairs:
        raise AtbsnError(f"--data {args.data}: no *_noisy.png in it; give a folder of "
                         "NN_noisy.png + NN_clean.png pairs")
    first = read_image(pairs[0]).rgb
    if first.shape[0] != first.shape[1]:
        raise AtbsnError(f"{pairs[0]}: {first.shape[1]}x{first.shape[0]}, but the study needs "
                         "square pairs of one size; give a folder of such pairs")
    teacher = OpenVINOTeacher(args.teacher, HOLES, first.shape[0], cache, threads=args.threads)
    student = load_checkpoint(args.student)
    student_tag = checkpoint_tag(args.student)
    index_of = {h: i for i, h in enumerate(HOLES)}
    rows: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, estimate: np.ndarray, clean: np.ndarray) -> None:
        rows.setdefault(name, []).append(score(estimate, clean))

    started = time.perf_counter()
    for pair in progress_bar(pairs, desc="pairs", unit="pair"):
        stem = pair.name[:-len("_noisy.png")]
        noisy = read_image(pair).rgb
        clean = read_image(pair.with_name(f"{stem}_clean.png")).rgb
        if noisy.shape[0] != noisy.shape[1] or noisy.shape != first.shape:
            raise AtbsnError(f"{pair}: {noisy.shape[1]}x{noisy.shape[0]}, but the study needs "
                             f"square pairs of one size ({first.shape[1]}x{first.shape[0]}, as "
                             f"{pairs[0].name}); give a folder of such pairs")
        add("noisy input", noisy, clean)
        add(f"NL-means h={args.nlm_h:g}", nl_means(noisy, args.nlm_h), clean)

        key = image_key("nam", stem, noisy)
        outputs = teacher_outputs(teacher, noisy, cache, key, args.transforms)
        plain = outputs[0]
        ensemble = outputs.mean(axis=0)                # K x H x W x 3
        for hole in HOLES:
            add(f"teacher hole {hole}", plain[index_of[hole]], clean)
            add(f"teacher hole {hole} x{args.transforms}", ensemble[index_of[hole]], clean)
        sets = {"0-11": HOLES, "1-11": HOLES[1:], "3-9": (3, 5, 7, 9), "5-9": (5, 7, 9),
                "5-7": (5, 7)}
        medians = {}
        for label, holes in sets.items():
            idx = [index_of[h] for h in holes]
            add(f"mean of holes {label}", plain[idx].mean(axis=0), clean)
            add(f"median of holes {label}", np.median(plain[idx], axis=0), clean)
            medians[label] = np.median(ensemble[idx], axis=0)
            add(f"median of holes {label}, x{args.transforms} each", medians[label], clean)
            add(f"mean of holes {label}, x{args.transforms} each", ensemble[idx].mean(axis=0), clean)
        add(f"median of holes 0-11 over all x{args.transforms}",
            np.median(outputs.reshape(-1, *outputs.shape[2:]), axis=0), clean)

        student_out = run_denoiser(student, noisy, torch.device("cpu"))
        add("student C", student_out, clean)
        student_x8 = cached(cache / f"{key}_student{student_tag}_x8.npy", lambda: np.mean([undo_dihedral(
            run_denoiser(student, np.ascontiguousarray(dihedral(noisy, t)), torch.device("cpu")), t)
            for t in range(8)], axis=0))
        add("student C x8", student_x8, clean)

        # the bases' cache names: the median depends on the transforms, the student's output on
        # the student; the refinement itself on the teacher (in every name)
        bases = {f"median 3-9 x{args.transforms}": (medians["3-9"], f"median_3-9_x{args.transforms}"),
                 "student C": (student_out, f"student{student_tag}")}
        for base_name, (base, base_key) in bases.items():
            def r3(base=base) -> np.ndarray:
                rng = np.random.default_rng([int(stem) if stem.isdigit() else 0, 3])
                total = np.zeros((len(HOLES),) + noisy.shape, np.float32)
                for _ in range(args.r3_passes):
                    mask = rng.random(noisy.shape) < args.r3_rate
                    total += teacher(np.where(mask, noisy, base).astype(np.float32))
                return total / args.r3_passes
            refined = cached(cache / (f"{key}_teacher{teacher.tag}_r3_{base_key}_{args.r3_passes}_"
                                      f"{args.r3_rate:g}.npy"), r3)
            for hole in r3_holes:
                add(f"R3 on {base_name}, hole {hole}", refined[index_of[hole]], clean)

    seconds = time.perf_counter() - started
    cpu = cpu_info()
    base = np.mean([p for p, _ in rows["noisy input"]])
    nlm = np.mean([p for p, _ in rows[f"NL-means h={args.nlm_h:g}"]])
    print(f"\n{len(pairs)} pairs from {args.data}; teacher {args.teacher} through OpenVINO f32; "
          f"CPU: {cpu.get('model')} ({cpu.get('cores')} cores used: {args.threads}); "
          f"{seconds:.0f} s")
    print("| target | mean PSNR | vs noisy | vs NL-means | mean SSIM | worse than noisy on |")
    print("|---|---|---|---|---|---|")
    noisy_scores = [p for p, _ in rows["noisy input"]]
    for name, values in sorted(rows.items(), key=lambda kv: -np.mean([p for p, _ in kv[1]])):
        p = [v[0] for v in values]
        s = [v[1] for v in values]
        worse = sum(a < b for a, b in zip(p, noisy_scores))
        print(f"| {name} | {np.mean(p):.3f} dB | {np.mean(p) - base:+.3f} | "
              f"{np.mean(p) - nlm:+.3f} | {np.mean(s):.4f} | {worse} of {len(p)} |")
    if args.json:
        write_json(args.json, {
            "pairs": [p.name for p in pairs], "cpu": cpu, "seconds": seconds,
            "scores": {k: [{"psnr": a, "ssim": b} for a, b in v] for k, v in rows.items()}})


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
