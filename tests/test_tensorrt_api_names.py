"""Every TensorRT Python name the engine builder and the runtime use exists in the real bindings
of every supported TensorRT version (10.3 as on JetPack 6, the newest 10.x, the newest 11.x), or
is used behind a version guard. Runs without TensorRT and without network: the name lists in
``tests/data/tensorrt_names/`` come from the ``tensorrt-cu12-bindings`` wheels
(``python benchmarks/extract_tensorrt_names.py`` regenerates them).

The guard convention (details in ``tests/tensorrt_names.py``): a name that some supported
version lacks is used only

* as a string in ``getattr(obj, "NAME", default)`` / ``hasattr(obj, "NAME")``, or as
  ``obj.NAME`` under an ``if``/``and``/conditional expression that tests
  ``hasattr(..., "NAME")`` (or ``getattr(..., "NAME", ...)``), or in a ``try:`` body whose
  handler catches ``AttributeError``; or
* anywhere, when the module lists it in a module-level
  ``VERSION_GUARDED_NAMES = {"NAME", ...}``: the module promises every use sits behind a
  version test such as ``if trt_major < 11:``.

A module's own attribute that shares a word with a TensorRT binding (``args.workspace_size``)
goes in its module-level ``NOT_TENSORRT_NAMES = {...}``; ``self.X`` is never checked.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tensorrt_names import (DATA_DIR, QUALIFIED_REMOVALS, find_unguarded, load_name_lists,
                            version_key)

ROOT = Path(__file__).resolve().parent.parent
TENSORRT_MODULES = ["atbsn_edge/export/onnx_to_tensorrt.py",
                    "atbsn_edge/export/tensorrt_python_api.py",
                    "atbsn_edge/export/tensorrt_trtexec.py",
                    "atbsn_edge/export/tensorrt_engine_options.py",
                    "atbsn_edge/runtimes/tensorrt_runtime.py"]


def _core_names() -> list[str]:
    spec = importlib.util.spec_from_file_location(
        "extract_tensorrt_names", ROOT / "benchmarks" / "extract_tensorrt_names.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CORE_NAMES


LISTS = load_name_lists()


def _majors() -> set[int]:
    return {version_key(v)[0] for v in LISTS}


def test_lists_cover_10_and_11():
    assert {10, 11} <= _majors(), f"name lists in {DATA_DIR}: {sorted(LISTS)}"
    assert "10.3.0" in LISTS, "JetPack 6's TensorRT 10.3 list is missing"


@pytest.mark.parametrize("version", list(LISTS))
def test_list_holds_the_core_names(version):
    """A list without these would mean the extraction broke, and every check passes on it."""
    missing = [n for n in _core_names() if n not in LISTS[version]]
    assert not missing, f"tensorrt-{version}.txt lacks {missing}"
    assert 500 < len(LISTS[version]) < 5000
    path = DATA_DIR / f"tensorrt-{version}.txt"
    assert path.read_text(encoding="utf-8").startswith(
        f"# names from tensorrt-cu12-bindings=={version} (tensorrt.so), extracted by "
        "benchmarks/extract_tensorrt_names.py")


def test_known_differences_between_10_and_11():
    """What the builder's fallbacks are about; guards a regenerated list against drift."""
    v10 = [v for v in LISTS if version_key(v)[0] == 10]
    v11 = [v for v in LISTS if version_key(v)[0] == 11]
    for name in ["FP16", "EXPLICIT_BATCH", "IInt8EntropyCalibrator2", "int8_calibrator",
                 "platform_has_fast_fp16", "OBEY_PRECISION_CONSTRAINTS", "device_memory_size"]:
        assert all(name in LISTS[v] for v in v10), name
        assert not any(name in LISTS[v] for v in v11), name
    for name in ["STRONGLY_TYPED", "execute_async_v3", "set_input_shape", "DLA", "DLA_core",
                 "default_device_type", "GPU_FALLBACK", "num_DLA_cores", "device_memory_size_v2"]:
        assert all(name in names for names in LISTS.values()), name
    for name in ["execute_async_v2", "num_bindings", "get_binding_index", "max_workspace_size",
                 "build_engine"]:
        assert not any(name in names for names in LISTS.values()), name


def test_every_module_that_calls_tensorrt_is_checked():
    """A module that uses the TensorRT Python API (``trt.<name>``) is in TENSORRT_MODULES, and
    every module listed exists: a moved or renamed one skipped before, and its names went
    unchecked with the run still green."""
    import re

    uses = re.compile(r"\btrt\.(?!add_argument\b)[A-Za-z_]")
    calling = {str(path.relative_to(ROOT)) for folder in ("atbsn_edge", "examples")
               for path in (ROOT / folder).rglob("*.py") if uses.search(path.read_text("utf-8"))}
    assert calling, "no module uses trt.<name>: the pattern no longer finds the API's users"
    assert calling <= set(TENSORRT_MODULES), sorted(calling - set(TENSORRT_MODULES))
    missing = [module for module in TENSORRT_MODULES if not (ROOT / module).is_file()]
    assert not missing, f"listed but gone (update TENSORRT_MODULES): {missing}"


