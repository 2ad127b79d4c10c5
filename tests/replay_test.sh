#!/usr/bin/env bash
# End-to-end tests of `routerscope replay` and `runs` on the real binary:
#   determinism   --threads 1 --batch 7 and --threads 2 --batch 64 store identical records
#   durability    a replay killed with SIGKILL, then run again, holds exactly the records of
#                 an uninterrupted run: none missing, none twice
#   interruption  SIGINT commits the batch in flight, says how to resume, --resume finishes
#   identity      an identical finished job is reported, not recomputed
#   bad input     unknown view spec, bad number, missing file, a corrupt image mid-run
# usage: replay_test.sh ROUTERSCOPE MODEL
set -u
rs=$(realpath "$1") model=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

# Every stored fact of a run, in a canonical order: samples, predictions, routing blobs.
dump() { # DB RUN
  sqlite3 "$1" "SELECT 's', image, label FROM samples WHERE run_id=$2 ORDER BY image;
                SELECT 'p', image, view, predicted, printf('%.9g', prob), params, hex(match) FROM predictions
                  WHERE run_id=$2 ORDER BY image, view;
                SELECT 'r', image, view, layer, hex(top_idx), hex(top_gate), hex(probs) FROM routing
                  WHERE run_id=$2 ORDER BY image, view, layer;"
}
count_rows() { sqlite3 "$1" "SELECT count(*) FROM routing WHERE run_id=$2"; }
differs() { ! cmp -s "$1" "$2"; }

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip replay tests: dataset-fashion-mnist is not installed"; echo "replay: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test

# --- determinism -------------------------------------------------------------------------
"$rs" replay "$model" --data $data --limit 150 --db "$tmp/a.db" --threads 1 --batch 7 --seed 5 >"$tmp/out" 2>"$tmp/err"
expect "replay pair, 1 thread, batch 7" grep -q "150 images x 2 views x 2 MoE layers x 50 tokens: 30000 routing records" "$tmp/out"
"$rs" replay "$model" --data $data --limit 150 --db "$tmp/b.db" --threads 2 --batch 64 --seed 5 >"$tmp/out" 2>"$tmp/err"
expect "replay pair, 2 threads, batch 64" grep -q "30000 routing records" "$tmp/out"
dump "$tmp/a.db" 1 >"$tmp/a.txt"; dump "$tmp/b.db" 1 >"$tmp/b.txt"
expect "records identical across threads and batch sizes" cmp -s "$tmp/a.txt" "$tmp/b.txt"
expect "150 x 2 x 2 routing rows" [ "$(count_rows "$tmp/a.db" 1)" = 600 ]
"$rs" replay "$model" --data $data --limit 150 --db "$tmp/c.db" --threads 2 --batch 64 --seed 6 >/dev/null 2>&1
dump "$tmp/c.db" 1 >"$tmp/c.txt"
expect "another seed draws other views" differs "$tmp/a.txt" "$tmp/c.txt"

# --- identity: the same job again is reported, not recomputed ---------------------------
"$rs" replay "$model" --data $data --limit 150 --db "$tmp/a.db" --threads 2 --batch 64 --seed 5 >"$tmp/out" 2>"$tmp/err"
expect "identical finished run is reported" grep -q "run 1 is already complete" "$tmp/out"
expect "still one run" [ "$(sqlite3 "$tmp/a.db" 'SELECT count(*) FROM runs')" = 1 ]

# --- noise protocol ------------------------------------------------------------------------
"$rs" replay "$model" --data $data --limit 40 --protocol noise --db "$tmp/n.db" >"$tmp/out" 2>"$tmp/err"
expect "noise protocol: 6 views" grep -q "40 images x 6 views" "$tmp/out"
expect "noise views match patch for patch" [ "$(sqlite3 "$tmp/n.db" "SELECT count(*) FROM predictions WHERE hex(match) != (SELECT hex(match) FROM predictions WHERE image=0 AND view=0)")" = 0 ]

