#!/usr/bin/env bash
# End-to-end tests of `replay --record topk` (issue 28, docs/store.md "Record forms"): a topk
# run stores the top-k ids and gates of a full run of the same job, byte for byte, and empty
# probs BLOBs; it is its own run beside the full one, `runs` shows it, a resume and a merge of
# shards keep it (the merged run's checksum is the single-process run's); every reader of the
# softmax (export --probs, render heatmap --metric entropy|jsd, the SQL rs_probs) refuses it
# with exit 1 and the one line "run N was recorded with --record topk: no softmax for ...",
# stats and report leave those figures out with that line as a note, and the readers of ids
# and gates (stats' agreement, export, render heatmap gate|changed, rs_routing) work as for a
# full run; a damaged topk record is refused.
# usage: record_test.sh ROUTERSCOPE MODEL SQLITE_EXTENSION
set -u
rs=$(realpath "$1") model=$(realpath "$2") ext=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init
if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip record tests: dataset-fashion-mnist is not installed"; echo "record_cli: 0 passed, 0 failed"; exit 0
fi
db=$tmp/r.db
q() { sqlite3 "$1" "$2"; }
job=(--data fashion-mnist:test --limit 40 --seed 5)
"$rs" replay "$model" "${job[@]}" --db "$db" --threads 2 --record topk >/dev/null 2>"$tmp/err"
expect "replay --record topk" [ $? = 0 ]
"$rs" replay "$model" "${job[@]}" --db "$db" --threads 1 --batch 16 >/dev/null 2>"$tmp/err"
expect "the same job recorded full is another run" [ "$(q "$db" "SELECT count(*) FROM runs WHERE status = 'done'")" = 2 ]
expect "runs.record: topk, and NULL (full) for the full run" \
  [ "$(q "$db" "SELECT group_concat(coalesce(record, 'NULL'), ',') FROM (SELECT record FROM runs ORDER BY id)")" = "topk,NULL" ]
expect "every probs BLOB of the topk run is empty" \
  [ "$(q "$db" "SELECT count(*) FROM routing WHERE run_id = 1 AND typeof(probs) = 'blob' AND length(probs) = 0")" = 160 ]
expect "its ids and gates are the full run's, byte for byte" \
  [ "$(q "$db" "SELECT count(*) FROM routing a JOIN routing b ON b.run_id = 2 AND a.image = b.image AND a.view = b.view
                 AND a.layer = b.layer WHERE a.run_id = 1 AND a.top_idx = b.top_idx AND a.top_gate = b.top_gate")" = 160 ]
"$rs" runs --db "$db" >"$tmp/runs" 2>"$tmp/err"
expect "runs shows 'record topk' for run 1 only" \
  sh -c "grep '^1 ' '$tmp/runs' | grep -q 'record topk' && ! grep '^2 ' '$tmp/runs' | grep -q 'record'"
"$rs" replay "$model" "${job[@]}" --db "$db" --record topk >"$tmp/out" 2>"$tmp/err"
expect "replaying the topk job again finds run 1 complete" grep -q "run 1 is already complete" "$tmp/out"
"$rs" replay "$model" "${job[@]}" --db "$db" --record half >/dev/null 2>"$tmp/err"
expect "--record half is a usage error" failed_with $? 2 "--record wants full or topk"

# --- readers that need the softmax refuse, in one line --------------------------------------
line="run 1 was recorded with --record topk: no softmax for"
"$rs" export --db "$db" --run 1 --probs >"$tmp/probs" 2>"$tmp/err"
expect "export --probs: exit 1, one line" failed_with $? 1 "^routerscope: $line export --probs$"
expect "and no rows" [ ! -s "$tmp/probs" ]
for m in entropy jsd; do
  "$rs" render heatmap --db "$db" --run 1 --metric $m -o "$tmp/h.png" >/dev/null 2>"$tmp/err"
  expect "render heatmap --metric $m: exit 1, one line" failed_with $? 1 "$line"
done
for m in gate changed; do
  "$rs" render heatmap --db "$db" --run 1 --metric $m -o "$tmp/h-$m.png" >/dev/null 2>"$tmp/err"
  expect "render heatmap --metric $m draws" [ -s "$tmp/h-$m.png" ]
done

# --- multi-figure readers leave those figures out, with the line as a note ------------------
"$rs" stats --db "$db" --run 1 --resamples 50 >"$tmp/s1.md" 2>"$tmp/err"
expect "stats of the topk run: exit 0" [ $? = 0 ]
expect "the note says which figures are missing" grep -q "^$line the PRC score, JSD and entropy$" "$tmp/s1.md"
expect "no JSD or entropy column" sh -c "! grep -q 'JSD (bits)\|Entropy (bits)' '$tmp/s1.md' && grep -q 'Load CV' '$tmp/s1.md'"
"$rs" stats --db "$db" --run 2 --resamples 50 >"$tmp/s2.md" 2>"$tmp/err"
expect "agreement, accuracy and load as the full run's" \
  cmp -s <(grep '^| view\|^| all' "$tmp/s1.md" | grep -v '0\.[0-9]\{4\} |$') <(grep '^| view\|^| all' "$tmp/s2.md" | grep -v '0\.[0-9]\{4\} |$')
