"""Quality against training compute, from the validation history stored in checkpoints.

``python -m atbsn_edge.train`` and ``distill`` record, every ``--validate-every`` iterations,
the step, the training loss, the seconds of training so far and the validation PSNR (mean
over the ``--val-noisy``/``--val-clean`` pairs, at the inference hole) in the checkpoint's
training state (``training["history"]``; ``benchmarks/package_demo_model.py`` keeps it in
``metadata["history"]`` of the bundled models, which have no training state). This prints
that curve for each checkpoint, with the batch and crop of the run, so that the next training
budget is planned from it (issue 14, part 2).

    python benchmarks/training_curves.py atbsn_edge/assets/demo_atbsn.pt \\
        atbsn_edge/assets/demo_student_c.pt
"""
from __future__ import annotations

from pathlib import Path

import torch


def main() -> None:
    from atbsn_edge.cli import new_parser

    parser = new_parser("training_curves.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("checkpoints", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.checkpoints:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        meta = payload.get("metadata") or {}
        training = payload.get("training") or {}
        config = meta.get("config") or training.get("config") or {}
        history = [row for row in meta.get("history") or training.get("history") or []
                   if "val_psnr" in row]  # a run without --val-* pairs records none
        print(f"\n{path.name}: {meta.get('description', '')}")
        where = f", trained on {meta['trained_on']}" if meta.get("trained_on") else ""
        print(f"batch {config.get('batch', '?')} x {config.get('crop', '?')}^2, "
              f"device {config.get('device', '?')}{where}")
        if not history:
            print("(no validation history stored: train with --val-noisy and --val-clean)")
            continue
        print("| iteration | training seconds | crop-pixels seen (M) | loss | validation PSNR |")
        print("|---|---|---|---|---|")
        pixels = int(config.get("batch", 0)) * int(config.get("crop", 0)) ** 2
        for row in history:
            seen = row["step"] * pixels / 1e6 if pixels else float("nan")
            offset = " (with the output offset, as written)" if row.get("output_offset") else ""
            print(f"| {row['step']} | {row.get('seconds', float('nan')):.0f} | {seen:.0f} | "
                  f"{row.get('loss', float('nan')):.3f} | {row.get('val_psnr', float('nan')):.3f} "
                  f"dB{offset} |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
