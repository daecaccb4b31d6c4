"""The machine a profile ran on: CPU model and the flags that matter for inference, GPU,
Jetson facts and library versions. Nothing here imports a heavy library."""
from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# x86 flags (Linux /proc/cpuinfo names) that decide int8/bf16/fp16 throughput, and the
# aarch64 ones (Jetson's Cortex-A78AE has asimddp; i8mm/bf16 on newer cores).
X86_FLAGS = ("amx_int8", "amx_bf16", "amx_fp16", "amx_tile", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "avx512f", "avx2", "fma", "f16c")
ARM_FLAGS = ("asimddp", "i8mm", "bf16", "fphp", "asimdhp", "sve", "sve2")


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """``{"model", "arch", "cores", "flags_that_matter", "missing"}``: the model name as
    ``lscpu`` prints it (/proc/cpuinfo where lscpu is missing) and which of the relevant
    flags the CPU has and lacks."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
    if shutil.which("lscpu"):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"^Model name:\s*(.+)$", out, re.M)
            if m and m.group(1).strip() != "-":
                model = m.group(1).strip()
            fm = re.search(r"^Flags:\s*(.+)$", out, re.M)
            if fm and not flags:
                flags = set(fm.group(1).split())
        except (OSError, subprocess.SubprocessError):
            pass
    model = model or platform.processor() or platform.machine()
    wanted = X86_FLAGS if platform.machine() in ("x86_64", "AMD64", "i686") else ARM_FLAGS
    return {"model": model, "arch": platform.machine(), "cores": os.cpu_count(),
            "flags_that_matter": [f for f in wanted if f in flags],
            "missing": [f for f in wanted if f not in flags]}


def gpu_info() -> dict[str, Any] | None:
    """The GPU: ``nvidia-smi``'s name and memory, or a Jetson's integrated GPU (its board
    model from the device tree); None when there is none."""
    jetson = jetson_model()
    if jetson:
        return {"name": f"{jetson} (integrated GPU, memory shared with the CPU)", "memory_mb": None}
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=15).stdout.strip().splitlines()
            if out:
                name, _, mem = out[0].partition(",")
                return {"name": name.strip(), "memory_mb": float(mem) if mem.strip() else None,
                        "count": len(out)}
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return None


def meminfo_bytes(field: str) -> int | None:
    """A field of ``/proc/meminfo`` (``"MemTotal"``, ``"MemAvailable"``) in bytes; None where
    it cannot be read (no such field, not Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def jetson_model() -> str | None:
    """``/proc/device-tree/model`` on a Jetson (e.g. 'NVIDIA Jetson AGX Orin Developer Kit')."""
    try:
        text = Path("/proc/device-tree/model").read_bytes().decode(errors="ignore").strip("\x00 \n")
    except OSError:
        return None
    return text if "jetson" in text.lower() or "orin" in text.lower() else None


def jetson_info() -> dict[str, Any] | None:
    """L4T release (``/etc/nv_tegra_release``) and the power mode (``nvpmodel -q``)."""
    model = jetson_model()
    if not model:
        return None
    info: dict[str, Any] = {"model": model}
    try:
        info["l4t"] = Path("/etc/nv_tegra_release").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        info["l4t"] = None
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"NV Power Mode:\s*(.+)", out)
            info["power_mode"] = m.group(1).strip() if m else out.strip()[:80]
        except (OSError, subprocess.SubprocessError):
            info["power_mode"] = None
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the inference libraries (from package metadata; TensorRT from
    its module where JetPack installed it without metadata)."""
    versions = {"python": sys.version.split()[0], "numpy": _version("numpy"),
                "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime")
                or _version("onnxruntime-gpu"), "openvino": _version("openvino"),
                "tensorrt": _version("tensorrt"), "opencv": _version("opencv-python-headless")
                or _version("opencv-python"), "torch": _version("torch")}
    if versions["tensorrt"] is None and "tensorrt" in sys.modules:
        versions["tensorrt"] = getattr(sys.modules["tensorrt"], "__version__", None)
    return versions


def machine_info() -> dict[str, Any]:
    """Everything above in one JSON-ready dict."""
    return {"cpu": cpu_info(), "gpu": gpu_info(), "jetson": jetson_info(),
            "platform": platform.platform(), "versions": library_versions()}


def describe_cpu() -> str:
    """One line: 'AMD EPYC, 2 cores, x86_64; has avx512_vnni avx512_bf16 ...; lacks amx_int8 ...'."""
    info = cpu_info()
    return (f"{info['model']}, {info['cores']} cores, {info['arch']}; has "
            f"{' '.join(info['flags_that_matter']) or 'none of the flags that matter'}; lacks "
            f"{' '.join(info['missing']) or 'nothing'}")
