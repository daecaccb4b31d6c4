"""Would a denoising strength help? ``noisy + s * (student - noisy)`` scored against clean.

The bundled student over-smooths fine texture (it is below the noisy input on some pairs) and
under-denoises elsewhere. A single global strength ``s`` (1 = the student's output, 0 = the
noisy input) is the simplest knob a user could turn; this measures, on the 12 Nam pairs and the
44 PolyU pairs (two cameras the models never saw), the mean PSNR and the number of pairs below
the noisy input at each ``s``, and the best ``s`` per image (an oracle: how much a per-image
strength could give at most). ``--select`` names the Nam pairs a single strength is chosen on
(default 01-04, the pairs that already chose the AT-BSN's default hole); that strength's row
is then scored on every pair. The last rows score ``auto`` (a per-pixel gain from the residual,
``atbsn_edge/strength.py``), whose window, quantile and factor were chosen on the 12 Nam pairs:
``--auto-grid`` prints that choice (the best mean PSNR on the ``--auto-select`` pairs, default
every Nam pair, of every window x quantile x factor, and those combinations on every set,
with the pairs below the noisy input and the worst change; each with auto's low-frequency
step at its sigma), ``--low-sigmas`` the choice of that sigma (at the chosen window, quantile
and factor; 0: no low-frequency step). The PolyU pairs are licensed for
non-commercial use: only read, and never used to choose a constant.

``--brighten K`` multiplies every noisy image and its reference by ``K`` and clips both to
0..255 (rounded, as an 8-bit file would be): over-exposed shots with blown highlights and a
reference clipped the same way, where ``auto`` leaves clipped blocks out of its level and of
its low-frequency step. ``--clipped-rules`` then also scores ``auto`` with clipped blocks
counted in the low-frequency step, counted everywhere, and without that step.

    .venv/bin/python benchmarks/strength_blend.py --threads 2 --auto-grid
    .venv/bin/python benchmarks/strength_blend.py --threads 2 --brighten 1.4 --clipped-rules
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import comma_list, finite_float, pick_choices, positive_int
from atbsn_edge.cli import new_parser
from atbsn_edge.errors import AtbsnError

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
#: the data sets, by name (the tables' columns say "NAME (number of pairs found)")
SETS = {"Nam": ("nam_pairs", "*_noisy.png", "_noisy.png", "_clean.png"),
        "PolyU": ("polyu", "*_real.JPG", "_real.JPG", "_mean.JPG")}


def pairs_of(folder: Path, pattern: str, noisy_suffix: str, clean_suffix: str) -> list[tuple[Path, Path]]:
    """Sorted (noisy, clean) paths of one data set, from the file names."""
    pairs = []
    for noisy in sorted(folder.glob(pattern)):
        clean = noisy.with_name(noisy.name[:-len(noisy_suffix)] + clean_suffix)
        if not clean.is_file():
            raise AtbsnError(f"{noisy} has no {clean.name} beside it; each noisy image needs "
                             "its clean reference in the same folder")
        pairs.append((noisy, clean))
    if not pairs:
        raise AtbsnError(f"no {pattern} in {folder}; give --real the folder holding "
                         f"{', '.join(folder for folder, *_ in SETS.values())} "
                         "(e.g. ../shared/data/real)")
    return pairs


def pair_prefix(path: Path) -> str:
    """The name ``--select`` / ``--auto-select`` give a pair by: its file name's first field."""
    return path.name.split("_")[0]


def selected(text: str | None, pairs: list[tuple[Path, Path]], flag: str) -> list[str]:
    """The pair names of ``flag``'s comma-separated ``text`` (None: every pair), each checked
    against the pairs found: an unknown name is refused, naming the valid ones."""
    names = [pair_prefix(noisy) for noisy, _ in pairs]
    if text is None:
        return names
    try:
        wanted = pick_choices(text, names, "pair")
    except ValueError as exc:
        raise AtbsnError(f"{flag} {text}: {exc} (the Nam pairs found, by file name "
                         "prefix)") from None
    return [n for n in names if n in wanted]