# --- durability: SIGKILL mid-run, then the identical command resumes ------------------------
# 1,200 images in the release build; under the sanitizers (RS_BUILD_KIND, tests/meson.build)
# 400 are still far more than the kill point and keep the suite far from its timeout.
full=1200
[ "${RS_BUILD_KIND:-release}" = sanitize ] && full=400
"$rs" replay "$model" --data $data --limit $full --db "$tmp/ref.db" --batch 20 --threads 2 >/dev/null 2>&1
"$rs" replay "$model" --data $data --limit $full --db "$tmp/k.db" --batch 20 --threads 1 >/dev/null 2>&1 &
pid=$!
done_now=0
for _ in $(seq 1 400); do
  done_now=$(sqlite3 "$tmp/k.db" "SELECT images_done FROM runs WHERE id=1" 2>/dev/null || echo 0)
  [ "${done_now:-0}" -ge 100 ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
killed_at=$(sqlite3 "$tmp/k.db" "SELECT images_done FROM runs WHERE id=1")
expect "killed mid-run ($killed_at of $full committed)" [ "$killed_at" -gt 0 -a "$killed_at" -lt $full ]
expect "killed run holds exactly its committed batches" [ "$(count_rows "$tmp/k.db" 1)" = $((killed_at * 4)) ]
"$rs" replay "$model" --data $data --limit $full --db "$tmp/k.db" --batch 64 --threads 2 >"$tmp/out" 2>"$tmp/err"
expect "identical command resumes the killed run" grep -q "run 1 (resumed): $((full - killed_at)) images" "$tmp/out"
dump "$tmp/ref.db" 1 >"$tmp/ref.txt"; dump "$tmp/k.db" 1 >"$tmp/k.txt"
expect "resumed run equals an uninterrupted one" cmp -s "$tmp/ref.txt" "$tmp/k.txt"
expect "no record twice" [ "$(count_rows "$tmp/k.db" 1)" = $((full * 4)) ]

# --- SIGINT: finish the batch, commit, say how to resume -----------------------------------
"$rs" replay "$model" --data $data --limit $full --db "$tmp/i.db" --batch 20 --threads 1 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 400); do
  n=$(sqlite3 "$tmp/i.db" "SELECT images_done FROM runs WHERE id=1" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 60 ] && break
  sleep 0.05
done
kill -INT $pid; wait $pid; status=$?
expect "SIGINT exits 130" [ "$status" = 130 ]
expect "SIGINT says how to resume" grep -q "resume with: routerscope replay --db $tmp/i.db --resume 1" "$tmp/err"
expect "runs shows it interrupted" sh -c "'$rs' runs --db '$tmp/i.db' | grep -q '^1 *interrupted'"
"$rs" replay --db "$tmp/i.db" --resume 1 --threads 2 >"$tmp/out" 2>"$tmp/err"
dump "$tmp/i.db" 1 >"$tmp/i.txt"
expect "--resume finishes it, equal to the uninterrupted run" cmp -s "$tmp/ref.txt" "$tmp/i.txt"
expect "runs shows it done" sh -c "'$rs' runs --db '$tmp/i.db' | grep -q '^1 *done *$full/$full'"

# --- bad input: one line, non-zero exit, nothing half-recorded -----------------------------
"$rs" replay "$model" --data $data --protocol custom --views 'clean;noise:sigma=abc' --db "$tmp/e.db" >/dev/null 2>"$tmp/err"
expect "bad number: exit 1, one line" failed_with $? 1 "sigma 'abc' is not a number"
expect "bad spec creates no database" [ ! -e "$tmp/e.db" ]
"$rs" replay "$model" --data $data --protocol custom --views 'clean;blur:r=1' --db "$tmp/e.db" >/dev/null 2>"$tmp/err"
expect "unknown view op" failed_with $? 1 "unknown operation 'blur'"
# A parameter typo names the closest key and lists the valid ones, in its one line.
"$rs" replay "$model" --data $data --protocol custom --views 'clean;noise:sgima=0.1' --db "$tmp/e.db" >/dev/null 2>"$tmp/err"
expect "parameter typo" failed_with $? 1 \
  "view 'noise:sgima=0.1': noise has no parameter 'sgima' (did you mean 'sigma'? noise takes sigma, severity)\$"
"$rs" replay "$tmp/none.safetensors" --data $data --db "$tmp/e.db" >/dev/null 2>"$tmp/err"
expect "missing model" failed_with $? 1 "none.safetensors: cannot open"
"$rs" replay "$model" --data $data --db "$tmp/e.db" --batch zero >/dev/null 2>"$tmp/err"
expect "bad flag value: exit 2" failed_with $? 2 "--batch wants an integer"
"$rs" replay "$model" --data $data --db "$tmp/e.db" --frobnicate >/dev/null 2>"$tmp/err"
expect "unknown flag: exit 2" failed_with $? 2 "unknown option '--frobnicate'"
# A list of 8x8 grey PNGs with one truncated file in the second batch.
echo 'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAU0lEQVR4nAFIALf/AAAgQGCAoMDgAAQkRGSEpMTkAAgoSGiIqMjoAAwsTGyMrMzsABAwUHCQsNDwABQ0VHSUtNT0ABg4WHiYuNj4ABw8XHycvNz8FUQfgStz92UAAAAASUVORK5CYII=' | base64 -d >"$tmp/good.png"
head -c 60 "$tmp/good.png" >"$tmp/cut.png"
for i in $(seq 0 29); do
  if [ $i = 24 ]; then echo "cut.png 3"; else echo "good.png $((i % 10))"; fi
