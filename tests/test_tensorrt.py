"""TensorRT engine build and runtime: the logic around TensorRT, tested without it.

TensorRT and pycuda cannot be installed here (no NVIDIA GPU, libraries only on NVIDIA's index
or JetPack). These tests check OUR code: the trtexec command lines, the choice of builder, the
sidecar written around a build, the version/GPU check, the messages. A fake ``trtexec`` script
stands in for the real one to test the orchestration; nothing here claims that TensorRT builds
or runs these engines (docs/jetson.md says what has not run on NVIDIA hardware yet).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from atbsn_edge.bundle.metadata import read_sidecar, write_sidecar
from atbsn_edge.errors import AtbsnError, MissingDependencyError
from atbsn_edge.export import onnx_to_tensorrt as o2t
from atbsn_edge.export import tensorrt_python_api as trt_api
from atbsn_edge.export.onnx_to_tensorrt import (EngineBuilderUnavailable, EngineOptions, Profile,
                                                build_engine, device_command, engine_profile,
                                                parse_trtexec_output, trtexec_command)
from atbsn_edge.runtimes import tensorrt_runtime as trt_rt
from atbsn_edge.runtimes.tensorrt_runtime import check_engine_compatible, rebuild_command
from conftest import checkout_env

STATIC_META = {"model": "student_c", "hole_size": "", "stride": "32", "default_overlap": "64",
               "precision": "fp16", "tile": "512x512", "batch": "1", "value_range": "0,255",
               "toolkit_version": "0.1.0"}
DYNAMIC_META = {**STATIC_META, "tile": "dynamic", "batch": "dynamic"}


def _cmd(precision="fp16", strongly_typed=True, version="10.3.0", **kw):
    profile = kw.pop("profile", None)
    return trtexec_command("m.onnx", "m.engine", EngineOptions(precision=precision, **kw),
                           strongly_typed, profile=profile, timing_cache="t.cache",
                           trt_version=version)


# --- trtexec command lines -------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_strongly_typed_command_has_no_precision_flags(precision):
    cmd = _cmd(precision)
    assert cmd[:4] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine",
                       "--memPoolSize=workspace:1024"]
    assert "--stronglyTyped" in cmd
    assert "--fp16" not in cmd and "--int8" not in cmd   # precision comes from the graph
    assert ("--noTF32" in cmd) == (precision == "fp32")
    assert "--timingCacheFile=t.cache" in cmd and cmd[-1] == "--skipInference"
    assert not any(c.startswith(("--minShapes", "--useDLACore")) for c in cmd)


def test_weakly_typed_fallback_uses_precision_flags():
    fp16 = _cmd("fp16", strongly_typed=False, version="8.6.2")
    int8 = _cmd("int8", strongly_typed=False, version="8.6.2")
    assert "--fp16" in fp16 and "--stronglyTyped" not in fp16 and "--int8" not in fp16
    assert "--int8" in int8 and "--fp16" not in int8
    assert "--fp16" not in _cmd("fp32", strongly_typed=False, version="8.6.2")
    assert _cmd("fp16", strongly_typed=False, version="8.5.2")[-1] == "--buildOnly"


def test_tensorrt_11_is_always_strongly_typed():
    cmd = _cmd("int8", version="11.4.0")
    assert not {"--stronglyTyped", "--int8", "--fp16"} & set(cmd)
    with pytest.raises(AtbsnError, match="strongly typed"):
        _cmd("fp16", strongly_typed=False, version="11.4.0")


def test_static_and_dynamic_profiles():
    assert engine_profile(STATIC_META, EngineOptions()) is None       # the ONNX's own shape
    static = engine_profile(DYNAMIC_META, EngineOptions(shape=(256, 384)))
    assert static == Profile("input", (1, 3, 256, 384), (1, 3, 256, 384), (1, 3, 256, 384))
    assert engine_profile(DYNAMIC_META, EngineOptions()).opt == (1, 3, 512, 512)
    dynamic = engine_profile(DYNAMIC_META, EngineOptions(dynamic=True))
    assert (dynamic.min, dynamic.opt, dynamic.max) == ((1, 3, 64, 64), (1, 3, 512, 512),
                                                       (1, 3, 2048, 2048))
    cmd = _cmd(profile=dynamic, dynamic=True)
    assert "--minShapes=input:1x3x64x64" in cmd and "--optShapes=input:1x3x512x512" in cmd
    assert "--maxShapes=input:1x3x2048x2048" in cmd
    with pytest.raises(AtbsnError, match="re-export the bundle with --dynamic"):
        engine_profile(STATIC_META, EngineOptions(dynamic=True))
    with pytest.raises(AtbsnError, match="multiple"):
        engine_profile(DYNAMIC_META, EngineOptions(shape=(500, 512)))


def test_dla_flags_and_refusals():
    cmd = _cmd("fp16", dla_core=0, workspace_mb=512)
    assert cmd[cmd.index("--useDLACore=0") + 1] == "--allowGPUFallback"
    assert "--memPoolSize=workspace:512" in cmd
    with pytest.raises(AtbsnError, match="static shapes"):
        EngineOptions(precision="fp16", dla_core=0, dynamic=True).check()
    with pytest.raises(AtbsnError, match="fp16 and int8 only"):
        EngineOptions(precision="fp32", dla_core=0).check()


def test_parse_trtexec_output():
    assert parse_trtexec_output("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec")[
        "tensorrt_version"] == "10.3.0"
    assert parse_trtexec_output("[TensorRT v8502] #")["tensorrt_version"] == "8.5.2"
    found = parse_trtexec_output("[I] TensorRT version: 10.16.1\n[I] Selected Device: Orin\n"
                                 "[I] Compute Capability: 8.7\n")
    assert found == {"tensorrt_version": "10.16.1", "gpu_name": "Orin", "compute_capability": "8.7"}


def test_device_command_and_runtime_rebuild_command_agree(tmp_path):
    bundle = tmp_path / "my bundle"
    assert device_command(bundle, "trt-fp16") == (
        f"python -m atbsn_edge.export --target trt-fp16 --from-bundle '{bundle}'")
    assert rebuild_command(bundle / "model-fp16.engine", "fp16") == device_command(bundle, "trt-fp16")
    assert device_command("b", "trt-int8", EngineOptions(dla_core=1, workspace_mb=2048)).endswith(
        "--from-bundle b --workspace-mb 2048 --dla-core 1")


def test_strong_typing_choice_per_version():
    """Our branching on the installed TensorRT (a namespace with the two enum names, not a
    TensorRT): 10.x sets STRONGLY_TYPED, 8.x falls back to flags, 11.x needs no flag."""
    def trt(version, **flags):
        return SimpleNamespace(__version__=version,
                               NetworkDefinitionCreationFlag=SimpleNamespace(**flags))

    assert trt_api._strongly_typed_flag(trt("10.3.0", STRONGLY_TYPED=1), EngineOptions()) == (True, 1)
    assert trt_api._strongly_typed_flag(trt("8.6.2", EXPLICIT_BATCH=0), EngineOptions()) == (False, None)
    assert trt_api._strongly_typed_flag(trt("11.4.0"), EngineOptions()) == (True, None)
    assert trt_api._strongly_typed_flag(trt("10.3.0", STRONGLY_TYPED=1),
                                    EngineOptions(strongly_typed=False)) == (False, None)
    with pytest.raises(AtbsnError):
        trt_api._strongly_typed_flag(trt("11.0.0"), EngineOptions(strongly_typed=False))


def test_parser_errors_lists_every_error():
    class Err:
        def __init__(self, node, name, op, desc):
            self._v = (node, name, op, desc)

        def node(self): return self._v[0]
        def node_name(self): return self._v[1]
        def node_operator(self): return self._v[2]
        def desc(self): return self._v[3]
        def code(self): return "ErrorCode.UNSUPPORTED_NODE"

    class Old8xErr:  # TensorRT 8.x errors have no node name / operator
        def node(self): return 3
        def desc(self): return "bad attribute"
        def code(self): return "ErrorCode.INVALID_NODE"

    errors = [Err(12, "conv3", "Conv", "unsupported pads"), Err(-1, "", "", "opset 30"), Old8xErr()]
    parser = SimpleNamespace(num_errors=3, get_error=lambda i: errors[i])
    text = trt_api.parser_errors(parser)
    assert "[1] node 12, Conv 'conv3': unsupported pads" in text
    assert "[2] graph: opset 30" in text and "[3] node 3: bad attribute" in text


# --- builder choice and the trtexec orchestration ---------------------------------------------

@pytest.fixture
def no_tensorrt(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)   # import tensorrt -> ImportError
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "cache"))


def _onnx(tmp_path) -> Path:
    path = tmp_path / "bundle" / "model-fp16.onnx"
    path.parent.mkdir()
    path.write_bytes(b"not parsed by the fake trtexec")
    return path


def test_no_builder_raises_unavailable(no_tensorrt, monkeypatch, tmp_path):
    monkeypatch.setattr(o2t.shutil, "which", lambda name: None)
    onnx = _onnx(tmp_path)
    with pytest.raises(EngineBuilderUnavailable, match="neither"):
        build_engine(onnx, onnx.with_suffix(".engine"), STATIC_META, EngineOptions())
    assert not onnx.with_suffix(".engine").exists()


FAKE_TRTEXEC = """\
#!{python}
import json, sys
args = sys.argv[1:]
print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec " + " ".join(args))
if args == ["--help"]:
    sys.exit(0)