NUMBERS = comma_list(finite_float, "numbers", "0.5,0.7,1.0")  # argparse type


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("strength_blend.py", __doc__)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="student checkpoint (default: the bundled demo student C)")
    parser.add_argument("--strengths", type=NUMBERS, default="0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--select", default="01,02,03,04",
                        help="Nam pairs (file name prefixes) the single strength is chosen on")
    parser.add_argument("--auto-grid", action="store_true",
                        help="also score auto's window x quantile x factor grid (the choice of its "
                             "constants)")
    parser.add_argument("--auto-select", default=None,
                        help="Nam pairs (file name prefixes) auto's constants are chosen on "
                             "(default: every Nam pair)")
    parser.add_argument("--low-sigmas", type=NUMBERS, default=None,
                        help="comma-separated sigmas of auto's low-frequency step to score, chosen "
                             "on --auto-select (e.g. 0,4,8,12,16,24,32,48; 0: none)")
    parser.add_argument("--auto-top", type=positive_int, default=15,
                        help="rows of the grid to print, best on --auto-select first")
    parser.add_argument("--brighten", type=float, default=1.0,
                        help="multiply noisy and clean by this and clip to 0..255 (over-exposed "
                             "shots; default 1: the pairs as they are)")
    parser.add_argument("--clipped-rules", action="store_true",
                        help="also score auto with clipped blocks counted in its low-frequency "
                             "step, counted everywhere, and without that step")
    args = parser.parse_args(argv)
    if not args.brighten > 0:
        parser.error(f"--brighten {args.brighten:g}: give a factor above 0 (1: the pairs as "
                     "they are; 1.4: over-exposed)")
    # the pairs from their file names, and the names --select and --auto-select give, before
    # any image is read
    pair_sets = {name: pairs_of(args.real / folder, pattern, noisy_suffix, clean_suffix)
                 for name, (folder, pattern, noisy_suffix, clean_suffix) in SETS.items()}
    select = selected(args.select, pair_sets["Nam"], "--select")
    auto_select = selected(args.auto_select, pair_sets["Nam"], "--auto-select")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise AtbsnError(f"--checkpoint {args.checkpoint}: no such file; give a student "
                         "checkpoint, or leave it out for the bundled demo student C")

    import torch
    from atbsn_edge.progress import progress_bar

    from atbsn_edge.adaptation_report import run_denoiser
    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.imageio import read_image
    from atbsn_edge.metrics import psnr, ssim
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.strength import (AUTO, AUTO_FACTOR, AUTO_LOW_SIGMA, AUTO_QUANTILE, AUTO_WINDOW,
                                     blend_with_input)

    torch.set_num_threads(args.threads)
    strengths = args.strengths
    grid = [float(g) for g in np.round(np.arange(0.0, 1.51, 0.05), 2)]
    model = load_checkpoint(args.checkpoint or DEMO_STUDENT_C)
    started = time.perf_counter()
    results = {}     # by column title: "Nam (12)", "PolyU (44)" (the pairs found)
    for name, pairs in pair_sets.items():
        rows = []
        for noisy_path, clean_path in progress_bar(pairs, desc=name, unit="img"):
            noisy, clean = (brightened(read_image(path).rgb, args.brighten)
                            for path in (noisy_path, clean_path))
            with torch.no_grad():
                residual = run_denoiser(model, noisy, torch.device("cpu")) - noisy
            rows.append({"name": noisy_path.name, "noisy": psnr(noisy, clean),
                         "images": (noisy, residual, clean),
                         "grid": {s: psnr(noisy + s * residual, clean) for s in grid},
                         "by_s": {s: (psnr(noisy + s * residual, clean),
                                      ssim(noisy + s * residual, clean)) for s in strengths}})
        results[f"{name} ({len(rows)})"] = rows
    nam = results[f"Nam ({len(pair_sets['Nam'])})"]

    print(f"CPU: {describe_cpu()}; torch threads {args.threads}; checkpoint "
          f"{args.checkpoint or DEMO_STUDENT_C}; {time.perf_counter() - started:.0f} s")
    if args.brighten != 1.0:
        print(f"noisy and clean x {args.brighten:g}, clipped to 0..255; pixels with a clipped "
              "channel (<= 2 or >= 253) in the noisy inputs: "
              + ", ".join(f"{name} {clipped_share(rows):.1%}" for name, rows in results.items()))
    print()
    chosen_on = [r for r in nam if r["name"].split("_")[0] in select]
    chosen = max(grid, key=lambda g: np.mean([r["grid"][g] for r in chosen_on]))
    print("| strength s | " + " | ".join(f"{n}: mean PSNR, SSIM, below the noisy input on"
                                         for n in results) + " |")
    print("|---:|" + "---|" * len(results))
    print("| 0 (noisy) | " + " | ".join(f"{np.mean([r['noisy'] for r in rows]):.3f} dB, -, -"
                                        for rows in results.values()) + " |")
    for s in strengths:
        cells = []
        for rows in results.values():
            worse = sum(r["by_s"][s][0] < r["noisy"] for r in rows)
            cells.append(f"{np.mean([r['by_s'][s][0] for r in rows]):.3f} dB, "
                         f"{np.mean([r['by_s'][s][1] for r in rows]):.4f}, {worse} of {len(rows)}")
        print(f"| {s:g} | " + " | ".join(cells) + " |")
    cells = []
    for rows in results.values():
        worse = sum(r["grid"][chosen] < r["noisy"] for r in rows)
        chosen_ssim = np.mean([ssim(n + chosen * d, c) for n, d, c in (r["images"] for r in rows)])
        cells.append(f"{np.mean([r['grid'][chosen] for r in rows]):.3f} dB, {chosen_ssim:.4f}, "
                     f"{worse} of {len(rows)}")
    print(f"| {chosen:g}, chosen on the {len(select)} Nam pairs {','.join(select)} | "
          + " | ".join(cells) + " |")
    cells = []
    for rows in results.values():
        best = [max((r["grid"][g], g) for g in grid) for r in rows]
        cells.append(f"{np.mean([b[0] for b in best]):.3f} dB (s from {min(b[1] for b in best):g} "
                     f"to {max(b[1] for b in best):g})")
    print("| best s per image (oracle, uses clean) | " + " | ".join(cells) + " |")
    cells = []
    for rows in results.values():
        outs = [(blend_with_input(n, n + d, AUTO), n, c) for n, d, c in (r["images"] for r in rows)]
        scores = [(psnr(o, c), ssim(o, c), psnr(n, c)) for o, n, c in outs]
        cells.append(f"{np.mean([p for p, _, _ in scores]):.3f} dB, "
                     f"{np.mean([q for _, q, _ in scores]):.4f}, "
                     f"{sum(p < p0 for p, _, p0 in scores)} of {len(rows)}")
    print(f"| auto (window {AUTO_WINDOW}, quantile {AUTO_QUANTILE:g}, factor {AUTO_FACTOR:g}, "
          f"low sigma {AUTO_LOW_SIGMA:g}) | " + " | ".join(cells) + " |")
    auto_on = [r for r in nam if r["name"].split("_")[0] in auto_select]
    if args.clipped_rules:
        print_clipped_rules(results, psnr)
    if args.low_sigmas:
        print_low_sigmas(results, auto_on, args.low_sigmas, psnr)
    if args.auto_grid:
        print_auto_grid(results, auto_on, psnr, args.auto_top)


