#!/usr/bin/env bash
# What the common corruptions cost next to a replay (issue 28: the heaviest family must stay
# within 25 % of a replay's time on the S/32 JPEG benchmark):
#   bench/corrupt.sh [BUILD] [IMAGES] [SECONDS]     (python3-numpy; defaults build 32 0.3)
# 1. The replay's time per view: V-MoE-S/32 shape (random weights, bench/write_s32.py) on
#    IMAGES JPEGs of 500x375 (build/make_jpegs, as bench/scale_out.sh) under the noise
#    protocol (6 views; a noise view costs next to nothing), 1 thread, CPU time of the
#    whole command (model load, JPEG decode, forward, SQLite) per view, best of 3.
# 2. build/bench_corrupt: each corruption at each severity on a 224x224x3 image with the
#    imagenet set, 1 thread, CPU ms per image; per family the mean over its corruptions of the
#    benchmark's fifteen and the 5 severities (the protocol's views are equally many each).
# 3. Each family's cost as a share of the replay's time per view, the heaviest first.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
images=${2:-32}
seconds=${3:-0.3}
rs=$PWD/$build/routerscope
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 bench/write_s32.py "$tmp/s32.safetensors"
mkdir -p "$tmp/jpg"
"$build/make_jpegs" fashion-mnist:test "$images" 500 375 "$tmp/jpg" >/dev/null
# CPU time (user + sys), not wall time: the project's machine is shared; bench_corrupt
# measures CPU time too.
TIMEFORMAT='%U %S'
best=
for i in 1 2 3; do
  rm -f "$tmp/r.db"*
  { time "$rs" replay "$tmp/s32.safetensors" --data "list:$tmp/jpg/list.txt" --protocol noise --db "$tmp/r.db" \
      --threads 1 >/dev/null; } 2>"$tmp/time"
  t=$(awk -v n="$images" '{printf "%.3f", ($1 + $2) * 1000 / (n * 6)}' "$tmp/time")
  best=$(awk -v a="$t" -v b="${best:-1e30}" 'BEGIN {print (a < b) ? a : b}')
done
echo "replay, S/32, $images JPEGs x 6 views (noise protocol), 1 thread: $best CPU ms per view (best of 3)"
"$build/bench_corrupt" 224 "$seconds" imagenet | tee "$tmp/c.txt"
echo "share of the replay time per view:"
awk -v r="$best" '/^family/ {printf "  %-8s %6.1f %%\n", $2, 100 * $3 / r}
                  /^heaviest/ {h = $2; v = $3}
                  END {printf "heaviest family %s: %.1f %% of the replay time per view (goal <= 25 %%)\n", h, 100 * v / r}' \
  "$tmp/c.txt"
