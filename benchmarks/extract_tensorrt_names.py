"""Extract the Python names of TensorRT's bindings from the `tensorrt-cu12-bindings` wheels.

The real TensorRT cannot be installed on the development machines (its ``-libs`` packages are
stubs that download from NVIDIA's index), but the bindings wheel alone (about 1 MB, on PyPI)
holds ``tensorrt_bindings/tensorrt.so``, a pybind11 module whose class, method, property,
argument and enum-value names are C string literals in its ``.rodata`` section, plus a small
``__init__.py`` that adds a few pure-Python names (``nptype``, ``volume``, ``__version__``...).
The lists this script writes (``tests/data/tensorrt_names/tensorrt-<version>.txt``) are what
``tests/test_tensorrt_api_names.py`` checks the TensorRT builder and runtime code against.

How names are found (x86-64 ELF only, standard library only):

* every NUL-terminated string in ``.rodata`` that is a whole identifier, and
* every string that *starts* at an address the code takes (``lea reg, [rip+disp32]`` in
  ``.text``) or that a relocation stores (``R_X86_64_RELATIVE`` in ``.rela.dyn``). The linker
  merges string literals that are tails of other literals (``"Builder"`` is stored as the end
  of ``"IExprBuilder"``, ``"INT8"`` as the end of ``"UINT8"``, ``"float16"`` of
  ``"bfloat16"``), so the whole-string scan alone misses them.

C++ mangled type names (``N8nvinfer111BuilderFlagE``, ``St6vectorImSaImEE``...) are dropped.
The lists are flat: ``FP16`` present means *some* binding is named ``FP16``, not necessarily
``BuilderFlag.FP16``.

    # download the default versions (newest 10.x, 10.3 as on JetPack 6, newest 11.x) and write
    python benchmarks/extract_tensorrt_names.py
    # other versions, or wheels already on disk
    python benchmarks/extract_tensorrt_names.py --version 10.8.0.43 11.0.0.114
    python benchmarks/extract_tensorrt_names.py --wheel /tmp/trtwheels/*.whl
    # list the versions on the index
    pip index versions tensorrt-cu12-bindings
"""
from __future__ import annotations

import ast
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "tensorrt-cu12-bindings"
# Newest 10.x, the 10.3 that JetPack 6 ships, newest 11.x (pip index versions, 2026).
DEFAULT_VERSIONS = ["10.3.0", "10.16.1.11", "11.4.0.106"]
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "tensorrt_names"

# Names every list must hold; a list without them means the extraction broke.
CORE_NAMES = [
    "Builder", "create_network", "execute_async_v3", "num_io_tensors", "set_tensor_address",
    "BuilderFlag", "NetworkDefinitionCreationFlag", "STRONGLY_TYPED", "OnnxParser", "Runtime",
    "deserialize_cuda_engine", "IBuilderConfig", "set_memory_pool_limit", "MemoryPoolType",
    "WORKSPACE", "create_timing_cache", "DeviceType", "DLA", "GPU_FALLBACK",
    "default_device_type", "DLA_core", "get_tensor_name", "get_tensor_mode", "TensorIOMode",
    "get_tensor_shape", "get_tensor_dtype", "nptype", "Logger", "build_serialized_network",
    "__version__", "set_flag", "INPUT", "OUTPUT", "ILogger", "WARNING", "DataType", "float32",
    "float16", "parse", "num_errors", "get_error", "set_input_shape", "ITimingCache",
    "set_timing_cache", "serialize", "create_execution_context", "device_memory_size_v2",
]

_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
# lea r64, [rip+disp32]: REX.W (48) or REX.WR (4C), opcode 8D, ModRM mod=00 rm=101.
_LEA_RIP = re.compile(rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]", re.S)
_R_X86_64_RELATIVE = 8


def is_mangled(name: str) -> bool:
    """C++ typeinfo names and other Itanium-mangled fragments, not Python names."""
    if name.startswith("_Z") or re.match(r"(?:N|St|P+|PK)\d", name):
        return True
    if re.fullmatch(r"P*F\w*E", name) and re.search(r"[a-z]", name):
        return True      # function types: FivE, PFbPvPKcE
    return False