def brightened(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (0..255) times ``factor``, rounded and clipped to 0..255 as an 8-bit file."""
    if factor == 1.0:
        return image
    return np.clip(np.round(image * np.float32(factor)), 0, 255).astype(image.dtype)


def clipped_share(rows: list) -> float:
    """The share of the noisy inputs' pixels with a clipped channel (``auto``'s rule,
    :func:`atbsn_edge.strength.unclipped_pixels`)."""
    from atbsn_edge.strength import unclipped_pixels

    counts = [(np.count_nonzero(unclipped_pixels(n) == 0), n.shape[0] * n.shape[1])
              for n, _, _ in (r["images"] for r in rows)]
    return sum(c for c, _ in counts) / sum(t for _, t in counts)


#: auto's use of the clipped-block mask: for its level, for its low-frequency step
CLIPPED_RULES = {"as shipped: clipped blocks out of the level and the low-frequency step": (True, True),
                 "clipped blocks counted in the low-frequency step": (True, False),
                 "clipped blocks counted everywhere": (False, False)}


def auto_output(noisy: np.ndarray, residual: np.ndarray, *, mask_level: bool = True,
                mask_low: bool = True, **constants) -> np.ndarray:
    """auto's output with other constants: ``window``, ``quantile``, ``factor`` of the gain and
    ``low_sigma`` of the low-frequency step (0: none); the module's for those not given.
    ``mask_level`` / ``mask_low`` False count clipped blocks in the level / the low pass."""
    from atbsn_edge.strength import (AUTO_BLOCK, AUTO_LOW_SIGMA, LowPass, _unclipped_blocks,
                                     auto_gain, low_pass_keep)

    low_sigma = constants.pop("low_sigma", AUTO_LOW_SIGMA)
    unclipped = _unclipped_blocks(noisy, AUTO_BLOCK)    # once, for the gain and the low pass
    correction = auto_gain(residual, block=AUTO_BLOCK, unclipped=unclipped if mask_level else None,
                           **constants)[:, :, None] * residual
    if low_sigma:
        keep = low_pass_keep(noisy, unclipped) if mask_low else None
        LowPass(correction, low_sigma, keep=keep).subtract_from(correction, 0)
    return noisy + correction


def score_rows(results: dict, chosen_on: list, psnr, **constants) -> tuple[float, list[str]]:
    """auto with ``constants`` on every set: the mean gain over the noisy input on the
    ``chosen_on`` rows, and per set the cell 'mean gain, pairs below the input, worst change'."""
    chosen_names = {r["name"] for r in chosen_on}
    gains = {name: {r["name"]: psnr(auto_output(*r["images"][:2], **constants), r["images"][2])
                    - r["noisy"] for r in rows}
             for name, rows in results.items()}
    chosen = [g for by_name in gains.values() for k, g in by_name.items() if k in chosen_names]
    cells = [f"{np.mean(list(g.values())):+.3f} dB, {sum(v < 0 for v in g.values())}, "
             f"{min(g.values()):+.2f}" for g in gains.values()]
    return (float(np.mean(chosen)) if chosen else float("nan")), cells


def print_clipped_rules(results: dict, psnr) -> None:
    """auto with each use of its clipped-block mask, and without its low-frequency step."""
    print()
    print("auto and clipping: mean gain over the noisy input, pairs below it, worst change")
    print()
    print("| rule | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    rules = [(name, {"mask_level": level, "mask_low": low})
             for name, (level, low) in CLIPPED_RULES.items()]
    rules.append(("no low-frequency step (auto before 2026-12-06, late)", {"low_sigma": 0.0}))
    for name, constants in rules:
        _, cells = score_rows(results, [], psnr, **constants)
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_low_sigmas(results: dict, chosen_on: list, sigmas: list[float], psnr) -> None:
    """auto at each sigma of its low-frequency step (the other constants the module's)."""
    print()
    print(f"auto's low-frequency step: mean gain over the noisy input, pairs below it, worst "
          f"change; chosen by the mean on the {len(chosen_on)} pairs chosen on")
    print()
    print("| low sigma | chosen on | " + " | ".join(results) + " |")
    print("|---:|---:|" + "---|" * len(results))
    for sigma in sigmas:
        key, cells = score_rows(results, chosen_on, psnr, low_sigma=sigma)
        print(f"| {sigma:g} | {key:+.3f} dB | " + " | ".join(cells) + " |")


AUTO_GRID = {"window": (7, 11, 15, 21),
             "quantile": (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
             "factor": (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)}


def print_auto_grid(results: dict, chosen_on: list, psnr, top: int) -> None:
    """auto at every window x quantile x factor: mean gain over the noisy input, pairs below
    it and the worst change, sorted by the mean gain on ``chosen_on`` (a subset of the rows)."""
    import itertools

    from atbsn_edge.strength import AUTO_LOW_SIGMA

    table = []
    for window, quantile, factor in itertools.product(*AUTO_GRID.values()):
        key, cells = score_rows(results, chosen_on, psnr, window=window, quantile=quantile,
                                factor=factor)
        table.append((key, window, quantile, factor, cells))
    table.sort(key=lambda row: -row[0])
    print()
    print(f"auto's constants (block 8, gain at most 1, low sigma {AUTO_LOW_SIGMA:g}): mean gain "
          f"over the noisy input, pairs below it, worst change; the best {top} by the mean on the "
          f"{len(chosen_on)} pairs chosen on")
    print()
    print("| window | quantile | factor | chosen on | " + " | ".join(results) + " |")
    print("|---:|---:|---:|---:|" + "---|" * len(results))
    for key, window, quantile, factor, cells in table[:top]:
        print(f"| {window} | {quantile:g} | {factor:g} | {key:+.3f} dB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
