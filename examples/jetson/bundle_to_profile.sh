#!/usr/bin/env bash
# From a bundle (exported on a PC, copied to the Jetson) to a TensorRT engine, its parity
# against the bundle's PyTorch reference outputs, and a latency/power profile at 1080p.
#   bash examples/jetson/bundle_to_profile.sh BUNDLE [fp16|int8] [OUT_DIR]
# Exit status: 2 for unusable arguments (checked before anything is created), else the first
# step that failed (export 1x, parity 2x, profile 3x).
set -euo pipefail
USAGE="usage: bundle_to_profile.sh BUNDLE [fp16|int8] [OUT_DIR]"
fail() { echo "error: $*" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 3 ] || fail "expected 1 to 3 arguments, got $#; $USAGE"
BUNDLE="$1"
PRECISION="${2:-fp16}"
case "$PRECISION" in
  fp16|int8) ;;
  *) fail "precision '$PRECISION' is not fp16 or int8 (the TensorRT targets); $USAGE" ;;
esac
[ -d "$BUNDLE" ] && [ -f "$BUNDLE/manifest.json" ] \
  || fail "$BUNDLE is not a bundle (a folder with a manifest.json, from python -m atbsn_edge.export --out); $USAGE"
OUT="${3:-profile-$(basename "$BUNDLE")-trt-$PRECISION}"
if [ -e "$OUT" ] && [ ! -d "$OUT" ]; then
  fail "OUT_DIR $OUT exists and is a file, not a folder; give another OUT_DIR"
fi
PY="${PYTHON:-python3}"
created=0
[ -d "$OUT" ] || created=1
mkdir -p "$OUT" 2>/dev/null \
  || fail "cannot create OUT_DIR $OUT (a parent is a file, or no permission to write there); give another OUT_DIR"

echo "== 1/3 engine: trt-$PRECISION in $BUNDLE"
"$PY" -m atbsn_edge.export --target "trt-$PRECISION" --from-bundle "$BUNDLE" \
  || { echo "engine build failed"; [ "$created" = 0 ] || rmdir "$OUT" 2>/dev/null || true; exit 10; }

echo "== 2/3 parity against the bundle's reference outputs"
"$PY" -m atbsn_edge.parity "$BUNDLE" --target "trt-$PRECISION" --json "$OUT/parity.json" \
  || { echo "parity failed (see $OUT/parity.json)"; exit 20; }

echo "== 3/3 profile at 1920x1080 (tegrastats sampled when present)"
"$PY" -m atbsn_edge.profile "$BUNDLE" --target "trt-$PRECISION" --resolution 1920x1080 \
  --warmup 5 --duration 20 --json "$OUT/profile.json" | tee "$OUT/profile.txt" \
  || { echo "profile failed"; exit 30; }
echo "wrote $OUT/parity.json, $OUT/profile.json, $OUT/profile.txt"
