"""Every module imports with no optional extra installed; the deployment side needs no torch."""
from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import atbsn_edge

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ["onnx", "onnxruntime", "onnxslim", "onnxsim", "openvino", "nncf", "coremltools",
          "tensorrt", "pycuda", "modelopt"]
# Modules a Jetson without PyTorch runs (image I/O, tiling, runtimes, CLI plumbing).
TORCH_FREE = ["atbsn_edge", "atbsn_edge.errors", "atbsn_edge.atomic", "atbsn_edge.imageio",
              "atbsn_edge.inputs", "atbsn_edge.tiling", "atbsn_edge.cli", "atbsn_edge.arguments",
              "atbsn_edge.output_paths", "atbsn_edge.assets",
              "atbsn_edge.progress",
              "atbsn_edge.runtimes", "atbsn_edge.runtimes.base", "atbsn_edge.hashing",
              "atbsn_edge.pipeline", "atbsn_edge.strength", "atbsn_edge.parity", "atbsn_edge.verification",
              "atbsn_edge.runtimes.registry", "atbsn_edge.runtimes.onnxruntime_runtime",
              "atbsn_edge.runtimes.openvino_runtime", "atbsn_edge.runtimes.tensorrt_runtime",
              "atbsn_edge.bundle", "atbsn_edge.bundle.manifest", "atbsn_edge.bundle.metadata",
              "atbsn_edge.bundle.files", "atbsn_edge.bundle.reference", "atbsn_edge.bundle.commands",
              "atbsn_edge.denoise", "atbsn_edge.compare", "atbsn_edge.profile",
              "atbsn_edge.profiling.timing", "atbsn_edge.profiling.floors",
              "atbsn_edge.profiling.machine", "atbsn_edge.profiling.tegrastats",
              "atbsn_edge.profiling.graph_cost"]
# What adds a target to a bundle on a device (export --from-bundle): no torch either.
TORCH_FREE_EXPORT = ["atbsn_edge.export.__main__", "atbsn_edge.export.job",
                     "atbsn_edge.export.targets", "atbsn_edge.export.onnx_target",
                     "atbsn_edge.export.onnx_to_openvino", "atbsn_edge.export.tensorrt_target",
                     "atbsn_edge.export.onnx_to_tensorrt", "atbsn_edge.export.onnx_tensorrt_readiness",
                     "atbsn_edge.export.tensorrt_onnx_support",
                     "atbsn_edge.export.tensorrt_engine_options",
                     "atbsn_edge.export.tensorrt_python_api", "atbsn_edge.export.tensorrt_trtexec",
                     "atbsn_edge.export.onnx_fp32_to_fp16", "atbsn_edge.export.onnx_fp32_to_int8",
                     "atbsn_edge.export.openvino_fp32_to_int8"]

_BLOCKER = """
import importlib.abc, json, sys
blocked = set(json.loads(sys.argv[1]))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in blocked:
            raise ImportError(f'{name} is blocked for this test')
sys.meta_path.insert(0, Block())
import importlib
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
print('imported', len(json.loads(sys.argv[2])))
"""


def all_modules() -> list[str]:
    names = ["atbsn_edge"]
    for info in pkgutil.walk_packages(atbsn_edge.__path__, "atbsn_edge."):
        names.append(info.name)
    return names


def import_with_blocked(blocked: list[str], modules: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _BLOCKER, json.dumps(blocked), json.dumps(modules)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_every_module_imports_without_optional_extras():
    modules = all_modules()
    assert len(modules) > 15
    result = import_with_blocked(EXTRAS, modules)
    assert result.returncode == 0, result.stderr
    assert f"imported {len(modules)}" in result.stdout


def test_deployment_modules_import_without_torch():
    result = import_with_blocked(EXTRAS + ["torch"], TORCH_FREE)
    assert result.returncode == 0, result.stderr


def test_converters_from_a_bundle_import_without_torch():
    result = import_with_blocked(EXTRAS + ["torch"], TORCH_FREE_EXPORT)
    assert result.returncode == 0, result.stderr


def test_runtimes_never_import_the_exporters():
    """A device with only a runtime needs no exporter: nothing it imports reaches export/."""
    probe = ("import sys, importlib\n"
             f"for m in {TORCH_FREE!r}: importlib.import_module(m)\n"
             "bad = sorted(m for m in sys.modules if m.startswith('atbsn_edge.export')"
             " or m.startswith('atbsn_edge.models'))\n"
             "print(bad); sys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_extra_names_what_to_install():
    from atbsn_edge.errors import MissingDependencyError, require

    try:
        require("atbsn_edge_no_such_backend", "openvino")
    except MissingDependencyError as exc:
        assert "pip install 'atbsn-edge[openvino]'" in str(exc)
    else:
        raise AssertionError("require() did not raise for a missing module")
