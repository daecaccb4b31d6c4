"""Does ``python -m atbsn_edge.adapt`` improve the scenes of a camera it has never seen?

PolyU real noisy pairs (``../shared/data/real/polyu``, camera and scene in each file name):
for each of ``--splits`` seeded random splits of one camera's scenes into training and
held-out scenes, ``adapt`` runs on the noisy (``*_real``) images of the training scenes only,
with a fixed ``--time-limit``, once per variant (teacher share, pool or online targets). The
held-out scenes' noisy images are then denoised by the student before and after adaptation
and scored against their ``*_mean`` references. The held-out images are never adapted on, and
a scene name shot at two settings counts as one scene (``classroom`` at ISO 1800 and 3200
goes to one side). OpenCV NL-means runs on the same held-out images at every strength of
``--strengths``; the best single strength over all splits is reported (chosen with the
references: optimistic for NL-means).

The PolyU pairs are licensed for non-commercial use: this script only reads them, and writes
the checkpoints adapted on them to a temporary folder outside the repository, deleted at the
end. Nothing it adapts may become a bundled model.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/adapt_polyu.py > /tmp/adapt_polyu.log
    .venv/bin/python benchmarks/adapt_polyu.py --teacher-diagnostic   # the teacher per hole
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import comma_list, positive_float, positive_int
from atbsn_edge.cli import new_parser
from atbsn_edge.errors import AtbsnError
from atbsn_edge.jsonsafe import write_json
from atbsn_edge.output_paths import check_report_path

ROOT = Path(__file__).resolve().parents[1]
POLYU = ROOT.parent / "shared" / "data" / "real" / "polyu"
NAME = re.compile(r"^(?P<camera>[A-Za-z0-9]+)_(?P<aperture>[^_]+)_(?P<shutter>[^_]+)_"
                  r"(?P<iso>[^_]+)_(?P<scene>[A-Za-z]+)_+(?P<index>\d+)_(?P<kind>real|mean)\.JPG$")


def scenes_of(folder: Path, camera: str) -> dict[str, list[tuple[Path, Path]]]:
    """``{scene: [(noisy, mean), ...]}`` for one camera, from the file names."""
    pairs: dict[str, list[tuple[Path, Path]]] = defaultdict(list)
    for path in sorted(folder.iterdir()):
        m = NAME.match(path.name)
        if m is None or m["camera"] != camera or m["kind"] != "real":
            continue
        mean = path.with_name(path.name[:-len("_real.JPG")] + "_mean.JPG")
        if not mean.is_file():
            raise AtbsnError(f"{path} has no {mean.name} beside it; each noisy *_real.JPG needs "
                             "its *_mean.JPG reference in the same folder")
        pairs[m["scene"]].append((path, mean))
    return dict(pairs)


def cameras_in(folder: Path) -> dict[str, set[str]]:
    """``{camera: {scene, ...}}`` of the noisy (``*_real.JPG``) PolyU files in ``folder``."""
    if not folder.is_dir():
        raise AtbsnError(f"--polyu {folder}: no such folder; give the folder of the PolyU pairs "
                         "(CAMERA_APERTURE_SHUTTER_ISO_SCENE_N_real.JPG + _mean.JPG), e.g. "
                         "../shared/data/real/polyu")
    cameras: dict[str, set[str]] = defaultdict(set)
    for path in folder.iterdir():
        m = NAME.match(path.name)
        if m is not None and m["kind"] == "real":
            cameras[m["camera"]].add(m["scene"])
    if not cameras:
        raise AtbsnError(f"--polyu {folder}: no PolyU pairs in it (file names "
                         "CAMERA_APERTURE_SHUTTER_ISO_SCENE_N_real.JPG + _mean.JPG); give the "
                         "PolyU folder, e.g. ../shared/data/real/polyu")
    return dict(cameras)


def check_camera(folder: Path, camera: str, flag: str = "--camera",
                 test_scenes: int | None = None) -> None:
    """Refuse, before any work, a ``camera`` with no pairs in ``folder`` (the message lists the
    cameras found) and, where ``test_scenes`` is given, a split that holds out every scene of
    it (nothing left to adapt on)."""
    cameras = cameras_in(folder)
    if camera not in cameras:
        found = ", ".join(f"{name} ({len(scenes)} scenes)" for name, scenes in sorted(cameras.items()))
        raise AtbsnError(f"{flag} {camera}: no pairs of that camera in {folder}; cameras found: "
                         f"{found} (the file names' first field)")
    scenes = sorted(cameras[camera])
    if test_scenes is not None and test_scenes >= len(scenes):
        raise AtbsnError(f"--test-scenes {test_scenes}: {camera} has {len(scenes)} scenes "
                         f"({', '.join(scenes)}), and holding out {test_scenes} leaves none to "
                         f"adapt on; give 1 to {len(scenes) - 1}" if len(scenes) > 1 else
                         f"--camera {camera}: it has one scene ({scenes[0]}), and a split needs "
                         "one to hold out and one to adapt on; choose a camera with more scenes")


def split_scenes(scenes: list[str], test: int, seed: int, split: int) -> tuple[list[str], list[str]]:
    """(training scenes, held-out scenes) of one seeded split."""
    order = [str(s) for s in np.random.default_rng([seed, split]).permutation(sorted(scenes))]
    return sorted(order[test:]), sorted(order[:test])


def parse_variant(text: str) -> tuple[str, float, list[str], str | None]:
    """``pool:0.5`` -> ("pool", 0.5, [], None); each ``+FLAG=VALUE`` adds ``--FLAG VALUE`` to
    the adapt command (``pool:0.5+distill-target=mean+holes=1,3,5,7,9,11``); ``@CAMERA`` at the
    end makes it a control adapted on every noisy image of that camera instead of the
    training scenes (``pool:0@Canon600D``)."""
    text, _, camera = text.partition("@")
    head, *options = text.split("+")
    targets, _, share = head.partition(":")
    flags = []
    usage = (f"--variants {text!r}: expected TARGETS:SHARE[+FLAG=VALUE...][@CAMERA], TARGETS "
             f"pool or online, SHARE a fraction in [0, 1) (e.g. pool:0.5, pool:0@Canon600D)")
    if targets not in ("pool", "online"):   # atbsn_edge.adapt.TARGETS
        raise AtbsnError(usage)
    for option in options:
        flag, sep, value = option.partition("=")
        if not sep or not flag:
            raise AtbsnError(usage)
        flags += [f"--{flag}", value]
    try:
        teacher_share = float(share or 0)
    except ValueError:
        raise AtbsnError(usage) from None
    if not 0 <= teacher_share < 1:
        raise AtbsnError(usage)
    return targets, teacher_share, flags, camera or None


def variant_label(targets: str, share: float, flags: list[str], camera: str | None) -> str:
    """A variant's column title: ``after, pool targets, teacher share 0.5, distill-target mean``."""
    options = "".join(f", {flags[i][2:]} {flags[i + 1]}" for i in range(0, len(flags), 2))
    return (f"after, {targets} targets, teacher share {share:g}{options}"
            + (f", adapted on {camera} (control)" if camera else ""))


