"""Teacher cost per distillation batch: one unet pass shared by all hole sizes vs one AT-BSN
pass per hole size (the authors' code). Prints a table with the machine it ran on.

    python benchmarks/distill_teacher_cost.py --holes 0,1,3,5,7,9,11 --batch 4 --crop 128
"""
from __future__ import annotations

import statistics
import time

import torch

from atbsn_edge.arguments import positive_int
from atbsn_edge.cli import new_parser
from atbsn_edge.distill import parse_holes
from atbsn_edge.distillation import MultiTeacher
from atbsn_edge.models import ATBSN
from atbsn_edge.profiling.machine import describe_cpu
from atbsn_edge.training import init_weights


def timed(fn, x: torch.Tensor, repeats: int) -> float:
    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("distill_teacher_cost.py", __doc__)
    parser.add_argument("--holes", type=parse_holes, default="0,1,3,5,7,9,11",
                        help="comma-separated hole sizes (distill's --holes)")
    parser.add_argument("--batch", type=positive_int, default=4)
    parser.add_argument("--crop", type=positive_int, default=128)
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args(argv)
    holes = args.holes
    torch.manual_seed(0)
    teacher = ATBSN()
    init_weights(teacher)
    teachers = MultiTeacher(teacher.eval(), holes).to(memory_format=torch.channels_last)
    x = (torch.rand(args.batch, 3, args.crop, args.crop) * 255).contiguous(
        memory_format=torch.channels_last)
    print(f"CPU: {describe_cpu()}; {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"teachers: holes {holes}, batch {args.batch} x {args.crop}x{args.crop}, channels-last, "
          f"median of {args.repeats}")
    print("| precision | whole AT-BSN once per hole (authors' code) | unet once, shifts + head per hole (atbsn-edge) | cheaper by | max abs diff |")
    print("|---|---|---|---|---|")
    for precision in ("bf16 autocast (training default)", "fp32"):
        bf16 = precision.startswith("bf16")
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            worst = max(float((a.float() - b.float()).abs().max())
                        for a, b in zip(teachers(x), teachers.naive(x)))
            once = timed(teachers, x, args.repeats)
            per_hole = timed(teachers.naive, x, args.repeats)
        print(f"| {precision} | {per_hole * 1000:.0f} ms | {once * 1000:.0f} ms | "
              f"{per_hole / once:.2f}x | {worst:.2e} |", flush=True)


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
