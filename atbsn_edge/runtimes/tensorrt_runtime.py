"""TensorRT backend: a serialized engine (``.engine``) and its JSON sidecar.

Not yet run on NVIDIA hardware: written against the documented TensorRT 10.x/11.x Python API
(the name-based I/O tensor API: ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
``set_tensor_address``, ``execute_async_v3``) and pycuda; only the logic around it is tested
here (the version/GPU check, the missing-library message).

Before deserializing, the sidecar's build record is compared with this machine: an engine is
tied to the TensorRT version and the GPU it was built for, so another TensorRT version, GPU
name or compute capability is refused with the command that rebuilds it here.

Memory: pinned (page-locked) host buffers and device buffers for the one input and one output,
one CUDA stream: copy in, ``execute_async_v3``, copy out, synchronize after the copy out.
CUDA: pycuda (``pycuda.driver``, the primary context of ``device`` retained and pushed, as
the CUDA runtime inside TensorRT uses it); where pycuda is missing, cuda-python's runtime
bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` in older cuda-python).

CUDA graphs (``cuda_graph=True``, fixed shapes only): TensorRT's ``execute_async_v3`` is
captured with the CUDA runtime's stream capture (cuda-python: ``cudaStreamBeginCapture`` on the
runtime's stream, the H2D copy + ``execute_async_v3`` + D2H copy, ``cudaStreamEndCapture``,
``cudaGraphInstantiate``) after one ordinary run (TensorRT finishes its shape-dependent setup
on the first enqueue, which must not happen inside a capture); each call then replays the
graph with ``cudaGraphLaunch``. The buffers never move, so the graph stays valid. Where capture
fails (an engine whose layers cannot be captured) the runtime warns and runs uncaptured.
pycuda has no graph API of its own, so graphs need cuda-python in either path.
"""
from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..bundle.metadata import ArtifactMetadata, read_sidecar
from ..bundle.commands import add_target_command
from ..errors import AtbsnError, MissingDependencyError, require
from .base import InputSpec, Runtime, RuntimeInfo

log = logging.getLogger(__name__)

INSTALL_HINT = ("TensorRT comes with JetPack on a Jetson (python3-libnvinfer), elsewhere "
                "pip install tensorrt --extra-index-url https://pypi.nvidia.com; "
                "pycuda: pip install pycuda (with nvcc on PATH)")

# No version-dependent TensorRT name is used here; see tensorrt_python_api.VERSION_GUARDED_NAMES.
VERSION_GUARDED_NAMES: set[str] = set()