def _sections(elf: bytes) -> dict[str, tuple[int, int, int]]:
    """name -> (address, file offset, size) for a little-endian ELF64 file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a little-endian 64-bit ELF file")
    (machine,) = struct.unpack_from("<H", elf, 0x12)
    if machine != 62:
        raise ValueError(f"ELF machine {machine} is not x86-64; use an x86_64 wheel")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    out = {}
    for name, _type, _flags, addr, off, size in headers:
        end = elf.index(b"\0", names_off + name)
        out[elf[names_off + name:end].decode()] = (addr, off, size)
    return out


def names_from_so(elf: bytes) -> set[str]:
    """Identifier strings of a pybind11 extension module (see the module docstring)."""
    secs = _sections(elf)
    ro_addr, ro_off, ro_size = secs[".rodata"]
    rodata = elf[ro_off:ro_off + ro_size]
    strings = set()
    for s in rodata.split(b"\0"):
        strings.add(s)
    starts = set()
    text_addr, text_off, text_size = secs[".text"]
    text = elf[text_off:text_off + text_size]
    for m in _LEA_RIP.finditer(text):
        (disp,) = struct.unpack_from("<i", text, m.start() + 3)
        target = text_addr + m.start() + 7 + disp
        if ro_addr <= target < ro_addr + ro_size:
            starts.add(target - ro_addr)
    if ".rela.dyn" in secs:
        _, rel_off, rel_size = secs[".rela.dyn"]
        for k in range(rel_size // 24):
            _, info, addend = struct.unpack_from("<QQq", elf, rel_off + 24 * k)
            if info & 0xFFFFFFFF == _R_X86_64_RELATIVE and ro_addr <= addend < ro_addr + ro_size:
                starts.add(addend - ro_addr)
    for start in starts:
        end = rodata.find(b"\0", start)
        if end > start:
            strings.add(rodata[start:end])
    names = set()
    for s in strings:
        if len(s) >= 2 and _IDENT.fullmatch(s):
            name = s.decode("ascii")
            if not is_mangled(name):
                names.add(name)
    return names


def names_from_init(source: str) -> set[str]:
    """Names the package's ``__init__.py`` defines: functions, classes, module-level variables
    and attributes it sets on binding classes (``DataType.itemsize = ...``)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
                elif isinstance(t, ast.Attribute):
                    names.add(t.attr)
    return {n for n in names if len(n) >= 2}


def wheel_version(wheel: Path) -> str:
    # tensorrt_cu12_bindings-10.16.1.11-cp311-none-manylinux_2_28_x86_64.whl
    return wheel.name.split("-")[1]


def names_from_wheel(wheel: Path) -> tuple[set[str], str]:
    with zipfile.ZipFile(wheel) as zf:
        members = zf.namelist()
        so = [m for m in members
              if re.fullmatch(r"tensorrt[^/]*/tensorrt[^/]*\.so", m)]
        if len(so) != 1:
            raise SystemExit(f"{wheel.name}: expected one tensorrt*.so at the package top, "
                             f"found {so}")
        names = names_from_so(zf.read(so[0]))
        init = so[0].rsplit("/", 1)[0] + "/__init__.py"
        if init in members:
            names |= names_from_init(zf.read(init).decode("utf-8"))
    return names, so[0].rsplit("/", 1)[1]


def download(versions: list[str], dest: Path) -> list[Path]:
    wheels = []
    for version in versions:
        before = set(dest.glob("*.whl"))
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
               "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
               "-d", str(dest), f"{PACKAGE}=={version}"]
        subprocess.run(cmd, check=True)
        new = sorted(set(dest.glob("*.whl")) - before) or sorted(
            dest.glob(f"{PACKAGE.replace('-', '_')}-{version}-*.whl"))
        if not new:
            raise SystemExit(f"pip download of {PACKAGE}=={version} produced no wheel")
        wheels.append(new[0])
    return wheels


def write_list(names: set[str], version: str, so_name: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"tensorrt-{version}.txt"
    header = (f"# names from {PACKAGE}=={version} ({so_name}), extracted by "
              f"benchmarks/extract_tensorrt_names.py\n"
              f"# plus the names its __init__.py defines; one name per line, sorted\n")
    from atbsn_edge.atomic import atomic_path

    with atomic_path(path) as tmp:  # the tests read it: never half a list
        tmp.write_text(header + "".join(n + "\n" for n in sorted(names)), encoding="utf-8")
    return path


def main() -> None:
    from atbsn_edge.cli import new_parser

    parser = new_parser("extract_tensorrt_names.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--wheel", nargs="+", type=Path, default=[],
                        help="bindings wheels already downloaded")
    parser.add_argument("--version", nargs="+", default=[],
                        help=f"{PACKAGE} versions to download (default: "
                             f"{' '.join(DEFAULT_VERSIONS)} when no --wheel is given)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    versions = args.version or ([] if args.wheel else DEFAULT_VERSIONS)
    lists: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        wheels = list(args.wheel) + (download(versions, Path(tmp)) if versions else [])
        for wheel in wheels:
            names, so_name = names_from_wheel(wheel)
            version = wheel_version(wheel)
            path = write_list(names, version, so_name, args.out_dir)
            lists[version] = names
            missing = [n for n in CORE_NAMES if n not in names]
            print(f"{version}: {len(names)} names -> {path} ({path.stat().st_size} bytes)"
                  + (f"; MISSING core names: {' '.join(missing)}" if missing else ""))
    if len(lists) > 1:
        every = set.intersection(*lists.values())
        for version, names in sorted(lists.items()):
            others = set.union(*(v for k, v in lists.items() if k != version))
            print(f"only in {version}: {len(names - others)}; "
                  f"missing from {version} but in another: {len(others - names)}")
        print(f"in every list: {len(every)}")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))
