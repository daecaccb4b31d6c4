"""Issue 14, part 1: which distillation targets make a better student? Measured by training.

``distillation_targets.py`` scores the teacher's candidate targets against clean, but the
student is not bounded by its targets (on the Nam pairs the bundled student beats every one
of them: it cannot copy the teacher's errors). So each recipe here continues the distillation
of the bundled student C from its weights, for the same ``--iterations``, the same seed (the
same crops, flips and rotations) and the same learning rate, on the demo models' own training
images (the DND crops and the Nam noisy halves, never a clean image), and the result is scored
on the 12 Nam pairs: per image, mean, against the noisy input and NL-means.

Recipes (targets computed once per image by the OpenVINO teacher of ``distillation_targets``,
cached as float16; the loss is the sum of L1 distances to the recipe's targets):

- ``plain``: the teacher at holes 0,1,3,5,7,9,11 (the bundled student's own objective, so this
  row is "longer distillation");
- ``x8``: the same holes, each the mean of the teacher's 8 flips and rotations;
- ``mean-1-11``: one target, the mean over holes 1-11 of the plain teacher outputs (what
  ``python -m atbsn_edge.distill --target mean`` computes online);
- ``x8-mean-1-11``: one target, the mean over holes 1-11 of the x8 outputs (the best target
  ``distillation_targets.py`` found: the sum of L1 distances to several holes is minimised by
  their median, and the mean of the holes scores better than their median; hole 0 hurts);
- ``x8-median``: one target, the median over the 7 holes of the x8 outputs.

    python benchmarks/distillation_finetune.py --iterations 600 --cache runs/targets \\
        --out runs/finetune --json runs/finetune/scores.json
"""
from __future__ import annotations

import copy
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distillation_targets import (HOLES, OpenVINOTeacher, image_key, nl_means,  # noqa: E402
                                  score, teacher_outputs)

from atbsn_edge.adaptation import NO_LIMIT  # noqa: E402
from atbsn_edge.adaptation_pool import PoolSampler, pooled_loss  # noqa: E402
from atbsn_edge.adaptation_report import run_denoiser  # noqa: E402
from atbsn_edge.cli import new_parser  # noqa: E402
from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.imageio import read_image  # noqa: E402
from atbsn_edge.jsonsafe import write_json  # noqa: E402
from atbsn_edge.metrics import psnr  # noqa: E402
from atbsn_edge.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from atbsn_edge.output_paths import check_report_path  # noqa: E402
from atbsn_edge.training import TrainConfig, optimise  # noqa: E402

log = logging.getLogger(__name__)

RECIPES = {  # name: (transforms averaged, holes, reduction over holes)
    "plain": (1, HOLES, None),
    "x8": (8, HOLES, None),
    "mean-1-11": (1, HOLES[1:], "mean"),
    "x8-mean-1-11": (8, HOLES[1:], "mean"),
    "x8-median": (8, HOLES, "median"),
}


def recipe_targets(outputs: np.ndarray, recipe: str) -> np.ndarray:
    """(3K) x H x W float16 targets of ``recipe`` from T x K x H x W x 3 teacher outputs."""
    transforms, holes, reduce = RECIPES[recipe]
    per_hole = outputs[:transforms].mean(axis=0)[[HOLES.index(h) for h in holes]]
    if reduce == "median":
        per_hole = np.median(per_hole, axis=0, keepdims=True)
    elif reduce == "mean":
        per_hole = per_hole.mean(axis=0, keepdims=True)
    return per_hole.transpose(0, 3, 1, 2).reshape(-1, *per_hole.shape[1:3]).astype(np.float16)


