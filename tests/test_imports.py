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
              "atbsn_edge.inputs", "atbsn_edge.tiling", "atbsn_edge.cli", "atbsn_edge.assets",
              "atbsn_edge.runtimes", "atbsn_edge.runtimes.base", "atbsn_edge.hashing",
              "atbsn_edge.pipeline", "atbsn_edge.parity", "atbsn_edge.verification",
              "atbsn_edge.runtimes.registry", "atbsn_edge.runtimes.onnxruntime_runtime",
              "atbsn_edge.runtimes.openvino_runtime", "atbsn_edge.export.reference"]

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


def test_missing_extra_names_what_to_install():
    from atbsn_edge.errors import MissingDependencyError, require

    try:
        require("atbsn_edge_no_such_backend", "openvino")
    except MissingDependencyError as exc:
        assert "pip install 'atbsn-edge[openvino]'" in str(exc)
    else:
        raise AssertionError("require() did not raise for a missing module")
