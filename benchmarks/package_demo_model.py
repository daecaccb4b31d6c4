"""Copy a training checkpoint into ``atbsn_edge/assets`` as a demo model: weights and metadata,
without the optimizer state (a third of the size). Used to ship the bundled demo models.

From a training checkpoint the metadata's iterations and validation history come from its
training state, ``trained_on`` is this machine (or ``--trained-on``) and the note ``--note``.
An already packaged model (no training state) keeps its own history, ``trained_on`` and note
unless ``--trained-on`` / ``--note`` give new ones.

    python benchmarks/package_demo_model.py RUN.pt atbsn_edge/assets/demo_student_c.pt --note "..."
"""
from __future__ import annotations

import torch

from atbsn_edge.cli import new_parser
from atbsn_edge.models import load_checkpoint, save_checkpoint
from atbsn_edge.profiling.machine import describe_cpu


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("package_demo_model.py", __doc__)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--note", default=None,
                        help="the metadata's note (default: an already packaged model's own, "
                             "else empty)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="set a metadata string (repeatable), e.g. teacher=demo_atbsn.pt")
    parser.add_argument("--infer-hole", type=int, help="AT-BSN: the default inference hole to store")
    parser.add_argument("--trained-on", default="",
                        help="where it was trained (default: an already packaged model's own, "
                             "else this machine's CPU)")
    args = parser.parse_args(argv)
    model = load_checkpoint(args.source)   # a missing or damaged file: one line
    payload = torch.load(args.source, map_location="cpu", weights_only=True)
    training = payload.get("training") or {}
    metadata = {k: v for k, v in (payload.get("metadata") or {}).items()}
    this_machine = f"{describe_cpu()}; {torch.get_num_threads()} threads"
    if training:   # a training checkpoint: what its training state says, and this machine
        metadata.update(iterations=int(training.get("step", metadata.get("iterations", 0))),
                        history=[r for r in training.get("history", []) if "val_psnr" in r],
                        trained_on=args.trained_on or this_machine,
                        note=args.note or "")
    else:          # already packaged: keep its history, trained_on and note unless given
        metadata["iterations"] = int(metadata.get("iterations", 0))
        metadata.setdefault("history", [])
        if args.trained_on:
            metadata["trained_on"] = args.trained_on
        elif "trained_on" not in metadata:
            metadata["trained_on"] = this_machine
        if args.note is not None:
            metadata["note"] = args.note
        else:
            metadata.setdefault("note", "")
    for item in args.meta:
        key, _, value = item.partition("=")
        metadata[key] = value
    if args.infer_hole is not None:
        metadata["infer_hole"] = args.infer_hole
    save_checkpoint(args.target, model, metadata)
    print(f"wrote {args.target}: {model.architecture.name}, {metadata['iterations']} iterations")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
