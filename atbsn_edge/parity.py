"""``python -m atbsn_edge.parity BUNDLE``: does the artifact compute what PyTorch computes?

Runs the bundle's reference crops through the artifact and compares with the PyTorch outputs
stored beside them (no PyTorch needed), or, with ``--images``, denoises given images tiled
through both the artifact and the bundle's checkpoint (PyTorch needed). With ``--clean``
references it also reports both outputs' PSNR against clean. Prints a table, writes JSON and
error heatmaps on request; exit code 0 when every comparison passes the thresholds of the
artifact's precision (see ``atbsn_edge/verification.py``), 1 when one fails.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .cli import run_cli
from .errors import AtbsnError
from .hashing import file_sha256
from .verification import (THRESHOLDS, Comparison, compare, error_heatmap, mean_psnr_drop,
                           set_failures)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m atbsn_edge.parity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="bundle folder written by atbsn_edge.export")
    p.add_argument("--images", nargs="+", help="noisy images to use instead of the reference crops")
    p.add_argument("--clean", nargs="+", help="clean references of --images, same order")
    p.add_argument("--checkpoint", type=Path,
                   help="checkpoint for --images (default: the one named in the manifest)")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--heatmaps", type=Path, help="folder for one error heatmap PNG per input")
    return p


def read_manifest(bundle: Path) -> dict:
    """The bundle's manifest, checked against the artifact file it names."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
        artifact = bundle / manifest["artifact"]
    except (OSError, ValueError, KeyError) as exc:
        raise AtbsnError(f"{bundle} is not a bundle: cannot read manifest.json ({exc})") from None
    if not artifact.is_file():
        raise AtbsnError(f"{bundle}: the manifest names {artifact.name}, which is missing")
    if file_sha256(artifact) != manifest.get("artifact_sha256"):
        raise AtbsnError(f"{bundle}: {artifact.name} does not match the manifest's SHA-256 "
                         "(modified or truncated); re-export the bundle")
    return manifest


def reference_pairs(bundle: Path, runtime) -> list[tuple[str, np.ndarray, np.ndarray, None]]:
    """(name, artifact output, torch output, clean) for the bundle's reference crops."""
    from .export.reference import load_reference

    inputs, outputs, names = load_reference(bundle)
    got = runtime.run(inputs)
    return [(n, g, o, None) for n, g, o in zip(names, got, outputs)]


def image_pairs(args: argparse.Namespace, manifest: dict, tiled) -> list:
    """(name, artifact output, torch output, clean) for user images, tiled the same way."""
    from .imageio import read_image
    from .inputs import expand_inputs
    from .pipeline import open_tiled

    noisy = expand_inputs(args.images)
    clean = expand_inputs(args.clean) if args.clean else [None] * len(noisy)
    if len(clean) != len(noisy):
        raise AtbsnError(f"--images has {len(noisy)} files, --clean {len(clean)}")
    checkpoint = args.checkpoint or Path(manifest.get("checkpoint", ""))
    hole = manifest["metadata"].get("hole_size")
    spec = tiled.spec
    reference = open_tiled(checkpoint, hole_size=int(hole) if hole else None,
                           tile=spec.tile_h, overlap=spec.overlap, batch=1)
    pairs = []
    with reference:
        for n, c in zip(noisy, clean):
            rgb = read_image(n).rgb
            got = tiled.denoise(rgb).transpose(2, 0, 1)
            want = reference.denoise(rgb).transpose(2, 0, 1)
            truth = read_image(c).rgb.transpose(2, 0, 1) if c is not None else None
            pairs.append((n.name, got, want, truth))
    return pairs


def render(results: list[Comparison], precision: str, failures: dict[str, list[str]],
           overall: list[str]) -> str:
    lines = ["| input | max abs | mean abs | rel L2 | PSNR vs torch | PSNR clean torch / artifact | result |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        clean = (f"{r.psnr_clean_torch:.3f} / {r.psnr_clean_artifact:.3f}"
                 if r.psnr_clean_torch is not None else "-")
        verdict = "pass" if not failures[r.name] else "FAIL: " + "; ".join(failures[r.name])
        lines.append(f"| {r.name} | {r.max_abs:.3g} | {r.mean_abs:.3g} | {r.rel_l2:.2e} | "
                     f"{r.psnr_vs_torch:.2f} | {clean} | {verdict} |")
    limits = THRESHOLDS[precision]
    drop = mean_psnr_drop(results)
    if drop is not None:
        scored = [r for r in results if r.psnr_drop is not None]
        torch_mean = np.mean([r.psnr_clean_torch for r in scored])
        artifact_mean = np.mean([r.psnr_clean_artifact for r in scored])
        lines.append(f"\nmean PSNR vs clean over {len(scored)} images: torch {torch_mean:.3f} dB, "
                     f"artifact {artifact_mean:.3f} dB, drop {drop:.3f} dB"
                     + (" FAIL" if overall else ""))
    lines.append(f"\nprecision {precision}: thresholds rel L2 <= {limits.rel_l2:.0e}"
                 + (f", max abs <= {limits.max_abs}" if limits.max_abs is not None else "")
                 + (f", mean PSNR drop <= {limits.max_psnr_drop_db} dB" if limits.max_psnr_drop_db else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .pipeline import open_artifact_tiled

        manifest = read_manifest(args.bundle)
        precision = manifest.get("precision", manifest["metadata"].get("precision", "fp32"))
        with open_artifact_tiled(args.bundle) as tiled:
            pairs = image_pairs(args, manifest, tiled) if args.images else \
                reference_pairs(args.bundle, tiled.runtime)
        results = [compare(name, got, want, clean) for name, got, want, clean in pairs]
        failures = {r.name: r.failures(THRESHOLDS[precision]) for r in results}
        overall = set_failures(results, THRESHOLDS[precision])
        print(render(results, precision, failures, overall))
        if args.heatmaps:
            import cv2

            args.heatmaps.mkdir(parents=True, exist_ok=True)
            for name, got, want, _ in pairs:
                target = args.heatmaps / (name.replace("/", "_").replace("@", "_") + ".png")
                with atomic_path(target) as tmp:
                    ok, png = cv2.imencode(".png", error_heatmap(got, want))
                    tmp.write_bytes(png.tobytes())
        passed = not any(failures.values()) and not overall
        if args.json:
            report = {"bundle": str(args.bundle), "target": manifest.get("target"),
                      "precision": precision, "passed": passed,
                      "thresholds": THRESHOLDS[precision].__dict__,
                      "mean_psnr_drop": mean_psnr_drop(results), "set_failures": overall,
                      "results": [r.as_dict() for r in results]}
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
        return 0 if passed else 1

    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())