def version_tuple(version: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> ``(10, 3, 0)``: major, minor, patch (the build number is dropped)."""
    import re

    return tuple(int(n) for n in re.findall(r"\d+", str(version))[:3])


def _normal_gpu(name: str) -> str:
    return " ".join(str(name).lower().split())


def rebuild_command(engine: str | os.PathLike, precision: str) -> str:
    """The command that rebuilds ``engine`` here from its bundle (the engine's folder); the
    same as ``export.onnx_to_tensorrt.device_command``."""
    return add_target_command(Path(engine).parent, f"trt-{precision}")


def check_engine_compatible(build: Mapping[str, Any], installed_version: str, gpu_name: str,
                            compute_capability: str, *, engine: str | os.PathLike = "engine",
                            rebuild: str | None = None) -> None:
    """Refuse an engine built for another TensorRT version (major.minor.patch) or another GPU
    (name or compute capability), in one line that says what it was built for, what this is
    and how to rebuild. A build record without the GPU (built where it could not be read)
    is checked for the TensorRT version only, with a warning."""
    built_version = str(build.get("tensorrt_version", "unknown"))
    built_gpu = str(build.get("gpu_name", "unknown"))
    built_cc = str(build.get("compute_capability", "unknown"))
    problems = []
    if built_version == "unknown" or version_tuple(built_version) != version_tuple(installed_version):
        problems.append("TensorRT version")
    if built_gpu == "unknown" or built_cc == "unknown":
        log.warning("%s: its sidecar does not name the GPU it was built for; it cannot be "
                    "checked against this %s", engine, gpu_name)
    else:
        if _normal_gpu(built_gpu) != _normal_gpu(gpu_name):
            problems.append("GPU")
        if built_cc.strip() != str(compute_capability).strip():
            problems.append("compute capability")
    if problems:
        how = f"; rebuild it here: {rebuild}" if rebuild else "; rebuild it on this device"
        raise AtbsnError(
            f"{engine} was built for TensorRT {built_version} on {built_gpu} (sm {built_cc}); "
            f"this is TensorRT {installed_version} on {gpu_name} (sm {compute_capability}): "
            f"{' and '.join(problems)} differ, and TensorRT engines do not move between them{how}")


def _import_tensorrt():
    try:
        return require("tensorrt", "tensorrt")
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"{exc}; {INSTALL_HINT}") from None


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart  # cuda-python < 12.6
    return cudart


class _PyCuda:
    """Pinned host memory, device memory and one stream through pycuda."""

    kind = "pycuda"

    def __init__(self, device: int) -> None:
        import pycuda.driver as cuda

        self.gpu = cuda
        cuda.init()
        self.dev = cuda.Device(device)
        self.ctx = self.dev.retain_primary_context()
        self.ctx.push()
        self.stream = cuda.Stream()
        major, minor = self.dev.compute_capability()
        self.name, self.cc = self.dev.name(), f"{major}.{minor}"

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.gpu.pagelocked_empty(shape, dtype)

    def device_alloc(self, nbytes: int) -> Any:
        return self.gpu.mem_alloc(max(nbytes, 1))

    @staticmethod
    def address(buffer: Any) -> int:
        return int(buffer)

    def to_device(self, dst: Any, src: np.ndarray) -> None:
        self.gpu.memcpy_htod_async(dst, src, self.stream)

    def to_host(self, dst: np.ndarray, src: Any) -> None:
        self.gpu.memcpy_dtoh_async(dst, src, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, buffer: Any) -> None:
        buffer.free()

    def free_pinned(self, array: np.ndarray) -> None:
        base = getattr(array, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()

    def close(self) -> None:
        self.stream = None
        try:
            self.ctx.pop()
        finally:
            self.ctx.detach()


class _CudaPython:
    """The same through cuda-python's runtime bindings (the second path)."""

    kind = "cuda-python"

    def __init__(self, device: int) -> None:
        self.rt = _import_cudart()
        self._call(self.rt.cudaSetDevice(device))
        (prop,) = self._call(self.rt.cudaGetDeviceProperties(device))
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        self.name, self.cc = name.split("\x00")[0].strip(), f"{prop.major}.{prop.minor}"
        (self.stream,) = self._call(self.rt.cudaStreamCreate())
        self._pinned: dict[int, int] = {}

    def _call(self, result: Any) -> tuple:
        result = result if isinstance(result, tuple) else (result,)
        if result[0] != self.rt.cudaError_t.cudaSuccess:
            raise AtbsnError(f"CUDA error: {result[0]}")
        return result[1:]

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        (ptr,) = self._call(self.rt.cudaMallocHost(max(nbytes, 1)))
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(int(ptr))
        array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
        self._pinned[id(array)] = int(ptr)
        return array

    def device_alloc(self, nbytes: int) -> int:
        (ptr,) = self._call(self.rt.cudaMalloc(max(nbytes, 1)))
        return int(ptr)

    @staticmethod
    def address(buffer: Any) -> int:
        return int(buffer)

    def to_device(self, dst: int, src: np.ndarray) -> None:
        self._call(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                           self.stream))

    def to_host(self, dst: np.ndarray, src: int) -> None:
        self._call(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                           self.stream))

    def synchronize(self) -> None:
        self._call(self.rt.cudaStreamSynchronize(self.stream))

    def free(self, buffer: int) -> None:
        self._call(self.rt.cudaFree(buffer))

    def free_pinned(self, array: np.ndarray) -> None:
        ptr = self._pinned.pop(id(array), None)
        if ptr is not None:
            self._call(self.rt.cudaFreeHost(ptr))

    def close(self) -> None:
        self._call(self.rt.cudaStreamDestroy(self.stream))