def score_student(student, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    rows = []
    for noisy, clean in pairs:
        value, similarity = score(run_denoiser(student, noisy, torch.device("cpu")), clean)
        rows.append({"psnr": value, "ssim": similarity, "noisy_psnr": psnr(noisy, clean)})
    return rows


def main() -> None:
    parser = new_parser("distillation_finetune.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--train", nargs="+", default=[
        "../shared/data/real/dnd_patches", "../shared/data/real/nam_pairs"],
        help="folders of training images (*_noise.png, *_noisy.png; clean files are skipped)")
    parser.add_argument("--pairs", default="../shared/data/real/nam_pairs")
    parser.add_argument("--teacher", default="atbsn_edge/assets/demo_atbsn.pt")
    parser.add_argument("--student", default="atbsn_edge/assets/demo_student_c.pt")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (slow on some CPUs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="runs/targets")
    parser.add_argument("--out", default="runs/finetune")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.json:
        check_report_path(args.json, "--json")  # before the training, not after it
    recipes = args.recipes.split(",")
    for name in recipes:
        if name not in RECIPES:
            raise AtbsnError(f"--recipes: unknown recipe {name!r}; valid: {', '.join(RECIPES)} "
                             "(comma-separated)")

    from atbsn_edge.profiling.machine import cpu_info

    torch.set_num_threads(args.threads)
    cache, out = Path(args.cache), Path(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for folder in args.train for p in Path(folder).glob("*.png")
                   if not p.name.endswith("_clean.png"))
    if not files:
        raise AtbsnError(f"--train {' '.join(args.train)}: no training images (*.png) in "
                         "them; give folders of noisy PNG images")
    pictures = {f: read_image(f).rgb for f in files}
    size = next(iter(pictures.values())).shape[0]
    transforms = max(RECIPES[r][0] for r in recipes)
    teacher = OpenVINOTeacher(args.teacher, HOLES, size, cache, threads=args.threads)
    outputs = {}
    for f in files:  # keys as distillation_targets names them: nam_01_..., dnd_patches_01_...
        stem = f.stem.rsplit("_", 1)[0]
        prefix = "nam" if f.name.endswith("_noisy.png") else f.parent.name
        key = image_key(prefix, stem, pictures[f])   # name, size and a hash of the pixels
        outputs[f] = teacher_outputs(teacher, pictures[f], cache, key, transforms)
    del teacher

    pairs = [(read_image(p).rgb, read_image(p.with_name(p.name.replace("_noisy", "_clean"))).rgb)
             for p in sorted(Path(args.pairs).glob("*_noisy.png"))]
    base_student = load_checkpoint(args.student)
    results = {"bundled student C": score_student(base_student, pairs)}
    seconds = {}
    inputs = [torch.from_numpy(np.ascontiguousarray(pictures[f].transpose(2, 0, 1)))
              for f in files]
    for name in recipes:
        targets = [torch.from_numpy(recipe_targets(outputs[f], name)) for f in files]
        sampler = PoolSampler(inputs, targets, args.crop, seed=0)
        student = copy.deepcopy(base_student)
        config = TrainConfig(iterations=args.iterations, batch=args.batch, crop=args.crop,
                             lr=args.lr, lr_min=1e-6, seed=0, checkpoint_every=NO_LIMIT,
                             validate_every=NO_LIMIT, bf16=args.bf16, threads=args.threads)
        started = time.perf_counter()
        optimise(student.network, pooled_loss, config, sampler, out / f"{name}.scratch.pt",
                 metadata=lambda state, name=name: {"description": f"finetune {name}"},
                 desc=name)
        seconds[name] = time.perf_counter() - started
        student.network.eval()
        save_checkpoint(out / f"student_c_{name}.pt", student.network, {
            **base_student.metadata, "description": f"demo student C fine-tuned {args.iterations} "
            f"iterations on recipe {name} (benchmarks/distillation_finetune.py)"})
        results[name] = score_student(student, pairs)
        log.info("%s: %.3f dB in %.0f s", name, np.mean([r["psnr"] for r in results[name]]),
                 seconds[name])

    nlm = [psnr(nl_means(noisy, 4.0), clean) for noisy, clean in pairs]
    cpu = cpu_info()
    noisy_mean = np.mean([r["noisy_psnr"] for r in results["bundled student C"]])
    print(f"\n{len(files)} training images, {len(pairs)} Nam pairs scored; {args.iterations} "
          f"iterations of batch {args.batch} x {args.crop}^2 per recipe, lr {args.lr:g} cosine; "
          f"CPU: {cpu.get('model')}, {args.threads} threads")
    print(f"noisy input {noisy_mean:.3f} dB, NL-means h=4 {np.mean(nlm):.3f} dB")
    print("| student | mean PSNR | vs noisy | vs NL-means | mean SSIM | worse than noisy on | "
          "seconds | per image PSNR |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        p = [r["psnr"] for r in rows]
        worse = sum(r["psnr"] < r["noisy_psnr"] for r in rows)
        print(f"| {name} | {np.mean(p):.3f} dB | {np.mean(p) - noisy_mean:+.3f} | "
              f"{np.mean(p) - np.mean(nlm):+.3f} | {np.mean([r['ssim'] for r in rows]):.4f} | "
              f"{worse} of {len(rows)} | {seconds.get(name, 0):.0f} | "
              f"{' '.join(f'{v:.2f}' for v in p)} |")
    if args.json:
        write_json(args.json, {"cpu": cpu, "iterations": args.iterations, "seconds": seconds,
                               "nlm": nlm, "results": results})


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