done >"$tmp/list.txt"
"$rs" replay "$model" --data "list:$tmp/list.txt" --db "$tmp/f.db" --batch 20 >/dev/null 2>"$tmp/err"
expect "corrupt image mid-run: exit 1, one line naming it" failed_with $? 1 "cut.png"
expect "the run is marked failed" [ "$(sqlite3 "$tmp/f.db" "SELECT status FROM runs WHERE id=1")" = failed ]
expect "only whole batches before the failure are stored" \
  [ "$(sqlite3 "$tmp/f.db" "SELECT images_done FROM runs WHERE id=1"):$(count_rows "$tmp/f.db" 1)" = 20:80 ]
"$rs" replay --db "$tmp/i.db" --resume 1 --limit 5 >/dev/null 2>"$tmp/err"
expect "--resume with a slice flag is a usage error" failed_with $? 2 "only MODEL, --threads and --batch"
"$rs" replay --db "$tmp/missing.db" --resume 1 >/dev/null 2>"$tmp/err"
expect "--resume on a missing database" failed_with $? 1 "missing.db: no such database"
expect "and creates no database" [ ! -e "$tmp/missing.db" ]
"$rs" replay "$model" --data $data --db "" >/dev/null 2>"$tmp/err"
expect "--db '' is a usage error" failed_with $? 2 "--db wants a file"
"$rs" replay "$model" --data $data --db "$tmp/p.db" --protocol triple >/dev/null 2>"$tmp/err"
expect "unknown protocol is a usage error" failed_with $? 2 "unknown protocol 'triple'"
# Two replays into one database: the second is refused while the first holds it.
"$rs" replay "$model" --data $data --limit 3000 --db "$tmp/two.db" --batch 20 --threads 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  [ "$(sqlite3 "$tmp/two.db" "SELECT images_done FROM runs WHERE id=1" 2>/dev/null || echo 0)" -ge 20 ] && break
  sleep 0.05
done
"$rs" replay "$model" --data $data --limit 3000 --db "$tmp/two.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "a second replay into a busy database is refused" failed_with $? 1 "another routerscope replay is writing"
wait $pid
expect "the first one finishes its run" [ "$(sqlite3 "$tmp/two.db" "SELECT status || images_done FROM runs")" = done3000 ]
# Relative paths mean different files in different folders: different runs.
mkdir -p "$tmp/d1" "$tmp/d2"
echo 'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAU0lEQVR4nAFIALf/AAAgQGCAoMDgAAQkRGSEpMTkAAgoSGiIqMjoAAwsTGyMrMzsABAwUHCQsNDwABQ0VHSUtNT0ABg4WHiYuNj4ABw8XHycvNz8FUQfgStz92UAAAAASUVORK5CYII=' | base64 -d >"$tmp/d1/x.png"
cp "$tmp/d1/x.png" "$tmp/d2/x.png"; echo "x.png 1" >"$tmp/d1/l.txt"; echo "x.png 2" >"$tmp/d2/l.txt"
(cd "$tmp/d1" && "$rs" replay "$model" --data list:l.txt --db "$tmp/rel.db" >/dev/null 2>&1)
(cd "$tmp/d2" && "$rs" replay "$model" --data list:l.txt --db "$tmp/rel.db" >"$tmp/out" 2>"$tmp/err")
expect "the same relative --data in another folder is another run" grep -q "^run 2:" "$tmp/out"
printf '\x00\x00\x08\x01\x00\x00\x00\x01' >"$tmp/bad.idx"
"$rs" replay "$model" --data "idx:$tmp/bad.idx" --db "$tmp/g.db" >/dev/null 2>"$tmp/err"
expect "IDX with a wrong magic: exit 1, one line" failed_with $? 1 "bad.idx: magic 0x00000801"
expect "and no database is created" [ ! -e "$tmp/g.db" ]
printf '\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$tmp/short.idx"
"$rs" replay "$model" --data "idx:$tmp/short.idx" --db "$tmp/g.db" >/dev/null 2>"$tmp/err"
expect "IDX with a wrong count: exit 1, one line" failed_with $? 1 "short.idx: truncated"
"$rs" replay "$model" --data "idx:$tmp/absent.idx" --db "$tmp/g.db" >/dev/null 2>"$tmp/err"
expect "missing data file" failed_with $? 1 "absent.idx"
"$rs" runs --db "$tmp/nothing.db" >/dev/null 2>"$tmp/err"
expect "runs on a missing database" failed_with $? 1 "nothing.db"

testlib_done replay