def _open_cuda(device: int):
    try:
        import pycuda.driver  # noqa: F401
    except ImportError:
        try:
            _import_cudart()
        except ImportError:
            raise MissingDependencyError(
                "neither 'pycuda' nor 'cuda-python' is installed; install one with "
                f"pip install 'atbsn-edge[tensorrt]' (pycuda); {INSTALL_HINT}") from None
        return _CudaPython(device)
    return _PyCuda(device)


class _Graph:
    """A captured CUDA graph of one inference (cuda-python runtime API)."""

    def __init__(self, stream: int, enqueue) -> None:
        rt = _import_cudart()
        self.rt = rt
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal

        def call(result):
            result = result if isinstance(result, tuple) else (result,)
            if result[0] != rt.cudaError_t.cudaSuccess:
                raise AtbsnError(f"CUDA graph capture: {result[0]}")
            return result[1:]

        call(rt.cudaStreamBeginCapture(stream, mode))
        try:
            enqueue()
        finally:
            (graph,) = call(rt.cudaStreamEndCapture(stream))
        self.graph = graph
        (self.exec,) = call(rt.cudaGraphInstantiate(graph, 0))
        self.stream, self.call = stream, call

    def launch(self) -> None:
        self.call(self.rt.cudaGraphLaunch(self.exec, self.stream))

    def close(self) -> None:
        self.call(self.rt.cudaGraphExecDestroy(self.exec))
        self.call(self.rt.cudaGraphDestroy(self.graph))


