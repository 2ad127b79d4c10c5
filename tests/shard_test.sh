#!/usr/bin/env bash
# End-to-end tests of sharded replay (`replay --shard I/N`), `merge` and MPI runs:
#   exactness   3 shards (other threads and batch sizes) merged = one single-process run:
#               routing rows, `stats --format json` and `export` byte for byte
#   refusals    shards of another job, a missing, an overlapping and an unfinished shard,
#               a store without shards, a merge into one of its shards: exit 1, one line
#   damage      (issue 26, item 2) a shard missing a samples or a routing row, random bytes
#               flipped in a shard file (8 trials), shards that disagree where only the merged
#               run shows it: exit 1, one line, and no output left in state running; a merge
#               that passes gives exactly the records of the undamaged merge
#   resume      a shard killed with SIGKILL is resumed alone (--resume), then merged: identical;
#               a merge stopped halfway is continued by the next one
#   MPI         (release build with MPI only) mpirun -n 2 and -n 3 give the single-process
#               stats; a failing rank fails the job with its message; a rank killed mid-run,
#               then the same command again: identical; --shard-dir (stores in per-rank
#               folders, sent to rank 0 over MPI, in several chunks): identical; a failed
#               transfer fails in one line, keeps the stores, and the rerun merges
# usage: shard_test.sh ROUTERSCOPE MODEL   (env RS_MPI=1 when built with MPI, RS_SANITIZE)
set -u
rs=$(realpath "$1") model=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip shard tests: dataset-fashion-mnist is not installed"; echo "shard: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test
# Every stored fact of a run, in a canonical order (as replay_test.sh).
dump() { # DB RUN
  sqlite3 "$1" "SELECT 's', image, label FROM samples WHERE run_id=$2 ORDER BY image;
                SELECT 'p', image, view, predicted, printf('%.17g', prob), params, hex(match) FROM predictions
                  WHERE run_id=$2 ORDER BY image, view;
                SELECT 'r', image, view, layer, hex(top_idx), hex(top_gate), hex(probs) FROM routing
                  WHERE run_id=$2 ORDER BY image, view, layer;"
}
# What a reader sees of a run, less provenance: records, stats and export.
same_run() { # DB1 DB2 NAME
  dump "$1" 1 >"$tmp/x1"; dump "$2" 1 >"$tmp/x2"
  expect "$3: every record equal" cmp -s "$tmp/x1" "$tmp/x2"
  "$rs" stats --db "$1" --format json >"$tmp/x1" 2>/dev/null; "$rs" stats --db "$2" --format json >"$tmp/x2" 2>/dev/null
  expect "$3: stats --format json equal" cmp -s "$tmp/x1" "$tmp/x2"
  "$rs" export --db "$1" --run 1 >"$tmp/x1" 2>/dev/null; "$rs" export --db "$2" --run 1 >"$tmp/x2" 2>/dev/null
  expect "$3: export equal" cmp -s "$tmp/x1" "$tmp/x2"
  expect "$3: not empty" [ -s "$tmp/x1" ]
}
# Waits until run 1 of DB has at least N images committed (at most ~20 s).
wait_done() { # DB N
  for _ in $(seq 1 400); do
    [ "$(sqlite3 "$1" "SELECT images_done FROM runs WHERE id=1" 2>/dev/null || echo 0)" -ge "$2" ] 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
job=(--data $data --limit 300 --seed 3)

# --- exactness -------------------------------------------------------------------------------
"$rs" replay "$model" "${job[@]}" --db "$tmp/single.db" --threads 2 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${job[@]}" --db "$tmp/s0.db" --threads 1 --batch 7 --shard 0/3 >"$tmp/out" 2>"$tmp/err"
expect "shard 0/3 takes images 0..99 (5 groups of 20)" grep -q "shard 0/3: images 0..99" "$tmp/out"
"$rs" replay "$model" "${job[@]}" --db "$tmp/s1.db" --threads 2 --batch 64 --shard 1/3 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${job[@]}" --db "$tmp/s2.db" --threads 1 --shard 2/3 >/dev/null 2>"$tmp/err"
"$rs" merge --db "$tmp/m.db" "$tmp/s2.db" "$tmp/s0.db" "$tmp/s1.db" >"$tmp/out" 2>"$tmp/err"
expect "merge of 3 shards in any order" grep -q "merged 3 shards, 300 images" "$tmp/out"
same_run "$tmp/single.db" "$tmp/m.db" "3 shards merged vs one process"
expect "the merged run is done with the job's slice" \
  [ "$(sqlite3 "$tmp/m.db" "SELECT status, first_image, image_count, images_done, shard_count IS NULL FROM runs")" = "done|0|300|300|1" ]
expect "the merged run has the single run's identity" \
  [ "$(sqlite3 "$tmp/m.db" "SELECT identity FROM runs")" = "$(sqlite3 "$tmp/single.db" "SELECT identity FROM runs")" ]
expect "and its checksum (the same records and shapes)" \
  [ "$(sqlite3 "$tmp/m.db" "SELECT checksum FROM runs")" = "$(sqlite3 "$tmp/single.db" "SELECT checksum FROM runs")" ]
"$rs" merge --db "$tmp/m.db" "$tmp/s0.db" "$tmp/s1.db" "$tmp/s2.db" >"$tmp/out" 2>"$tmp/err"
expect "merging again reports the finished run" grep -q "already holds this job" "$tmp/out"
"$rs" replay "$model" "${job[@]}" --db "$tmp/m.db" >"$tmp/out" 2>"$tmp/err"
expect "replaying the job into the merged store finds it complete" grep -q "run 1 is already complete" "$tmp/out"

# --- refusals: exit 1, one line naming what is wrong ----------------------------------------
"$rs" replay "$model" --data $data --limit 300 --seed 4 --db "$tmp/o1.db" --shard 1/3 >/dev/null 2>&1
"$rs" merge --db "$tmp/r.db" "$tmp/s0.db" "$tmp/o1.db" "$tmp/s2.db" >/dev/null 2>"$tmp/err"
expect "shards of different jobs" failed_with $? 1 "s0.db and .*o1.db hold shards of different jobs"
"$rs" merge --db "$tmp/r.db" "$tmp/s0.db" "$tmp/s2.db" >/dev/null 2>"$tmp/err"
expect "a missing shard" failed_with $? 1 "shard 1/3 is missing"
cp "$tmp/s1.db" "$tmp/s1b.db"
"$rs" merge --db "$tmp/r.db" "$tmp/s0.db" "$tmp/s1.db" "$tmp/s1b.db" "$tmp/s2.db" >/dev/null 2>"$tmp/err"
expect "an overlapping shard" failed_with $? 1 "s1.db and .*s1b.db both hold shard 1/3"
"$rs" replay "$model" "${job[@]}" --db "$tmp/h0.db" --shard 0/2 >/dev/null 2>&1
"$rs" merge --db "$tmp/r.db" "$tmp/h0.db" "$tmp/s1.db" "$tmp/s2.db" >/dev/null 2>"$tmp/err"
expect "shards of another split" failed_with $? 1 "shard 0/2 but .*s1.db is shard 1/3"
"$rs" merge --db "$tmp/r.db" "$tmp/single.db" >/dev/null 2>"$tmp/err"
expect "a store without shard runs" failed_with $? 1 "single.db: holds no shard run"
"$rs" merge --db "$tmp/s0.db" "$tmp/s0.db" "$tmp/s1.db" "$tmp/s2.db" >/dev/null 2>"$tmp/err"
expect "merging into a shard" failed_with $? 1 "s0.db: is the output and a shard"
expect "refused merges leave no run behind" [ "$(sqlite3 "$tmp/r.db" "SELECT count(*) FROM runs" 2>/dev/null || echo 0)" = 0 ]
"$rs" replay "$model" "${job[@]}" --db "$tmp/e.db" --shard 3/3 >/dev/null 2>"$tmp/err"
expect "--shard 3/3 is a usage error" failed_with $? 2 "--shard wants I/N with 0 <= I < N"
"$rs" replay "$model" "${job[@]}" --db "$tmp/e.db" --shard 0/16 >/dev/null 2>"$tmp/err"
expect "more shards than groups" failed_with $? 1 "300 images make 15 groups of 20, so at most 15 shards"
"$rs" replay --db "$tmp/s0.db" --resume 1 --shard 0/3 >/dev/null 2>"$tmp/err"
expect "--shard with --resume is a usage error" failed_with $? 2 "only MODEL, --threads and --batch"
"$rs" replay "$model" "${job[@]}" --db "$tmp/e.db" --shard-dir "$tmp/node%r" >/dev/null 2>"$tmp/err"
expect "--shard-dir without mpirun is a usage error" failed_with $? 2 "--shard-dir belongs to runs under mpirun"

# --- damaged shards: refused in one line, no output left running (issue 26, item 2) ------------
merge_refused() { # NAME OUT PATTERN SHARD...: exit 1, one line, and no OUT left behind
  local name=$1 out=$2 pattern=$3
  shift 3
  rm -f "$out" "$out-wal" "$out-shm"
  "$rs" merge --db "$out" "$@" >/dev/null 2>"$tmp/err"
  expect "$name: merge refuses, one line" failed_with $? 1 "$pattern"
  expect "$name: and leaves no output file" [ ! -e "$out" ]
}
cp "$tmp/s1.db" "$tmp/d1.db"
sqlite3 "$tmp/d1.db" "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE image = 150"
merge_refused "a shard missing a samples row" "$tmp/dm.db" "d1.db: run 1 image 150: no samples row" \
  "$tmp/s0.db" "$tmp/d1.db" "$tmp/s2.db"
cp "$tmp/s1.db" "$tmp/d1.db"
sqlite3 "$tmp/d1.db" "DELETE FROM routing WHERE image = 120 AND view = 1 AND layer = 0"
merge_refused "a shard missing a routing row" "$tmp/dm.db" "d1.db: run 1 image 120 view 1 layer 0: no routing row" \
  "$tmp/s0.db" "$tmp/d1.db" "$tmp/s2.db"
# Random bytes flipped in a shard file: every merge is refused in one line with no output
# left, or (a byte no record holds, e.g. free space in a page) gives the undamaged records.
dump "$tmp/m.db" 1 >"$tmp/good.dump"
refused=0 same=0
for seed in 1 2 3 4 5 6 7 8; do
  cp "$tmp/s1.db" "$tmp/f1.db"
  python3 -c '
import os, random, sys
random.seed(int(sys.argv[2]))
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    for _ in range(8):
        at = random.randrange(4096, size)  # past the first page (header and schema)
        f.seek(at)
        b = f.read(1)[0]
        f.seek(at)
        f.write(bytes([b ^ (1 << random.randrange(8))]))
' "$tmp/f1.db" $seed
  rm -f "$tmp/fm.db" "$tmp/fm.db-wal" "$tmp/fm.db-shm"
  "$rs" merge --db "$tmp/fm.db" "$tmp/s0.db" "$tmp/f1.db" "$tmp/s2.db" >/dev/null 2>"$tmp/err"
  if [ $? = 0 ]; then
    dump "$tmp/fm.db" 1 >"$tmp/f.dump"
    cmp -s "$tmp/good.dump" "$tmp/f.dump" && same=$((same + 1))
  elif failed_with 1 1 "f1.db" && [ ! -e "$tmp/fm.db" ]; then
    refused=$((refused + 1))
  fi
done
expect "flipped bytes: $refused of 8 merges refused in one line, no output left; $same merged unchanged records" \
  [ $((refused + same)) = 8 -a $refused -gt 0 ]
# Shards that each pass, but not together: shard 1 lost its forced view's executed masks and
# its checksum (as a store of schema 5 has none). Only the merged run shows it, at the check
# before done: the merge takes back all it wrote.
fviews='clean;noise:severity=2;base:view=1+route:from=0'
for i in 0 1; do
  "$rs" replay "$model" --data $data --limit 40 --seed 3 --protocol custom --views "$fviews" --db "$tmp/e$i.db" \
    --shard $i/2 --threads 1 >/dev/null 2>&1 || bad "replay of forced shard $i/2"
done
sqlite3 "$tmp/e1.db" "UPDATE routing SET executed = NULL; UPDATE runs SET checksum = NULL"
merge_refused "shards that disagree (the merged run's check)" "$tmp/em.db" \
  "em.db: run 1 image 20 view 2 layer 0: no executed experts where the run's first image has them" \
  "$tmp/e0.db" "$tmp/e1.db"
cp "$tmp/m.db" "$tmp/other.db"
"$rs" merge --db "$tmp/other.db" "$tmp/e0.db" "$tmp/e1.db" >/dev/null 2>"$tmp/err"
expect "into a store that holds another run: refused" failed_with $? 1 "other.db: run 2 image 20 view 2 layer 0"
expect "and only the other run is left, done" [ "$(sqlite3 "$tmp/other.db" "SELECT group_concat(id || ':' || status)
  FROM runs; SELECT count(*) FROM samples WHERE run_id = 2")" = "$(printf '1:done\n0')" ]

# --- a shard killed mid-run: refused as unfinished, resumed alone, merged: identical ----------
big=(--data $data --limit 600 --seed 9)
"$rs" replay "$model" "${big[@]}" --db "$tmp/big.db" --threads 2 >/dev/null 2>&1
"$rs" replay "$model" "${big[@]}" --db "$tmp/k1.db" --shard 1/2 --threads 2 >/dev/null 2>&1
"$rs" replay "$model" "${big[@]}" --db "$tmp/k0.db" --shard 0/2 --batch 20 --threads 1 >/dev/null 2>&1 &
pid=$!
wait_done "$tmp/k0.db" 40
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
at=$(sqlite3 "$tmp/k0.db" "SELECT images_done FROM runs WHERE id=1")
expect "shard killed mid-run ($at of 300 committed)" [ "$at" -gt 0 -a "$at" -lt 300 ]
"$rs" merge --db "$tmp/km.db" "$tmp/k0.db" "$tmp/k1.db" >/dev/null 2>"$tmp/err"
expect "an unfinished shard is refused, with the command that resumes it" \
  failed_with $? 1 "k0.db: shard 0/2 is not finished (running or killed, $at of 300 images); resume it with: routerscope replay --db .*k0.db --resume 1"
"$rs" replay --db "$tmp/k0.db" --resume 1 --threads 2 >"$tmp/out" 2>"$tmp/err"
expect "the shard resumes alone" grep -q "run 1 (shard 0/2: images 0..299) (resumed): $((300 - at)) images" "$tmp/out"
"$rs" merge --db "$tmp/km.db" "$tmp/k0.db" "$tmp/k1.db" >/dev/null 2>"$tmp/err"
same_run "$tmp/big.db" "$tmp/km.db" "killed shard resumed, merged vs one process"

# --- a merge stopped halfway is continued by the next merge ---------------------------------
# The state a merge killed after its 5th copy transaction leaves (each transaction commits
# its images with images_done; the run is marked done only at the end), made exactly.
cp "$tmp/km.db" "$tmp/hm.db"
sqlite3 "$tmp/hm.db" "DELETE FROM routing WHERE image >= 100; DELETE FROM predictions WHERE image >= 100;
                      DELETE FROM samples WHERE image >= 100;
                      UPDATE runs SET images_done = 100, status = 'running', finished = NULL"
"$rs" merge --db "$tmp/hm.db" "$tmp/k0.db" "$tmp/k1.db" >"$tmp/out" 2>"$tmp/err"
expect "a stopped merge continues where it stood" grep -q "600 images (500 copied now)" "$tmp/out"
same_run "$tmp/big.db" "$tmp/hm.db" "stopped merge continued vs one process"

# --- MPI ------------------------------------------------------------------------------------
if [ "${RS_MPI:-0}" != 1 ]; then
  echo "skip MPI tests: routerscope is built without MPI"
elif [ -n "${RS_SANITIZE:-}" ] && [ "$RS_SANITIZE" != none ]; then
  echo "skip MPI tests: they run in the release build only (this build: -Db_sanitize=$RS_SANITIZE)"
elif ! command -v mpirun >/dev/null; then
  echo "skip MPI tests: mpirun is not installed (openmpi-bin)"
else
  # Containers forbid the cross-process memory attach OpenMPI tries first.
  export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
  mpi=(mpirun --oversubscribe --allow-run-as-root)
  for n in 2 3; do
    "${mpi[@]}" -n $n "$rs" replay "$model" "${job[@]}" --db "$tmp/mpi$n.db" >"$tmp/out" 2>"$tmp/err"
    expect "mpirun -n $n: exit 0, rank 0 merges" grep -q "$n ranks, 300 images merged into" "$tmp/out"
    same_run "$tmp/single.db" "$tmp/mpi$n.db" "mpirun -n $n vs one process"
  done
  "${mpi[@]}" -n 2 "$rs" replay "$model" "${job[@]}" --db "$tmp/mpi2.db" >"$tmp/out" 2>"$tmp/err"
  expect "the same mpirun again finds the job complete" grep -q "already complete in" "$tmp/out"
  echo "not a database" >"$tmp/bad.db.shard-1-of-2"
  "${mpi[@]}" -n 2 "$rs" replay "$model" "${job[@]}" --db "$tmp/bad.db" >/dev/null 2>"$tmp/err"
  status=$?
  expect "a failing rank fails the job (exit $status)" [ $status != 0 ]
  expect "rank 0 reports the failing rank's message" grep -q "^routerscope: rank 1 of 2: .*bad.db.shard-1-of-2: not an SQLite database" "$tmp/err"
  # SIGKILL one rank mid-run: mpirun ends the job; the same command again resumes and merges.
  "${mpi[@]}" -n 2 "$rs" replay "$model" "${big[@]}" --db "$tmp/mk.db" --batch 20 --threads 1 >/dev/null 2>&1 &
  mpid=$!
  wait_done "$tmp/mk.db.shard-1-of-2" 40
  rank_pids=$(ps -o pid= --ppid $mpid)
  victim=""
  for p in $rank_pids; do
    tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | grep -q "routerscope replay" && victim=$p && break
  done
  [ -n "$victim" ] && kill -9 "$victim"
  wait $mpid; status=$?
  expect "mpirun fails when a rank is killed (exit $status)" [ -n "$victim" ] && [ $status != 0 ]
  expect "and nothing is merged" [ "$(sqlite3 "$tmp/mk.db" "SELECT count(*) FROM runs WHERE status='done'" 2>/dev/null || echo 0)" = 0 ]
  "${mpi[@]}" -n 2 "$rs" replay "$model" "${big[@]}" --db "$tmp/mk.db" --batch 20 >"$tmp/out" 2>"$tmp/err"
  expect "the same mpirun command resumes and merges" grep -q "2 ranks, 600 images merged into" "$tmp/out"
  same_run "$tmp/big.db" "$tmp/mk.db" "mpirun with a killed rank, rerun, vs one process"
  # --shard-dir: each rank's store stays in its own folder (node-local disk on a cluster);
  # ranks 1..N-1 send theirs to rank 0 over MPI, which merges and removes the copies.
  "${mpi[@]}" -n 3 "$rs" replay "$model" "${job[@]}" --shard-dir "$tmp/node%r" --db "$tmp/sd.db" >"$tmp/out" 2>"$tmp/err"
  expect "mpirun -n 3 --shard-dir: exit 0, rank 0 receives and merges" \
    grep -q "3 ranks, 300 images merged into .*sd.db (received [0-9.]* MB in" "$tmp/out"
  same_run "$tmp/single.db" "$tmp/sd.db" "mpirun -n 3 --shard-dir vs one process"
  expect "the shard stores stayed in their per-rank folders" \
    [ -s "$tmp/node0/sd.db.shard-0-of-3" -a -s "$tmp/node1/sd.db.shard-1-of-3" -a -s "$tmp/node2/sd.db.shard-2-of-3" ]
  expect "no shard store or received copy beside the output" [ -z "$(ls "$tmp" | grep '^sd\.db\.')" ]
  # A store over the 4 MiB chunk (2,500 images, ~5.7 MB) crosses in several messages: the
  # merged output equals a merge of the stores in the rank folders.
  "${mpi[@]}" -n 2 "$rs" replay "$model" --data $data --limit 5000 --shard-dir "$tmp/big%r" --db "$tmp/sc.db" >"$tmp/out" 2>"$tmp/err"
  expect "mpirun -n 2 --shard-dir, 5,000 images: rank 0 merges" grep -q "2 ranks, 5000 images merged into" "$tmp/out"
  expect "the shard stores exceed one 4 MiB chunk" [ "$(stat -c %s "$tmp/big1/sc.db.shard-1-of-2")" -gt 4194304 ]
  "$rs" merge --db "$tmp/scm.db" "$tmp/big0/sc.db.shard-0-of-2" "$tmp/big1/sc.db.shard-1-of-2" >/dev/null 2>"$tmp/err"
  same_run "$tmp/scm.db" "$tmp/sc.db" "chunked transfer vs merging the rank folders' stores"
  # A failed transfer (rank 0 cannot write the received copy) fails the job in one line and
  # leaves the shard stores; the same command then merges.
  mkdir "$tmp/tf.db.shard-1-of-2.received"
  "${mpi[@]}" -n 2 "$rs" replay "$model" "${job[@]}" --shard-dir "$tmp/tf%r" --db "$tmp/tf.db" >/dev/null 2>"$tmp/err"
  status=$?
  expect "a failed transfer fails the job (exit $status)" [ $status != 0 ]
  one_transfer_line() {
    [ "$(grep -c '^routerscope' "$tmp/err")" = 1 ] &&
      grep -q "^routerscope: rank 0 of 2: cannot write .*tf.db.shard-1-of-2.received (rank 1's shard store): Is a directory; every rank's shard store stays in place" "$tmp/err"
  }
  expect "with one line naming the file" one_transfer_line
  kept_unmerged() {
    [ -s "$tmp/tf0/tf.db.shard-0-of-2" -a -s "$tmp/tf1/tf.db.shard-1-of-2" ] &&
      [ "$(sqlite3 "$tmp/tf.db" "SELECT count(*) FROM runs WHERE status='done'" 2>/dev/null || echo 0)" = 0 ]
  }
  expect "and leaves both shard stores and nothing merged" kept_unmerged
  rmdir "$tmp/tf.db.shard-1-of-2.received"
  "${mpi[@]}" -n 2 "$rs" replay "$model" "${job[@]}" --shard-dir "$tmp/tf%r" --db "$tmp/tf.db" >"$tmp/out" 2>"$tmp/err"
  expect "the same command then merges" grep -q "2 ranks, 300 images merged into" "$tmp/out"
  same_run "$tmp/single.db" "$tmp/tf.db" "transfer failed, rerun, vs one process"
fi

testlib_done shard
