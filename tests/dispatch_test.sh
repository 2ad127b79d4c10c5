#!/usr/bin/env bash
# End-to-end tests of dispatch with expert capacity (docs/dispatch.md) on the tiny model:
# eval reports drops and a factor that drops nothing keeps the accuracy; replay records
# kept masks that do not depend on --batch, --threads, sharding or an interrupted-and-
# resumed run;
# the settings are part of the identity; stats prints the dispatch tables; an older store
# still reads; bad options fail with one line.
# usage: dispatch_test.sh ROUTERSCOPE MODEL GOLDEN_DIR
set -u
rs=$(realpath "$1") model=$(realpath "$2") golden=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip dispatch tests: dataset-fashion-mnist is not installed"; echo "dispatch: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test

# --- eval ------------------------------------------------------------------------------------
"$rs" eval "$model" --data $data --limit 60 --threads 1 >"$tmp/plain" 2>"$tmp/err"
"$rs" eval "$model" --data $data --limit 60 --threads 1 --capacity-factor 100 >"$tmp/wide" 2>"$tmp/err"
expect "a factor that drops nothing: no drops, the plain accuracy" \
  sh -c "grep -q ': 0 of 12000 top-k choices dropped' '$tmp/wide' && [ \"\$(grep -o 'accuracy.*)' '$tmp/plain')\" = \"\$(grep -o 'accuracy.*)' '$tmp/wide')\" ]"
"$rs" eval "$model" --data $data --limit 60 --threads 1 --capacity-factor 0.5 --group-images 4 --bpr >"$tmp/small" 2>"$tmp/err"
expect "a small factor drops choices and says so" grep -qE 'capacity factor 0.5, groups of 4 images, BPR: [1-9][0-9]* of 12000' "$tmp/small"
"$rs" eval "$model" --data $data --limit 60 --threads 2 --batch 7 --capacity-factor 0.5 --group-images 4 --bpr >"$tmp/small2" 2>"$tmp/err"
expect "eval with dispatch does not depend on --batch or --threads" \
  [ "$(grep -v speed "$tmp/small")" = "$(grep -v speed "$tmp/small2")" ]

# --- replay: records independent of batch and threads ----------------------------------------
opts=(--data $data --limit 30 --capacity-factor 0.75 --group-images 4)
"$rs" replay "$model" "${opts[@]}" --db "$tmp/a.db" --threads 1 --batch 4 >/dev/null 2>"$tmp/err"
expect "replay with a capacity factor" [ $? = 0 ]
"$rs" replay "$model" "${opts[@]}" --db "$tmp/b.db" --threads 2 --batch 30 >/dev/null 2>"$tmp/err"
dump() { sqlite3 "$1" "SELECT image, view, layer, hex(top_idx), hex(top_gate), hex(probs), hex(kept) FROM routing ORDER BY 1, 2, 3"; }
expect "records and kept masks equal for any batch and thread count" [ "$(dump "$tmp/a.db" | md5sum)" = "$(dump "$tmp/b.db" | md5sum)" ]
expect "kept masks hold drops" [ "$(sqlite3 "$tmp/a.db" "SELECT sum(length(kept) - length(replace(kept, x'00', '')) > 0) FROM routing")" -gt 0 ]
expect "the run records its dispatch" [ "$(sqlite3 "$tmp/a.db" "SELECT capacity_factor, group_images, bpr FROM runs")" = "0.75|4|0" ]
"$rs" replay "$model" "${opts[@]}" --db "$tmp/a.db" --threads 1 >"$tmp/out" 2>"$tmp/err"
expect "an identical job is reported, not recomputed" grep -q "already complete" "$tmp/out"
"$rs" replay "$model" "${opts[@]}" --bpr --db "$tmp/a.db" --threads 1 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" --data $data --limit 30 --db "$tmp/a.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "BPR and no capacity are runs of their own; the plain one records no mask" \
  [ "$(sqlite3 "$tmp/a.db" "SELECT group_concat(coalesce(bpr, 'none')) FROM runs ORDER BY id")|$(sqlite3 "$tmp/a.db" "SELECT count(*) FROM routing WHERE run_id = 3 AND kept IS NULL")" = "0,1,none|120" ]
expect "BPR keeps other choices than token order" \
  [ "$(sqlite3 "$tmp/a.db" "SELECT count(*) FROM routing x JOIN routing y USING (image, view, layer) WHERE x.run_id = 1 AND y.run_id = 2 AND x.kept != y.kept")" -gt 0 ]

# --- resume: an interrupted run (cut by deleting its last images) finishes identically ----------
cp "$tmp/b.db" "$tmp/c.db"
sqlite3 "$tmp/c.db" "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE image >= 12; UPDATE runs SET images_done = 12, status = 'interrupted'"
"$rs" replay --db "$tmp/c.db" --resume 1 --threads 1 --batch 8 >"$tmp/out" 2>"$tmp/err"
expect "resume takes the run's dispatch and ends with the same records" \
  sh -c "grep -q resumed '$tmp/out' && [ \"\$(dump '$tmp/c.db' | md5sum)\" = \"\$(dump '$tmp/b.db' | md5sum)\" ]"

