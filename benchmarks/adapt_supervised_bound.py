"""What could adapting to one camera gain at most? Supervised fine-tuning, with the references.

``benchmarks/adapt_polyu.py`` measures ``adapt`` (self-supervised: noisy frames only) on the
held-out scenes of a PolyU camera. This measures its upper bound on the same seeded splits:
the bundled student C fine-tuned for ``--iterations`` on the training scenes' *real* pairs
(noisy -> ``*_mean`` reference, L1, Adam; random crops, rotations and flips, as ``adapt``'s),
as no user of ``adapt`` could, and, as the control, the same fine-tune on every pair of
``--control`` (the other camera). Both are scored on the
held-out scenes at the student's own strength (``auto``, as ``denoise`` runs it). If the
camera's own pairs gain no more than the other camera's, there is nothing camera-specific for
``adapt`` to find in that budget, whatever its targets.

The PolyU pairs are licensed for non-commercial use: this script only reads them and keeps the
fine-tuned weights in memory; nothing it trains is written anywhere.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/adapt_supervised_bound.py --iterations 250
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from adapt_polyu import POLYU, check_camera, pair_scores, scenes_of, split_scenes

from atbsn_edge.arguments import positive_float, positive_int
from atbsn_edge.cli import new_parser

CROP = 128
BATCH = 4


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("adapt_supervised_bound.py", __doc__)
    parser.add_argument("--polyu", type=Path, default=POLYU)
    parser.add_argument("--camera", default="NikonD800")
    parser.add_argument("--control", default="Canon600D")
    parser.add_argument("--splits", type=positive_int, default=3)
    parser.add_argument("--test-scenes", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="the splits' seed (adapt_polyu.py's)")
    parser.add_argument("--iterations", type=positive_int, default=250,
                        help="fine-tuning iterations of 4 x 128x128 (about 80 s of a 2-core CPU)")
    parser.add_argument("--lr", type=positive_float, default=1e-4)
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    # from the file names, before any image is read: both cameras exist, and a split leaves
    # the camera scenes to train on
    check_camera(args.polyu, args.camera, test_scenes=args.test_scenes)
    check_camera(args.polyu, args.control, "--control")

    import torch

    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.imageio import read_image
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.progress import progress_bar
    from atbsn_edge.strength import describe_strength, model_strength
    from atbsn_edge.training import CropSampler, autocast_context

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    own, other = scenes_of(args.polyu, args.camera), scenes_of(args.polyu, args.control)
    images = {p: (read_image(p).rgb, read_image(m).rgb)
              for scenes in (own, other) for items in scenes.values() for p, m in items}
    control_pairs = [p for items in other.values() for p, _ in items]

    def score(model, paths: list[Path]) -> float:
        """Mean PSNR on ``paths`` at the model's own strength."""
        return float(np.mean(list(pair_scores(model, images, paths, device)[1].values())))

    def fine_tune(paths: list[Path], label: str):
        """The bundled student after ``--iterations`` of L1 to the references on ``paths``
        (noisy and reference stacked as 6 channels: one crop, rotation and flip for both)."""
        torch.manual_seed(0)
        sampler = CropSampler([np.concatenate(images[p], axis=2) for p in paths], CROP, seed=0)
        model = load_checkpoint(DEMO_STUDENT_C).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        for _ in progress_bar(range(args.iterations), desc=label, unit="it", leave=False):
            pairs = sampler.sample(BATCH)
            with autocast_context(device, True):
                out = model(pairs[:, :3])
            loss = (out.float() - pairs[:, 3:]).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model

    started, load_start = time.perf_counter(), os.getloadavg()
    strength = describe_strength(model_strength(load_checkpoint(DEMO_STUDENT_C).metadata))
    rows = []
    for split in range(args.splits):
        train, test = split_scenes(list(own), args.test_scenes, args.seed, split)
        train_pairs = [p for s in train for p, _ in own[s]]
        test_pairs = [p for s in test for p, _ in own[s]]
        before = score(load_checkpoint(DEMO_STUDENT_C), test_pairs)
        mine = score(fine_tune(train_pairs, f"split {split}: {args.camera}"), test_pairs)
        control = score(fine_tune(control_pairs, f"split {split}: {args.control}"), test_pairs)
        rows.append((split, test, len(test_pairs), before, mine, control))
        print(f"split {split}: {mine - before:+.3f} own, {control - before:+.3f} control", flush=True)

    print()
    print(f"CPU: {describe_cpu()}; torch threads {args.threads}; load average {load_start[0]:.2f} "
          f"at the start, {os.getloadavg()[0]:.2f} at the end; {args.iterations} iterations of "
          f"{BATCH} x {CROP}x{CROP} per fine-tune, lr {args.lr:g}; "
          f"{(time.perf_counter() - started) / 60:.1f} min")
    print()
    print(f"Held-out {args.camera} scenes, mean PSNR at strength {strength} (dB)")
    print()
    print(f"| split | held-out scenes (images) | before | supervised on the training scenes | "
          f"supervised on {args.control} (control) |")
    print("|---|---|---:|---:|---:|")
    for split, test, count, before, mine, control in rows:
        print(f"| {split} | {', '.join(test)} ({count}) | {before:.3f} | {mine:.3f} "
              f"({mine - before:+.3f}) | {control:.3f} ({control - before:+.3f}) |")
    for label, column in (("supervised on the training scenes", 4), (f"control, {args.control}", 5)):
        gains = np.array([row[column] - row[3] for row in rows])
        spread = gains.std(ddof=1) if len(gains) > 1 else 0.0
        print(f"\n{label}: {gains.mean():+.3f} ± {spread:.3f} dB "
              f"({gains.min():+.3f} .. {gains.max():+.3f})")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