class TensorRtRuntime(Runtime):
    """A TensorRT engine on CUDA ``device``; ``cuda_graph`` replays a captured CUDA graph for
    the engine's fixed shape."""

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike, *, device: int = 0,
                 cuda_graph: bool = False) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise AtbsnError(f"TensorRT engine {path} does not exist")
        raw, build = read_sidecar(path)
        self.metadata = ArtifactMetadata.parse(raw, path)
        self.build = build
        trt = _import_tensorrt()
        self.trt = trt
        self.tensorrt_version = str(trt.__version__)
        self.gpu = _open_cuda(device)
        self.device_index = device
        self.gpu_name, self.cuda_kind = self.gpu.name, self.gpu.kind
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, Any] = {}
        self._graph: _Graph | None = None
        self.exec_context = self.engine = None
        try:
            check_engine_compatible(build, self.tensorrt_version, self.gpu.name, self.gpu.cc,
                                    engine=path,
                                    rebuild=rebuild_command(path, self.metadata.precision))
            self._load(path)
            if cuda_graph:
                self._capture_graph()
        except BaseException:
            self._close_impl()
            raise
        self.path = path

    def _load(self, path: Path) -> None:
        trt = self.trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise AtbsnError(f"TensorRT {self.tensorrt_version} cannot deserialize {path} (damaged, "
                             f"or built by another TensorRT); rebuild it: "
                             f"{rebuild_command(path, self.metadata.precision)}")
        self.exec_context = self.engine.create_execution_context()
        if self.exec_context is None:
            raise AtbsnError(f"TensorRT cannot create an execution context for {path} "
                             "(out of GPU memory?)")
        inputs, outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise AtbsnError(f"{path}: expected one input and one output tensor, the engine has "
                             f"inputs {inputs} and outputs {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
                       for n in (self.input_name, self.output_name)}
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        self.dynamic = any(d < 0 for d in shape)
        dims: list[int | None] = [d if d >= 0 else None for d in shape]
        if self.dynamic:  # a static profile of a dynamic ONNX pins the shape
            lo, _, hi = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
            dims = [d if d is not None else (lo[i] if lo[i] == hi[i] else None)
                    for i, d in enumerate(dims)]
        self._spec = InputSpec(batch=dims[0], height=dims[2], width=dims[3],
                               channels=dims[1] or 3, stride=self.metadata.stride,
                               name=self.input_name)
        if all(d is not None for d in dims):
            self._allocate(tuple(int(d) for d in dims))
        self._shape: tuple[int, ...] | None = (tuple(int(d) for d in dims)
                                               if all(d is not None for d in dims) else None)

    def _allocate(self, shape: tuple[int, ...]) -> None:
        """Buffers for an input of ``shape`` (set as the context's input shape where the engine
        is dynamic), with the tensor addresses set."""
        self._free_buffers()
        if self.dynamic and not self.exec_context.set_input_shape(self.input_name, shape):
            raise AtbsnError(f"input {shape} is outside the engine's optimization profile")
        out_shape = tuple(self.exec_context.get_tensor_shape(self.output_name))
        for name, dims in ((self.input_name, shape), (self.output_name, out_shape)):
            host = self.gpu.pinned(dims, self.dtypes[name])
            dev = self.gpu.device_alloc(host.nbytes)
            self._host[name], self._dev[name] = host, dev
            if not self.exec_context.set_tensor_address(name, self.gpu.address(dev)):
                raise AtbsnError(f"TensorRT refused the device buffer of tensor {name}")
        self._shape = shape

    def _enqueue(self) -> None:
        self.gpu.to_device(self._dev[self.input_name], self._host[self.input_name])
        if not self.exec_context.execute_async_v3(self.gpu.stream_handle):
            raise AtbsnError("TensorRT execute_async_v3 failed (see its log above)")
        self.gpu.to_host(self._host[self.output_name], self._dev[self.output_name])

    def _capture_graph(self) -> None:
        if self._shape is None:
            raise AtbsnError("a CUDA graph needs a fixed input shape; this engine is dynamic")
        try:
            _import_cudart()
        except ImportError:
            raise MissingDependencyError("CUDA graphs need cuda-python: pip install cuda-python") from None
        self._host[self.input_name].fill(0)
        self._enqueue()             # first run: TensorRT's setup happens outside the capture
        self.gpu.synchronize()
        try:
            self._graph = _Graph(self.gpu.stream_handle, self._enqueue)
        except AtbsnError as exc:
            log.warning("CUDA graph capture failed (%s); running without it", exc)
            self._graph = None

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_metadata(
            self.backend, self.metadata, f"cuda:{self.device_index} {self.gpu_name}",
            tensorrt_version=self.tensorrt_version, cuda=self.cuda_kind,
            cuda_graph=self._graph is not None)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        if self._shape != batch.shape:
            if self._graph is not None:
                raise AtbsnError(f"the CUDA graph was captured for {self._shape}, got {batch.shape}")
            self._allocate(tuple(batch.shape))
        np.copyto(self._host[self.input_name], batch, casting="same_kind")
        if self._graph is not None:
            self._graph.launch()
        else:
            self._enqueue()
        self.gpu.synchronize()     # after the copy back: the host output is complete
        return np.array(self._host[self.output_name], dtype=np.float32, copy=True)

    def _free_buffers(self) -> None:
        for buffer in self._dev.values():
            self.gpu.free(buffer)
        for array in self._host.values():
            self.gpu.free_pinned(array)
        self._dev, self._host = {}, {}

    def _close_impl(self) -> None:
        if getattr(self, "gpu", None) is None:
            return
        try:
            if self._graph is not None:
                self._graph.close()
                self._graph = None
            self._free_buffers()
            self.exec_context = None
            self.engine = None
            self.runtime = None
        finally:
            self.gpu.close()
            self.gpu = None
