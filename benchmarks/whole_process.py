"""Whole process of denoising one large photo through the CLI: exported bundle against the
PyTorch checkpoint, at ``--tile auto`` (the default) and at fixed 512 tiles, alternating.

Writes the synthetic-noise 4000 x 3000 photograph of ``benchmarks/denoise_large.py``, then runs
``python -m atbsn_edge.denoise`` on it in a child process per configuration, the
configurations alternating for ``--rounds`` rounds, and prints the median wall time, the peak
resident memory of each child (``os.wait4``), the tiles each run computed, and the speed-ups,
with the CPU named.

    python benchmarks/whole_process.py --bundle BUNDLE [--checkpoint CKPT] --rounds 2
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


LARGE_TILES = "checkpoint, --tile auto at OpenVINO's tile area"
# the denoise CLI with PyTorch's --tile auto bound raised to OpenVINO's (no flag sets it)
_DENOISE_AT_OPENVINO_AREA = (
    "import sys; from atbsn_edge.runtimes.base import Runtime; "
    "from atbsn_edge.runtimes.openvino_runtime import OPENVINO_AUTO_TILE_AREA; "
    "Runtime.auto_tile_area = OPENVINO_AUTO_TILE_AREA; "
    "from atbsn_edge.denoise import main; sys.exit(main(sys.argv[1:]))")


def configurations(bundle: str, checkpoint: str | None,
                   large_tiles: bool = False) -> dict[str, list[str]]:
    """Name -> denoise flags of every configuration timed."""
    source = ["--checkpoint", checkpoint] if checkpoint else []
    configs = {
        "bundle, --tile auto": ["--artifact", bundle],
        "bundle, --tile 512": ["--artifact", bundle, "--tile", "512"],
        "checkpoint, --tile auto": source,
        "checkpoint, --tile 512": [*source, "--tile", "512"],
    }
    if large_tiles:
        configs[LARGE_TILES] = source
    return configs


def run_once(image: Path, out: Path, flags: list[str], threads: int,
             large_tiles: bool = False) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, the pipeline's line naming its tiles) of one CLI run
    (``large_tiles``: PyTorch given OpenVINO's --tile auto bound)."""
    program = ["-c", _DENOISE_AT_OPENVINO_AREA] if large_tiles else ["-m", "atbsn_edge.denoise"]
    command = [sys.executable, *program, str(image), "-o", str(out),
               "--overwrite", "--threads", str(threads), "-v", *flags]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TQDM_DISABLE": "1"})
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"denoise {' '.join(flags)} failed: {stderr[-2000:]}")
    tiles = next((line.split(": ", 1)[-1] for line in stderr.splitlines()
                  if " tiles of " in line), "tiles 512 (fixed)")
    return elapsed, usage.ru_maxrss / 1024, tiles


def main() -> None:
    from atbsn_edge.cli import new_parser

    parser = new_parser("whole_process.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--bundle", required=True, help="exported bundle (e.g. openvino-int8)")
    parser.add_argument("--checkpoint", help="checkpoint (default: the bundled demo model)")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-large-tiles", action="store_true",
                        help="also time the checkpoint with OpenVINO's larger --tile auto bound "
                             "(what the bundle's larger tiles alone are worth)")
    args = parser.parse_args()
    from atbsn_edge.profiling.machine import cpu_info

    configs = configurations(args.bundle, args.checkpoint, args.checkpoint_large_tiles)
    times: dict[str, list[float]] = {name: [] for name in configs}
    peaks: dict[str, float] = {name: 0.0 for name in configs}
    tiles: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "large.png"
        # in a child: a forked child's peak RSS counts the parent's pages until it execs, so
        # the parent stays small (os.wait4 then gives each run's own peak)
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                        "from denoise_large import make_image; "
                        f"make_image(Path({str(image)!r}), {args.width}, {args.height})"],
                       check=True)
        for round_index in range(args.rounds):
            for name, flags in configs.items():
                seconds, peak, tiles[name] = run_once(image, Path(tmp) / "out.png", flags,
                                                      args.threads, name == LARGE_TILES)
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
                print(f"round {round_index + 1}: {name}: {seconds:.2f} s", file=sys.stderr,
                      flush=True)
    info = cpu_info()
    print(f"CPU: {info['model']}; flags: {' '.join(info['flags_that_matter'])}; "
          f"lacks: {' '.join(info['missing'])}; {os.cpu_count()} cores, --threads {args.threads}; "
          f"{args.width}x{args.height} PNG, "
          f"{args.rounds} alternating rounds")
    print("| configuration | median s (all runs) | peak RSS | tiles |")
    print("|---|---|---|---|")
    for name in configs:
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {name} | {statistics.median(times[name]):.2f} ({runs}) | {peaks[name]:.0f} MB "
              f"| {tiles[name]} |")
    median = {name: statistics.median(values) for name, values in times.items()}
    for tile in ("auto", "512"):
        print(f"checkpoint / bundle at --tile {tile}: "
              f"{median[f'checkpoint, --tile {tile}'] / median[f'bundle, --tile {tile}']:.2f}x")
    if LARGE_TILES in median:
        print(f"{LARGE_TILES} / bundle at --tile auto: "
              f"{median[LARGE_TILES] / median['bundle, --tile auto']:.2f}x")
    for source in ("bundle", "checkpoint"):
        print(f"{source}: --tile 512 / --tile auto: "
              f"{median[f'{source}, --tile 512'] / median[f'{source}, --tile auto']:.2f}x")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