with open({log!r}, "a") as fh:
    fh.write(json.dumps(args) + "\\n")
print("[I] TensorRT version: 10.3.0")
print("[I] Selected Device: Fake Orin")
print("[I] Compute Capability: 8.7")
opts = dict(a[2:].split("=", 1) for a in args if "=" in a)
if {fail}:
    for i in range(30):
        print(f"[E] error line {{i}}")
    if "timingCacheFile" in opts:  # a build that fails half way through its cache
        open(opts["timingCacheFile"], "wb").write(b"half")
    sys.exit(1)
open(opts["saveEngine"], "wb").write(b"fake plan")
if "timingCacheFile" in opts:
    open(opts["timingCacheFile"], "wb").write(b"fake cache")
print("&&&& PASSED")
"""


def _fake_trtexec(tmp_path, monkeypatch, fail=False) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "trtexec-calls.jsonl"
    script = bin_dir / "trtexec"
    script.write_text(FAKE_TRTEXEC.format(python=sys.executable, log=str(log), fail=fail))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))   # no nvidia-smi, no real trtexec
    return log


def test_build_with_fake_trtexec_writes_engine_and_sidecar(no_tensorrt, monkeypatch, tmp_path):
    """Orchestration only: a fake trtexec writes a dummy file; this checks that build_engine
    takes the trtexec path, passes the right command, parses the version and device from its
    output and writes the engine atomically with a complete sidecar. It is no claim that
    TensorRT builds this network."""
    calls = _fake_trtexec(tmp_path, monkeypatch)
    onnx = _onnx(tmp_path)
    engine = onnx.with_name("model-fp16.engine")
    build = build_engine(onnx, engine, DYNAMIC_META, EngineOptions(precision="fp16"))
    assert engine.read_bytes() == b"fake plan"
    args = json.loads(calls.read_text().splitlines()[-1])
    assert "--stronglyTyped" in args and "--fp16" not in args
    assert "--minShapes=input:1x3x512x512" in args and "--maxShapes=input:1x3x512x512" in args
    assert not any(str(engine) == a.split("=", 1)[-1] for a in args)  # written to a temporary
    meta, record = read_sidecar(engine)
    assert record == build
    assert record["builder"] == "trtexec" and record["tensorrt_version"] == "10.3.0"
    assert (record["gpu_name"], record["compute_capability"]) == ("Fake Orin", "8.7")
    assert record["strongly_typed"] is True and record["precision_flags"] == []
    assert record["profile"]["opt"] == [1, 3, 512, 512] and record["workspace_mb"] == 1024
    assert meta["precision"] == "fp16" and meta["tile"] == "512x512" and meta["batch"] == "1"
    cache = Path(record["timing_cache"])
    assert cache.name == "fake-orin-sm87-trt10.3.0.cache" and cache.read_bytes() == b"fake cache"
    assert not list(cache.parent.glob(".*.tmp"))   # the staged copy went over it
    # recorded as run from the bundle folder: no staged (temporary) path survives in it
    assert "--saveEngine=model-fp16.engine" in record["command"]
    assert ".tmp" not in record["command"]
    json.dumps(record)  # goes into the manifest


def test_failed_trtexec_reports_its_last_lines(no_tensorrt, monkeypatch, tmp_path):
    _fake_trtexec(tmp_path, monkeypatch, fail=True)
    onnx = _onnx(tmp_path)
    cache = tmp_path / "caches" / "t.cache"
    cache.parent.mkdir()
    cache.write_bytes(b"old cache")
    with pytest.raises(AtbsnError) as info:
        build_engine(onnx, onnx.with_suffix(".engine"), STATIC_META,
                     EngineOptions(timing_cache=str(cache)))
    text = str(info.value)
    assert "error line 29" in text and "error line 5" not in text and "exit 1" in text
    assert not onnx.with_suffix(".engine").exists()
    assert not list(onnx.parent.glob(".*.tmp"))
    # trtexec got a staged copy of the timing cache: the failed build left the old one whole
    assert cache.read_bytes() == b"old cache" and list(cache.parent.iterdir()) == [cache]


def test_a_timing_cache_that_cannot_be_staged_keeps_the_engine(no_tensorrt, monkeypatch,
                                                               tmp_path, caplog):
    """A cache folder that cannot be written (read-only) lost an engine that had built."""
    import shutil

    _fake_trtexec(tmp_path, monkeypatch)
    onnx = _onnx(tmp_path)
    cache = tmp_path / "caches" / "t.cache"
    cache.parent.mkdir()
    cache.write_bytes(b"old cache")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache.parent / ".t.cache.tmp"))

    monkeypatch.setattr(shutil, "copyfile", refuse)
    engine = onnx.with_name("model-fp16.engine")
    record = build_engine(onnx, engine, STATIC_META,
                          EngineOptions(precision="fp16", timing_cache=str(cache)))
    assert engine.read_bytes() == b"fake plan" and record["timing_cache"] is None
    assert "building without the timing cache" in caplog.text
    assert cache.read_bytes() == b"old cache" and list(cache.parent.iterdir()) == [cache]


# --- runtime ---------------------------------------------------------------------------------

def test_runtime_without_tensorrt_names_the_install(no_tensorrt, tmp_path):
    engine = tmp_path / "model-fp16.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, STATIC_META, {"tensorrt_version": "10.3.0"})
    with pytest.raises(MissingDependencyError) as info:
        trt_rt.TensorRtRuntime(engine)
    text = str(info.value)
    assert "\n" not in text and "atbsn-edge[tensorrt]" in text and "JetPack" in text
    assert "pip install tensorrt --extra-index-url https://pypi.nvidia.com" in text


BUILD = {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"}


def test_engine_compatibility_check():
    check_engine_compatible(BUILD, "10.3.0.30", "Orin", "8.7")      # build number ignored
    check_engine_compatible(BUILD, "10.3.0", " orin ", "8.7")       # name case/space
    with pytest.raises(AtbsnError) as info:
        check_engine_compatible(BUILD, "10.7.0", "Orin", "8.7", engine="m.engine",
                                rebuild="python -m atbsn_edge.export --target trt-fp16 --from-bundle b")
    text = str(info.value)
    assert "built for TensorRT 10.3.0 on Orin (sm 8.7)" in text
    assert "this is TensorRT 10.7.0 on Orin (sm 8.7)" in text and "--from-bundle b" in text
    with pytest.raises(AtbsnError, match="GPU and compute capability differ"):
        check_engine_compatible(BUILD, "10.3.0", "NVIDIA GeForce RTX 4090", "8.9")
    with pytest.raises(AtbsnError, match="compute capability differ"):
        check_engine_compatible(BUILD, "10.3.0", "Orin", "8.6")
    with pytest.raises(AtbsnError, match="TensorRT version"):
        check_engine_compatible({}, "10.3.0", "Orin", "8.7")
    check_engine_compatible({"tensorrt_version": "10.3.0"}, "10.3.0", "Orin", "8.7")  # warns


def test_modules_import_without_tensorrt_pycuda_or_torch():
    code = ("import sys\nfor m in ('torch', 'tensorrt', 'pycuda', 'cuda'): sys.modules[m] = None\n"
            "import atbsn_edge.export.onnx_to_tensorrt, atbsn_edge.runtimes.tensorrt_runtime\n"
            "from atbsn_edge.runtimes.registry import runtime_class\n"
            "assert runtime_class('tensorrt').backend == 'tensorrt'\n")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env=checkout_env())
    assert done.returncode == 0, done.stderr