for f in json tex; do
  "$rs" stats --db "$db" --run 1 --resamples 50 --format $f >"$tmp/s1.$f" 2>"$tmp/err"
  expect "stats --format $f carries the note" grep -q "$line the PRC score" "$tmp/s1.$f"
done
"$rs" stats --db "$db" --run 1 --resamples 50 --format csv >"$tmp/s1.csv" 2>"$tmp/err"
expect "stats --format csv (no notes) has no rows of them" \
  sh -c "grep -q ',load_cv,' '$tmp/s1.csv' && ! grep -q 'jsd\|entropy\|prc' '$tmp/s1.csv'"
"$rs" compare --db "$db" 1 2 --force --resamples 50 >"$tmp/cmp" 2>"$tmp/err"
expect "compare of a topk and a full run" [ $? = 0 ]
"$rs" report --db "$db" --runs 1 --out "$tmp/rep" --resamples 50 >/dev/null 2>"$tmp/err"
expect "report of the topk run: exit 0, the note in it" grep -q "$line the PRC score" "$tmp/rep/report.md"

# --- export and SQL ------------------------------------------------------------------------
"$rs" export --db "$db" --run 1 | cut -d, -f1,3- >"$tmp/e1" 2>"$tmp/err"
"$rs" export --db "$db" --run 2 | cut -d, -f1,3- >"$tmp/e2"
expect "export of the topk run: the full run's rows" cmp -s "$tmp/e1" "$tmp/e2"
sql_env=()
if readelf -d "$ext" 2>/dev/null | grep -q 'libasan'; then
  asan=$(${CC:-cc} -print-file-name=libasan.so 2>/dev/null)
  sql_env=(env "LD_PRELOAD=$asan" "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0")
fi
sql() { "${sql_env[@]}" sqlite3 -bail -csv "$1" ".load $ext" "${@:2}"; }
expect "rs_routing(1) reads the topk run" [ "$(sql "$db" "SELECT count(*) FROM rs_routing(1)" 2>"$tmp/err")" = 16000 ]
sql "$db" "SELECT count(*) FROM rs_probs(1)" >/dev/null 2>"$tmp/err"
expect "rs_probs(1) is an SQL error saying so" grep -q "rs_probs: $line rs_probs" "$tmp/err"

# --- resume and merge keep the form --------------------------------------------------------
cp "$db" "$tmp/k.db"
q "$tmp/k.db" "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE run_id = 1 AND image >= 20;
               UPDATE runs SET images_done = 20, status = 'interrupted', checksum = NULL WHERE id = 1"
"$rs" replay --db "$tmp/k.db" --resume 1 --record full >/dev/null 2>"$tmp/err"
expect "--resume keeps the run's form: --record with it is a usage error" failed_with $? 2 "only MODEL"
"$rs" replay --db "$tmp/k.db" --resume 1 --threads 1 >/dev/null 2>"$tmp/err"
expect "a resumed topk run records topk" \
  [ "$(q "$tmp/k.db" "SELECT record, status, checksum = (SELECT checksum FROM runs WHERE id = 1) FROM runs WHERE id = 1")" = "topk|done|1" ]
expect "and ends with the uninterrupted run's checksum" \
  [ "$(q "$tmp/k.db" "SELECT checksum FROM runs WHERE id = 1")" = "$(q "$db" "SELECT checksum FROM runs WHERE id = 1")" ]
for i in 0 1; do
  "$rs" replay "$model" "${job[@]}" --db "$tmp/s$i.db" --threads 1 --record topk --shard $i/2 >/dev/null 2>"$tmp/err"
done
"$rs" merge --db "$tmp/m.db" "$tmp/s1.db" "$tmp/s0.db" >/dev/null 2>"$tmp/err"
expect "merged topk shards: a topk run with the single-process run's checksum and identity" \
  [ "$(q "$tmp/m.db" "SELECT record, checksum, identity FROM runs")" = "$(q "$db" "SELECT record, checksum, identity FROM runs WHERE id = 1")" ]

if [ "${RS_MPI:-0}" = 1 ] && { [ -z "${RS_SANITIZE:-}" ] || [ "$RS_SANITIZE" = none ]; } && command -v mpirun >/dev/null; then
  export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
  mpirun --oversubscribe --allow-run-as-root -n 2 "$rs" replay "$model" "${job[@]}" --db "$tmp/mpi.db" --record topk \
    >/dev/null 2>"$tmp/err"
  expect "mpirun -n 2 --record topk: rank 0 merges a topk run with the single-process checksum" \
    [ "$(q "$tmp/mpi.db" "SELECT record, checksum FROM runs")" = "$(q "$db" "SELECT record, checksum FROM runs WHERE id = 1")" ]
else
  echo "skip the MPI test: the release build with MPI and mpirun run it"
fi

# --- damage ----------------------------------------------------------------------------------
cp "$db" "$tmp/d.db"
q "$tmp/d.db" "UPDATE routing SET top_gate = CAST(x'0000c07f' || substr(top_gate, 5) AS BLOB)
               WHERE run_id = 1 AND image = 3 AND view = 1 AND layer = 0; UPDATE runs SET checksum = NULL"
"$rs" stats --db "$tmp/d.db" --run 1 >/dev/null 2>"$tmp/err"
expect "a NaN gate in a topk run: exit 1, one line naming the place" \
  failed_with $? 1 "run 1 image 3 view 1 layer 0: token 0 rank 0: gate nan is not a probability"
testlib_done record_cli