# --- shards: cut at group boundaries, merged into the whole run's records ------------------------
for i in 0 1; do
  "$rs" replay "$model" "${opts[@]}" --db "$tmp/s$i.db" --shard $i/2 --threads 1 >"$tmp/s$i.out" 2>"$tmp/err"
done
"$rs" merge --db "$tmp/m.db" "$tmp/s0.db" "$tmp/s1.db" >/dev/null 2>"$tmp/err"
expect "shards start at a group boundary and merge into the whole run's records and identity" \
  sh -c "grep -q 'images 0..15)' '$tmp/s0.out' && [ \"\$(dump '$tmp/m.db' | md5sum)\" = \"\$(dump '$tmp/b.db' | md5sum)\" ] &&
         [ \"\$(sqlite3 '$tmp/m.db' 'SELECT identity, capacity_factor FROM runs')\" = \"\$(sqlite3 '$tmp/b.db' 'SELECT identity, capacity_factor FROM runs')\" ]"

# --- stats -----------------------------------------------------------------------------------
"$rs" stats --db "$tmp/a.db" --run 1 --resamples 50 >"$tmp/stats" 2>"$tmp/err"
expect "stats: dispatch note and the three dispatch tables" \
  sh -c "grep -q 'dispatch: capacity factor 0.75, groups of 4 images' '$tmp/stats' &&
         grep -q 'choices dropped by expert capacity' '$tmp/stats' && grep -q 'Expert 7' '$tmp/stats' &&
         grep -q 'routing_changes_kept' '$tmp/stats'"
"$rs" stats --db "$tmp/a.db" --run 1 --resamples 50 --format json >"$tmp/stats.json" 2>"$tmp/err"
check_json() { # the pooled drop rate equals the kept masks' zeros over the top-k ranks
  python3 - "$tmp/stats.json" "$tmp/a.db" <<'PY'
import json, sqlite3, sys
tables = json.load(open(sys.argv[1]))["tables"]
drop = next(t for t in tables if t["title"].startswith("Top-k choices dropped"))
row = next(r for r in drop["rows"] if r["view"] == "all" and r["layer"] == "all")
db = sqlite3.connect(sys.argv[2])
masks = [bytes(b) for (b,) in db.execute("SELECT kept FROM routing WHERE run_id = 1")]
dropped = sum(x == 0 for m in masks for x in m)  # k = 2 = R: every rank is dispatched
total = sum(len(m) for m in masks)
assert row["cells"]["choices"]["value"] == total, (row, total)
assert abs(row["cells"]["dropped"]["value"] - dropped / total) < 1e-9, (row, dropped, total)
agree = next(t for t in tables if t["title"].startswith("Agreement with view 0 before"))
rck = next(r for r in agree["rows"] if r["layer"] == "all")["cells"]["routing_changes_kept"]
assert 0 < rck["value"] < 1 and rck["lo"] <= rck["value"] <= rck["hi"], rck
PY
}
expect "stats json: drop rate = the stored masks; routing_changes_kept inside its interval" check_json
"$rs" stats --db "$tmp/a.db" --run 3 --resamples 0 >"$tmp/stats3" 2>"$tmp/err"
expect "a run without capacity has no dispatch tables" sh -c "! grep -q 'routing_changes_kept' '$tmp/stats3'"

# --- a store of schema 1 reads as runs without capacity ----------------------------------------
cp "$golden/store-v1.db" "$tmp/v1.db"
"$rs" stats --db "$tmp/v1.db" --run 1 --resamples 0 >"$tmp/v1" 2>"$tmp/err"
expect "schema-1 store: stats in place, no dispatch tables" \
  sh -c "[ $? = 0 ] && ! grep -q 'routing_changes_kept' '$tmp/v1' && [ \"\$(sqlite3 '$tmp/v1.db' 'PRAGMA user_version')\" = 1 ]"

# --- bad usage ----------------------------------------------------------------------------------
"$rs" replay "$model" --data $data --db "$tmp/x.db" --bpr >/dev/null 2>"$tmp/err"
expect "--bpr without a capacity factor: exit 2, one line" failed_with $? 2 "belong to --capacity-factor"
"$rs" eval "$model" --data $data --capacity-factor -1 >/dev/null 2>"$tmp/err"
expect "a negative factor: exit 2, one line" failed_with $? 2 "--capacity-factor wants a number in (0, 1000]"
"$rs" eval "$model" --data $data --capacity-factor 1 --group-images 0 >/dev/null 2>"$tmp/err"
expect "group of 0 images: exit 2, one line" failed_with $? 2 "--group-images wants an integer"
"$rs" eval "$model" --data $data --dispatch model --bpr >/dev/null 2>"$tmp/err"
expect "--dispatch model with --bpr: exit 2, one line" failed_with $? 2 "--dispatch model takes the model's own settings"
"$rs" eval "$model" --data $data --dispatch model >/dev/null 2>"$tmp/err"
expect "--dispatch model on a config without settings: exit 1, one line" failed_with $? 1 "carries no dispatch settings"
"$rs" replay --db "$tmp/a.db" --resume 1 --capacity-factor 2 >/dev/null 2>"$tmp/err"
expect "--resume with dispatch options: exit 2, one line" failed_with $? 2 "resume takes the run's own"

testlib_done dispatch
