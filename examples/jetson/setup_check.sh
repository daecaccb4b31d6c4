#!/usr/bin/env bash
# Check a Jetson for atbsn-edge: JetPack / L4T, TensorRT (Python), pycuda, OpenCV with
# GStreamer (for csi:// cameras), the power mode and jetson_clocks. Prints one line per check
# (OK / MISSING / WARN) and exits 1 when something needed is missing.
#   bash examples/jetson/setup_check.sh [PYTHON]      (default python3)
set -u
PY="${1:-python3}"
fail=0
ok()   { printf 'OK       %-22s %s\n' "$1" "$2"; }
warn() { printf 'WARN     %-22s %s\n' "$1" "$2"; }
miss() { printf 'MISSING  %-22s %s\n' "$1" "$2"; fail=1; }

if [ -r /etc/nv_tegra_release ]; then
  ok "L4T release" "$(head -n1 /etc/nv_tegra_release)"
  jp=$(dpkg-query -W -f='${Version}' nvidia-jetpack 2>/dev/null || true)
  [ -n "$jp" ] && ok "JetPack" "nvidia-jetpack $jp" || warn "JetPack" "nvidia-jetpack package not installed (L4T only)"
else
  miss "L4T release" "/etc/nv_tegra_release not found: not a Jetson?"
fi
[ -r /proc/device-tree/model ] && ok "board" "$(tr -d '\0' < /proc/device-tree/model)"

trt=$("$PY" -c 'import tensorrt as t; print(t.__version__)' 2>/dev/null) \
  && ok "TensorRT (python)" "$trt" \
  || miss "TensorRT (python)" "import tensorrt failed: sudo apt install python3-libnvinfer (JetPack), or use JetPack's python3"
cuda=$("$PY" -c 'import pycuda.driver as d; d.init(); print(d.Device(0).name(), "CUDA", ".".join(map(str, d.get_version())))' 2>/dev/null) \
  && ok "pycuda" "$cuda" \
  || { "$PY" -c 'import cuda' 2>/dev/null && ok "cuda-python" "present (pycuda missing; the runtime falls back to it)" \
       || miss "pycuda" "pip install pycuda (needs nvcc on PATH: export PATH=/usr/local/cuda/bin:\$PATH)"; }
cv=$("$PY" - 2>/dev/null <<'PYEOF'
import cv2
gst = [l.split(":", 1)[1].strip() for l in cv2.getBuildInformation().splitlines() if l.strip().startswith("GStreamer:")]
print(cv2.__version__, "GStreamer", gst[0] if gst else "unknown")
PYEOF
)
if [ -z "$cv" ]; then miss "OpenCV" "import cv2 failed"
elif echo "$cv" | grep -q "GStreamer YES"; then ok "OpenCV" "$cv"
else warn "OpenCV" "$cv: csi:// cameras need GStreamer (JetPack's python3-opencv has it; pip's opencv-python does not)"; fi
"$PY" -c 'import atbsn_edge' 2>/dev/null && ok "atbsn-edge" "$("$PY" -c 'import atbsn_edge; print(atbsn_edge.__version__)')" \
  || miss "atbsn-edge" "pip install -e . (PyTorch is not needed on the device)"
"$PY" -c 'import onnx' 2>/dev/null && ok "onnx" "present (profile's MAC count reads the bundle's ONNX)" \
  || warn "onnx" "pip install onnx: without it profile reports no floor"

if command -v nvpmodel >/dev/null; then
  ok "power mode" "$(nvpmodel -q 2>/dev/null | grep -m1 'NV Power Mode' || echo unknown)"
else warn "power mode" "nvpmodel not found"; fi
if command -v jetson_clocks >/dev/null; then
  if out=$(sudo -n jetson_clocks --show 2>/dev/null); then
    gpu=$(echo "$out" | grep -m1 -E '^GPU' || true)
    ok "jetson_clocks" "${gpu:-shown} (lock clocks for stable timings: sudo jetson_clocks)"
  else warn "jetson_clocks" "needs sudo to show the clocks: sudo jetson_clocks --show"; fi
else warn "jetson_clocks" "not found"; fi
command -v tegrastats >/dev/null && ok "tegrastats" "$(command -v tegrastats) (profile samples power with it)" \
  || warn "tegrastats" "not on PATH: profile reports no power"
exit $fail