def spread(values: list[float]) -> str:
    """``mean ± sd (min .. max)`` of per-split values."""
    v = np.asarray(values, dtype=np.float64)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():+.3f} ± {sd:.3f} ({v.min():+.3f} .. {v.max():+.3f})"


def pair_scores(model, images: dict, paths, device) -> tuple[dict[Path, float], dict[Path, float]]:
    """PSNR of ``model``'s network output on ``paths`` (keys of ``images``, each a (noisy,
    clean) pair), and at its own strength (what ``denoise`` applies by default)."""
    import torch

    from atbsn_edge.adaptation_report import run_denoiser
    from atbsn_edge.metrics import psnr
    from atbsn_edge.strength import blend_with_input, model_strength

    strength = model_strength(model.metadata)
    model.eval()
    plain, blended = {}, {}
    with torch.no_grad():
        for p in paths:
            n, c = images[p]
            out = run_denoiser(model, n, device)
            plain[p], blended[p] = psnr(out, c), psnr(blend_with_input(n, out, strength), c)
    return plain, blended


def teacher_diagnostic(args: argparse.Namespace) -> None:
    """PSNR of the bundled teacher at every hole, of the per-pixel median of those outputs
    and of the bundled student, on the first pair of each scene of ``args.camera``."""
    import torch

    from atbsn_edge.adaptation_report import run_denoiser
    from atbsn_edge.assets import DEMO_ATBSN, DEMO_STUDENT_C
    from atbsn_edge.distillation import PUBLISHED_HOLES, MultiTeacher
    from atbsn_edge.imageio import read_image
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models.checkpoint import load_checkpoint

    torch.set_num_threads(args.threads)
    teachers = MultiTeacher(load_checkpoint(DEMO_ATBSN).network, PUBLISHED_HOLES)
    student = load_checkpoint(DEMO_STUDENT_C)
    columns = ["noisy", *(f"teacher h{h}" for h in PUBLISHED_HOLES), "median of the holes",
               "student"]
    print("| image | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    rows = []
    for scene, items in sorted(scenes_of(args.polyu, args.camera).items()):
        noisy_path, mean_path = items[0]
        noisy, clean = read_image(noisy_path).rgb, read_image(mean_path).rgb
        x = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1)))[None]
        with torch.no_grad():
            outs = [o[0].numpy().transpose(1, 2, 0) for o in teachers(x)]
        row = [psnr(noisy, clean), *(psnr(o, clean) for o in outs),
               psnr(np.median(np.stack(outs), axis=0), clean),
               psnr(run_denoiser(student, noisy, torch.device("cpu")), clean)]
        rows.append(row)
        print(f"| {noisy_path.name} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
    print("| **mean** | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("adapt_polyu.py", __doc__)
    parser.add_argument("--polyu", type=Path, default=POLYU)
    parser.add_argument("--camera", default="NikonD800")
    parser.add_argument("--splits", type=positive_int, default=3)
    parser.add_argument("--test-scenes", type=positive_int, default=3,
                        help="held-out scenes per split (the rest are adapted on)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=80.0,
                        help="adapt's --time-limit of every run")
    parser.add_argument("--variants", nargs="+",
                        default=["pool:0", "pool:0.5", "online:0", "pool:0@Canon600D"],
                        help="TARGETS:TEACHER_SHARE[+FLAG=VALUE...][@OTHER_CAMERA]: one adapt run "
                             "each per split (+FLAG=VALUE: also --FLAG VALUE; @CAMERA: adapted "
                             "on that camera's images)")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--report-frames", type=int, default=4)
    parser.add_argument("--strengths", default="2,3,4,5,6,7", help="NL-means h values",
                        type=comma_list(positive_float, "positive numbers (NL-means h values)",
                                        "2,3,4"))
    parser.add_argument("--work", type=Path, help="scratch folder outside the repository "
                        "(default: a new temporary folder, removed at the end)")
    parser.add_argument("--json", type=Path, help="also write the numbers here (outside the repository)")
    parser.add_argument("--teacher-diagnostic", action="store_true",
                        help="only score the bundled teacher at each hole (and the median of "
                             "its outputs, what distillation pulls the student to) and the "
                             "student on the first pair of every scene, then stop")
    args = parser.parse_args(argv)
    if args.teacher_diagnostic:
        check_camera(args.polyu, args.camera)
        teacher_diagnostic(args)
        return
    # what can be checked from the file names, before any image is read
    check_camera(args.polyu, args.camera, test_scenes=args.test_scenes)
    variants = {v: parse_variant(v) for v in args.variants}
    for key, (_, _, _, other) in variants.items():
        if other:
            check_camera(args.polyu, other, f"--variants {key}: camera")
    for path in (args.work, args.json):
        if path is not None and ROOT in path.resolve().parents:
            raise AtbsnError(f"{path} is inside the repository; PolyU-derived files stay outside "
                             "it: give a path outside " + str(ROOT))
    if args.json is not None:
        check_report_path(args.json, "--json")  # before the runs, not after them

    import cv2
    import torch

    from atbsn_edge.adapt import main as adapt_main
    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.imageio import read_image
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.strength import describe_strength, model_strength
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.progress import progress_bar

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = torch.device("cpu")
    scenes = scenes_of(args.polyu, args.camera)
    pairs = {noisy: mean for items in scenes.values() for noisy, mean in items}
    print(f"{args.camera}: {len(pairs)} pairs in {len(scenes)} scenes: "
          + ", ".join(f"{s} {len(v)}" for s, v in sorted(scenes.items())), flush=True)
    started = time.perf_counter()
    load_start = os.getloadavg()

    images = {p: (read_image(p).rgb, read_image(m).rgb) for p, m in pairs.items()}
    noisy_psnr = {p: psnr(n, c) for p, (n, c) in images.items()}

    before_model = load_checkpoint(DEMO_STUDENT_C)
    strength = model_strength(before_model.metadata)
    before_psnr, before_blended = pair_scores(
        before_model, images, progress_bar(images, desc="demo student", unit="img"), device)
    strengths = args.strengths
    nlm: dict[float, dict[Path, float]] = {h: {} for h in strengths}
    for p, (n, c) in progress_bar(images.items(), desc="NL-means", unit="img"):
        bgr = np.clip(np.rint(n[:, :, ::-1]), 0, 255).astype(np.uint8)
        for h in strengths:
            out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
            nlm[h][p] = psnr(out[:, :, ::-1].astype(np.float32), c)

    work = args.work or Path(tempfile.mkdtemp(prefix="adapt_polyu_"))
    work.mkdir(parents=True, exist_ok=True)
    splits = []
    try:
        for split in range(args.splits):
            train, test = split_scenes(list(scenes), args.test_scenes, args.seed, split)
            train_files = [str(n) for s in train for n, _ in scenes[s]]
            test_files = [n for s in test for n, _ in scenes[s]]
            row = {"split": split, "train_scenes": train, "test_scenes": test,
                   "train_images": len(train_files), "test_images": len(test_files),
                   "noisy": float(np.mean([noisy_psnr[p] for p in test_files])),
                   "before": float(np.mean([before_psnr[p] for p in test_files])),
                   "before_blended": float(np.mean([before_blended[p] for p in test_files])),
                   "nlm": {h: float(np.mean([nlm[h][p] for p in test_files])) for h in strengths},
                   "variants": {}}
            print(f"split {split}: held out {', '.join(test)} ({len(test_files)} images); "
                  f"adapting on {', '.join(train)} ({len(train_files)} images)", flush=True)
            for number, (key, (targets, share, flags, other)) in enumerate(variants.items()):
                out = work / f"split{split}_variant{number}.pt"
                data = ([str(n) for items in scenes_of(args.polyu, other).values() for n, _ in items]
                        if other else train_files)
                code = adapt_main(["--data", *data, "--out", str(out), "--overwrite",
                                   "--time-limit", str(args.time_limit), "--teacher-share",
                                   str(share), "--targets", targets, "--threads",
                                   str(args.threads), "--seed", str(args.seed + split),
                                   "--report-frames", str(args.report_frames), *flags])
                if code != 0:
                    raise SystemExit(f"adapt exited with {code} on split {split}, {key}")
                adapted = load_checkpoint(out)
                plain, blended = pair_scores(adapted, images, test_files, device)
                meta = adapted.metadata["adaptation"]
                row["variants"][key] = {"psnr": float(np.mean(list(plain.values()))),
                                        "psnr_blended": float(np.mean(list(blended.values()))),
                                        "iterations": meta["iterations"],
                                        "seconds": meta["seconds"],
                                        "pool_regions": meta["pool_regions"],
                                        "teacher_check": meta.get("teacher_check") or {},
                                        "report": meta["report"]}
                out.unlink()
                print(f"  {key}: {row['variants'][key]['psnr']:.3f} dB held out "
                      f"(before {row['before']:.3f}); "
                      f"{meta['iterations']}, {meta['pool_regions']} regions", flush=True)
            splits.append(row)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    best_h = max(strengths, key=lambda h: np.mean([r["nlm"][h] for r in splits]))
    keys = list(variants)
    label = {k: variant_label(*v) for k, v in variants.items()}
    print()
    print(f"CPU: {describe_cpu()}; torch threads {args.threads}; load average "
          f"{load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (the CPU is "
          f"shared); adapt --time-limit {args.time_limit:g} s per run; "
          f"{(time.perf_counter() - started) / 60:.1f} min in all")
    print()
    print("Held-out mean PSNR (dB) against the `*_mean` references, demo student C before and "
          "after adaptation on the training scenes' noisy images")
    print()
    print("| split | held-out scenes (images) | noisy | before | "
          + " | ".join(label[k] for k in keys) + f" | NL-means h={best_h:g} |")
    print("|---|---|---:|---:|" + "---:|" * len(keys) + "---:|")
    for r in splits:
        cells = " | ".join(f"{r['variants'][k]['psnr']:.3f} ({r['variants'][k]['psnr'] - r['before']:+.3f})"
                           for k in keys)
        print(f"| {r['split']} | {', '.join(r['test_scenes'])} ({r['test_images']}) | "
              f"{r['noisy']:.3f} | {r['before']:.3f} | {cells} | {r['nlm'][best_h]:.3f} |")
    print()
    print("| gain over the unadapted student, mean ± sd over splits (min .. max) | dB |")
    print("|---|---|")
    for k in keys:
        print(f"| {label[k]} | {spread([r['variants'][k]['psnr'] - r['before'] for r in splits])} |")
    print(f"| unadapted student over the noisy input | "
          f"{spread([r['before'] - r['noisy'] for r in splits])} |")
    print(f"| NL-means h={best_h:g} over the unadapted student | "
          f"{spread([r['nlm'][best_h] - r['before'] for r in splits])} |")
    if strength != 1.0:
        print()
        print(f"The same at the strength `denoise` applies by default (the model's "
              f"{describe_strength(strength)}), gain over the unadapted student at that strength")
        print()
        print("| split | noisy | before | " + " | ".join(label[k] for k in keys) + " |")
        print("|---|---:|---:|" + "---:|" * len(keys))
        for r in splits:
            cells = " | ".join(f"{r['variants'][k]['psnr_blended']:.3f} "
                               f"({r['variants'][k]['psnr_blended'] - r['before_blended']:+.3f})"
                               for k in keys)
            print(f"| {r['split']} | {r['noisy']:.3f} | {r['before_blended']:.3f} | {cells} |")
        print()
        print(f"| gain at strength {describe_strength(strength)}, mean ± sd over splits (min .. max) | dB |")
        print("|---|---|")
        for k in keys:
            print(f"| {label[k]} | " + spread([r["variants"][k]["psnr_blended"]
                                               - r["before_blended"] for r in splits]) + " |")
    print()
    print("| split | variant | teacher it | teacher loss before -> after (kept) | pool regions | "
          "student it | seconds (teacher / targets / student) | no-ref before: σ̂ out, residual "
          "std | after: σ̂ out, residual std |")
    print("|---|---|---:|---|---:|---:|---|---|---|")
    for r in splits:
        for k in keys:
            v = r["variants"][k]
            b, a = v["report"].get("before") or {}, v["report"].get("after") or {}
            s, c = v["seconds"], v.get("teacher_check") or {}
            check = (f"{c['loss_before']:.4f} -> {c['loss_after']:.4f} "
                     f"({'kept' if c['kept'] else 'undone'})" if c else "-")
            print(f"| {r['split']} | {k} | {v['iterations']['teacher']} | {check} | "
                  f"{v['pool_regions']} | "
                  f"{v['iterations']['student']} | {s['teacher']:.0f} / {s['targets']:.0f} / "
                  f"{s['student']:.0f} | {b.get('output_sigma', float('nan')):.3f}, "
                  f"{b.get('residual_std', float('nan')):.3f} | "
                  f"{a.get('output_sigma', float('nan')):.3f}, {a.get('residual_std', float('nan')):.3f} |")
    if args.json is not None:
        write_json(args.json, {"camera": args.camera, "cpu": describe_cpu(),
                               "time_limit": args.time_limit, "nlm_best": best_h, "splits": splits})


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