@pytest.mark.parametrize("module", TENSORRT_MODULES)
def test_module_uses_only_guarded_version_dependent_names(module):
    path = ROOT / module
    findings = find_unguarded(path.read_text(encoding="utf-8"), LISTS, str(path))
    assert not findings, (
        f"{module} uses TensorRT names that a supported version lacks, without a guard "
        "(getattr/hasattr, or VERSION_GUARDED_NAMES; see tests/tensorrt_names.py):\n"
        + "\n".join(f"  {f}" for f in findings))


# --- the checker itself -----------------------------------------------------------------------

PLANTED = """
import tensorrt as trt

def build(builder, network, config, calibrator):
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    context = engine.create_execution_context()
    context.execute_async_v3(0)
    return flags

class Calibrator(trt.IInt8EntropyCalibrator2):
    pass
"""


def _v11() -> tuple[str, ...]:
    return tuple(v for v in LISTS if version_key(v)[0] >= 11)


def test_planted_removed_names_are_reported():
    findings = find_unguarded(PLANTED, LISTS)
    by_name = {f.name: f for f in findings}
    for name in ["FP16", "BuilderFlag.FP16", "BuilderFlag.INT8", "int8_calibrator",
                 "EXPLICIT_BATCH", "IInt8EntropyCalibrator2"]:
        assert name in by_name, f"{name} not reported; findings: {findings}"
        assert by_name[name].missing_in == _v11()
    # names every version has are not reported
    assert not {"set_flag", "BuilderFlag", "create_execution_context",
                "execute_async_v3", "NetworkDefinitionCreationFlag"} & set(by_name)
    assert "missing in TensorRT 11" in str(by_name["FP16"])


def test_name_added_after_10_3_is_reported_for_jetpack():
    findings = find_unguarded("def f(config):\n    config.tiling_optimization_level = 1\n",
                              LISTS)
    assert [f.name for f in findings] == ["tiling_optimization_level"]
    assert "10.3.0" in findings[0].missing_in and findings[0].line == 2


GUARDED = '''
import tensorrt as trt

VERSION_GUARDED_NAMES = {"EXPLICIT_BATCH"}
NOT_TENSORRT_NAMES = frozenset({"workspace_size"})

def build(config, network_flags, args, calibrator):
    fp16 = getattr(trt.BuilderFlag, "FP16", None)
    if fp16 is not None:
        config.set_flag(fp16)
    if hasattr(trt.BuilderFlag, "INT8"):
        config.set_flag(trt.BuilderFlag.INT8)
        if calibrator is not None and hasattr(config, "int8_calibrator"):
            config.int8_calibrator = calibrator
    ok = hasattr(trt, "IInt8EntropyCalibrator2") and trt.IInt8EntropyCalibrator2
    try:
        fast = builder.platform_has_fast_fp16
    except AttributeError:
        fast = False
    if int(trt.__version__.split(".")[0]) < 11:
        network_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    self_value = args.workspace_size
    return ok, fast, self_value
'''


def test_guarded_uses_pass():
    assert find_unguarded(GUARDED, LISTS) == []


def test_two_argument_getattr_is_not_a_guard():
    findings = find_unguarded('import tensorrt as trt\nx = getattr(trt.BuilderFlag, "FP16")\n',
                              LISTS)
    assert {f.name for f in findings} == {"FP16", "BuilderFlag.FP16"}


def test_guard_covers_only_the_guarded_block():
    source = ("import tensorrt as trt\n"
              "if hasattr(trt.BuilderFlag, 'FP16'):\n"
              "    config.set_flag(trt.BuilderFlag.FP16)\n"
              "config.set_flag(trt.BuilderFlag.FP16)\n")
    assert [(f.name, f.line) for f in find_unguarded(source, LISTS)] == [
        ("BuilderFlag.FP16", 4), ("FP16", 4)]


def test_self_and_generic_names_are_not_checked():
    source = ("class R:\n"
              "    def run(self, a):\n"
              "        self.context = 1\n"
              "        self.device_memory_size = 2\n"
              "        return a.strides, a.update, a.context\n")
    assert find_unguarded(source, LISTS) == []


def test_qualified_removals_name_removed_builder_flags():
    assert all(key.startswith("BuilderFlag.") for key in QUALIFIED_REMOVALS)
