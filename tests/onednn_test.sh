#!/usr/bin/env bash
# End-to-end tests of the oneDNN GEMM backend and bf16 (model/gemm.h, docs/gemm.md):
#   records     replay --gemm onednn (f32, and bf16 where the CPU has avx512_bf16) with
#               --threads 1 / 2 and --batch 1 / 7 / 64: every record byte for byte equal
#   identity    the same job with another backend or precision is another run; OpenBLAS f32
#               runs keep the identity they had (no gemm field); `runs` names the backend
#   resume      a oneDNN run (bf16 where the CPU has it) killed mid-run resumes with its
#               backend and precision (records equal to one uninterrupted run) without --gemm
#   refusals    bf16 with OpenBLAS, an unknown backend: exit 2 naming it; eval prints the
#               backend
# usage: onednn_test.sh ROUTERSCOPE MODEL   (run only when built with oneDNN)
set -u
rs=$(realpath "$1") model=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip onednn tests: dataset-fashion-mnist is not installed"; echo "onednn: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test
dump() { # DB RUN
  sqlite3 "$1" "SELECT 'p', image, view, predicted, printf('%.17g', prob), hex(match) FROM predictions
                  WHERE run_id=$2 ORDER BY image, view;
                SELECT 'r', image, view, layer, hex(top_idx), hex(top_gate), hex(probs) FROM routing
                  WHERE run_id=$2 ORDER BY image, view, layer;"
}
differ() { ! cmp -s "$1" "$2"; }
job=(--data $data --limit 150 --seed 5)

precisions=(f32)
grep -q avx512_bf16 /proc/cpuinfo && precisions+=(bf16)
for p in "${precisions[@]}"; do
  "$rs" replay "$model" "${job[@]}" --gemm onednn --precision $p --db "$tmp/$p-ref.db" --threads 1 --batch 1 \
    >/dev/null 2>"$tmp/err"
  expect "$p: threads 1 batch 1 replays" [ $? = 0 ]
  dump "$tmp/$p-ref.db" 1 >"$tmp/ref"
  for tb in "2 7" "2 64" "1 64"; do
    set -- $tb
    "$rs" replay "$model" "${job[@]}" --gemm onednn --precision $p --db "$tmp/$p-$1-$2.db" --threads $1 \
      --batch $2 >/dev/null 2>&1
    dump "$tmp/$p-$1-$2.db" 1 >"$tmp/x"
    expect "$p: --threads $1 --batch $2: every record equal to --threads 1 --batch 1" cmp -s "$tmp/ref" "$tmp/x"
  done
done

# Identity: one store, three backends -> three runs; the OpenBLAS run's identity has no gemm.
db=$tmp/id.db
"$rs" replay "$model" "${job[@]}" --db "$db" >/dev/null 2>&1
"$rs" replay "$model" "${job[@]}" --db "$db" --gemm onednn >/dev/null 2>&1
"$rs" replay "$model" "${job[@]}" --db "$db" --gemm openblas >"$tmp/out" 2>&1
expect "the same job with OpenBLAS again is the first run, already done" grep -q "already" "$tmp/out"
expect "oneDNN is a run of its own" [ "$(sqlite3 "$db" "SELECT count(*) FROM runs")" = 2 ]
expect "the OpenBLAS run's identity has no gemm field" \
  [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE id = 1 AND identity LIKE '%gemm=%'")" = 0 ]
"$rs" runs --db "$db" >"$tmp/out" 2>&1
expect "runs names the backend of run 2" grep -q "gemm onednn/f32" "$tmp/out"

# Resume: a oneDNN run killed mid-run continues with oneDNN, in its own precision (bf16 where
# the CPU has it: its records differ from float32's, so a resume in f32 would show).
last=${precisions[${#precisions[@]}-1]}
big=(--data $data --limit 600 --seed 9 --gemm onednn --precision $last)
"$rs" replay "$model" "${big[@]}" --db "$tmp/whole.db" --threads 2 >/dev/null 2>&1
"$rs" replay "$model" "${big[@]}" --db "$tmp/k.db" --batch 20 --threads 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 400); do
  [ "$(sqlite3 "$tmp/k.db" "SELECT images_done FROM runs WHERE id=1" 2>/dev/null || echo 0)" -ge 40 ] 2>/dev/null && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
at=$(sqlite3 "$tmp/k.db" "SELECT images_done FROM runs WHERE id=1")
expect "killed mid-run ($at of 600 committed)" [ "$at" -gt 0 -a "$at" -lt 600 ]
"$rs" replay --db "$tmp/k.db" --resume 1 --threads 2 >/dev/null 2>"$tmp/err"
expect "resumes" [ $? = 0 ]
if [ $last = bf16 ]; then
  "$rs" replay "$model" "${big[@]:0:6}" --gemm onednn --db "$tmp/f32.db" >/dev/null 2>&1
  dump "$tmp/f32.db" 1 >"$tmp/x1"; dump "$tmp/whole.db" 1 >"$tmp/x2"
  expect "bf16 records differ from float32's" differ "$tmp/x1" "$tmp/x2"
fi
dump "$tmp/whole.db" 1 >"$tmp/x1"; dump "$tmp/k.db" 1 >"$tmp/x2"
expect "resumed with oneDNN $last: every record equal to one uninterrupted oneDNN run" cmp -s "$tmp/x1" "$tmp/x2"
"$rs" replay --db "$tmp/k.db" --resume 1 --gemm onednn >/dev/null 2>"$tmp/err"
expect "--resume refuses --gemm (the run's own is used)" failed_with $? 2 "only MODEL, --threads and --batch"

# Refusals and eval.
"$rs" eval "$model" --data $data --limit 10 --precision bf16 >/dev/null 2>"$tmp/err"
expect "bf16 with OpenBLAS: exit 1, one line" failed_with $? 1 "precision bf16 needs --gemm onednn"
"$rs" eval "$model" --data $data --limit 10 --gemm mkl >/dev/null 2>"$tmp/err"
expect "an unknown backend: exit 2 naming the choices" failed_with $? 2 "gemm 'mkl': want openblas or onednn"
"$rs" eval "$model" --data $data --limit 50 --gemm onednn >"$tmp/out" 2>/dev/null
expect "eval names the backend" grep -q "onednn f32)" "$tmp/out"

testlib_done onednn
