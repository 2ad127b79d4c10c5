#!/usr/bin/env bash
# End-to-end tests of routing interventions (route: views, docs/dispatch.md "Routing
# interventions") on the tiny model: forced views record the router's own choices and what
# ran; forcing a view's own routing reproduces its records exactly; matched patches run the
# reference's experts and the class token and unmatched patches their own; records do not
# depend on --batch, --threads or sharding; under a capacity forced choices are never dropped
# and other tokens keep their fate; stats, export (and the SQL extension), the intervene
# protocol and the report; a schema-4 store reads in place and upgrades; bad specs fail
# with one line and exit 1.
# usage: route_test.sh ROUTERSCOPE MODEL EXTENSION GOLDEN_DIR
set -u
rs=$(realpath "$1") model=$(realpath "$2") ext=$(realpath "$3") golden=$(realpath "$4")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip route tests: dataset-fashion-mnist is not installed"; echo "route_cli: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test
q() { sqlite3 "$1" "$2"; }
# The tiny model: MoE blocks 1 and 3 (slots 0 and 1), 50 tokens (class token + 7x7), k = 2.

# --- forced views of a noise view -------------------------------------------------------------
views='clean;noise:severity=2;base:view=1+route:from=0;base:view=1+route:from=1;base:view=0+route:from=0;base:view=1+route:from=0,layers=1'
"$rs" replay "$model" --data $data --limit 12 --protocol custom --views "$views" --db "$tmp/a.db" \
  --threads 1 --batch 5 >/dev/null 2>"$tmp/err"
expect "replay with forced views" [ $? = 0 ]
expect "what ran is stored exactly where a view forces a layer (views 2-4 both layers, view 5 block 1 only)" \
  [ "$(q "$tmp/a.db" "SELECT group_concat(view || ':' || layer) FROM (SELECT DISTINCT view, layer FROM routing
       WHERE executed IS NOT NULL ORDER BY 1, 2)")" = "2:0,2:1,3:0,3:1,4:0,4:1,5:0" ]
expect "as T x k ids" [ "$(q "$tmp/a.db" "SELECT DISTINCT length(executed) FROM routing WHERE executed IS NOT NULL")" = 100 ]
same_records() { # VIEW_A VIEW_B: routing blobs and predictions equal, byte for byte
  [ "$(q "$tmp/a.db" "SELECT count(*) FROM routing a JOIN routing b USING (run_id, image, layer)
        WHERE a.view = $1 AND b.view = $2 AND a.top_idx = b.top_idx AND a.top_gate = b.top_gate AND a.probs = b.probs")" = 24 ] &&
  [ "$(q "$tmp/a.db" "SELECT count(*) FROM predictions a JOIN predictions b USING (run_id, image)
        WHERE a.view = $1 AND b.view = $2 AND a.predicted = b.predicted AND a.prob = b.prob")" = 12 ]
}
expect "forcing a view's own routing reproduces its records (base:view=1+route:from=1 = view 1)" same_records 1 3
expect "and so does the clean view forced to itself (base:view=0+route:from=0 = view 0)" same_records 0 4
expect "forcing clean routing into the noise view changes its later routing" \
  [ "$(q "$tmp/a.db" "SELECT count(*) FROM routing a JOIN routing b USING (run_id, image, layer)
        WHERE a.view = 1 AND b.view = 2 AND a.layer = 1 AND a.probs != b.probs")" -gt 0 ]
"$rs" export --db "$tmp/a.db" --run 1 >"$tmp/a.csv" 2>"$tmp/err"
# Columns: 3 image, 4 view, 5 layer, 8 is_cls, 9 patch, 12 match, 13 rank, 14 expert, 20 executed.
forced_from_view0() { # VIEW LAYERS: matched patches ran view 0's experts, the class token its own
  awk -F, -v v="$1" -v layers="$2" 'NR > 1 && $13 < 2 {
      if ($4 == 0) { ran[$3 " " $5 " " $9 " " $13] = $20; next }
      if ($4 != v) next
      forced = index(layers, $5) > 0
      want = $8 == 1 || !forced ? $14 : ran[$3 " " $5 " " $12 " " $13]
      if ($20 != want) bad++; n++ }
    END { exit bad > 0 || n != 12 * 2 * 50 * 2 }' "$tmp/a.csv"
}
expect "export: matched patches of a forced view ran view 0's experts, its class token its own" forced_from_view0 2 01
expect "export: layers=1 forces block 1 only" forced_from_view0 5 0
expect "export: the router's own choice stays in expert, what ran in executed" \
  [ "$(awk -F, 'NR > 1 && $4 == 2 && $8 == 0 && $13 < 2 && $14 != $20' "$tmp/a.csv" | wc -l)" -gt 0 ]

# --- a geometric perturbation: unmatched patches keep their own ---------------------------------
views_g='clean;crop:area=0.2-0.4+flip:p=0.5;base:view=1+route:from=0'
"$rs" replay "$model" --data $data --limit 12 --protocol custom --views "$views_g" --db "$tmp/g.db" \
  --threads 1 --batch 5 >/dev/null 2>"$tmp/err"
"$rs" export --db "$tmp/g.db" --run 1 >"$tmp/g.csv" 2>"$tmp/err"
geometric_ok() {
  awk -F, 'NR > 1 && $13 < 2 {
      if ($4 == 0) { ran[$3 " " $5 " " $9 " " $13] = $20; next }
      if ($4 != 2) next
      if ($12 < 0) { unmatched++; if ($20 != $14) bad++ } else if ($20 != ran[$3 " " $5 " " $12 " " $13]) bad++ }
    END { exit bad > 0 || unmatched == 0 }' "$tmp/g.csv"
}
expect "crop: matched patches ran view 0's experts at their match, unmatched ones their own" geometric_ok
expect "the forced view shares its base's match map" \
  [ "$(q "$tmp/g.db" "SELECT count(*) FROM predictions a JOIN predictions b USING (run_id, image)
        WHERE a.view = 1 AND b.view = 2 AND a.match = b.match")" = 12 ]

# --- records do not depend on --batch, --threads or sharding -------------------------------------
dump() { q "$1" "SELECT image, view, layer, hex(top_idx), hex(top_gate), hex(probs), hex(executed) FROM routing ORDER BY 1, 2, 3"; }
"$rs" replay "$model" --data $data --limit 12 --protocol custom --views "$views" --db "$tmp/b.db" \
  --threads 2 --batch 64 >/dev/null 2>"$tmp/err"
expect "the same records for another --batch and --threads" [ "$(dump "$tmp/a.db" | md5sum)" = "$(dump "$tmp/b.db" | md5sum)" ]
# Shards are whole forward groups (20 images of the tiny model): 45 images make three.
job=(--data $data --limit 45 --protocol custom --views 'clean;noise:severity=2;base:view=1+route:from=0,layers=1')
"$rs" replay "$model" "${job[@]}" --db "$tmp/w.db" --threads 2 >/dev/null 2>"$tmp/err"
for i in 0 1; do
  "$rs" replay "$model" "${job[@]}" --db "$tmp/s$i.db" --shard $i/2 --threads 1 >/dev/null 2>"$tmp/err"
done
"$rs" merge --db "$tmp/m.db" "$tmp/s0.db" "$tmp/s1.db" >/dev/null 2>"$tmp/err"
expect "shards merge into the single-process records, what ran included" \
  [ "$(q "$tmp/m.db" 'SELECT count(*) FROM routing WHERE executed IS NOT NULL')|$(dump "$tmp/m.db" | md5sum)" = \
    "45|$(dump "$tmp/w.db" | md5sum)" ]

# --- capacity: forced choices are never dropped, other tokens keep their fate ---------------------
"$rs" replay "$model" --data $data --limit 8 --protocol custom --views 'clean;noise:severity=2;base:view=1+route:from=0' \
  --capacity-factor 0.5 --group-images 4 --db "$tmp/k.db" --threads 1 >/dev/null 2>"$tmp/err"
"$rs" export --db "$tmp/k.db" --run 1 >"$tmp/k.csv" 2>"$tmp/err"
expect "capacity: the perturbed view drops choices" [ "$(awk -F, '$4 == 1 && $13 < 2 && $19 == 0' "$tmp/k.csv" | wc -l)" -gt 0 ]
forced_kept() { # a forced patch ran what view 0 ran there: its experts, kept or dropped as view 0's
  awk -F, 'NR > 1 && $13 < 2 { key = $3 " " $5 " " $13
      if ($4 == 0) { e[key " " $9] = $20; k[key " " $9] = $19; drops += $19 == 0; next }
      if ($4 == 2 && $8 == 0 && ($20 != e[key " " $12] || $19 != k[key " " $12])) bad++ }
    END { exit bad > 0 || drops == 0 }' "$tmp/k.csv"
}
expect "capacity: forced patches run view 0's experts, kept or dropped as view 0 had them" forced_kept
cls_kept() { awk -F, -v v="$1" '$4 == v && $5 == 0 && $8 == 1 { printf "%s", $19 }' "$tmp/k.csv"; }
expect "capacity: at block 1 the class tokens are kept or dropped as in the view forced" [ "$(cls_kept 1)" = "$(cls_kept 2)" ]
# With a group seed the forward pass runs images in a shuffled order: the forced rows follow.
seeded=(--data $data --limit 12 --protocol custom --views 'clean;noise:severity=2;base:view=1+route:from=0;base:view=1+route:from=1'
        --capacity-factor 0.5 --group-images 2 --group-seed 3)
"$rs" replay "$model" "${seeded[@]}" --db "$tmp/q1.db" --threads 1 --batch 2 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${seeded[@]}" --db "$tmp/q2.db" --threads 2 --batch 64 >/dev/null 2>"$tmp/err"
expect "group seed: forced records do not depend on --batch or --threads" \
  [ "$(dump "$tmp/q1.db" | md5sum)" = "$(dump "$tmp/q2.db" | md5sum)" ]
expect "group seed: forcing view 1's own routing reproduces its records" \
  [ "$(q "$tmp/q1.db" "SELECT count(*) FROM routing a JOIN routing b USING (run_id, image, layer)
        WHERE a.view = 1 AND b.view = 3 AND a.top_idx = b.top_idx AND a.probs = b.probs AND a.kept = b.kept")" = 24 ]
"$rs" export --db "$tmp/q1.db" --run 1 >"$tmp/q.csv" 2>"$tmp/err"
expect "group seed: matched patches ran view 0's experts" \
  awk -F, 'NR > 1 && $13 < 2 { if ($4 == 0) { ran[$3 " " $5 " " $9 " " $13] = $20; next }
      if ($4 == 2 && $8 == 0 && $20 != ran[$3 " " $5 " " $12 " " $13]) bad++ } END { exit bad > 0 }' "$tmp/q.csv"

# --- stats ---------------------------------------------------------------------------------------
"$rs" stats --db "$tmp/a.db" --format csv --resamples 200 >"$tmp/stats.csv" 2>"$tmp/err"
expect "stats: exit 0" [ $? = 0 ]
changed=$(q "$tmp/a.db" "SELECT count(*) FROM predictions a JOIN predictions b USING (run_id, image) WHERE a.view = 0 AND b.view = 1 AND a.predicted != b.predicted")
restored=$(q "$tmp/a.db" "SELECT count(*) FROM predictions a JOIN predictions b USING (run_id, image) JOIN predictions f USING (run_id, image)
  WHERE a.view = 0 AND b.view = 1 AND f.view = 2 AND a.predicted != b.predicted AND f.predicted = a.predicted")
row() { grep "^1,$1,$2,$3," "$tmp/stats.csv" | cut -d, -f5,8; }
expect "stats: the changed images of view 2 are the predictions that differ ($changed)" [ "$(row 'view 2' all changed)" = "$changed," ]
expect "stats: routing-attributable = restored / changed" \
  awk -v r="$restored" -v c="$changed" -v x="$(row 'view 2' all attributable | cut -d, -f1)" \
    'BEGIN { exit c == 0 ? x != "" : (x - r / c) ^ 2 > 1e-18 }'
expect "stats: self-forcing changes no prediction" [ "$(row 'view 4' all introduced)" = "0," ]
"$rs" stats --db "$tmp/a.db" --resamples 50 >"$tmp/stats.md" 2>"$tmp/err"
expect "stats: the interventions table, its forced blocks named" \
  sh -c "sed -n '/### Routing interventions/,\$p' '$tmp/stats.md' | grep -q '^| view 5 .*| block 1 '"
"$rs" stats --db "$tmp/g.db" --resamples 50 --format json >"$tmp/g.json" 2>"$tmp/err"
expect "stats json carries the intervals" grep -q '"attributable"' "$tmp/g.json"

# --- export v3 and the SQL extension ---------------------------------------------------------------
sql_env=()
if readelf -d "$ext" 2>/dev/null | grep -q 'libasan'; then
  sql_env=(env "LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so 2>/dev/null)" "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0")
fi
sql() { "${sql_env[@]}" sqlite3 -bail -csv "$1" ".load $ext" "${@:2}"; }
ints() { cut -d, -f1-14,16,17,19,20 "$1" | tr -d '\r'; } # every integer column
sql "$tmp/a.db" -header "SELECT * FROM rs_routing(1)" >"$tmp/sql.csv" 2>"$tmp/err"
expect "rs_routing gives the export's executed column" [ "$(ints "$tmp/sql.csv" | md5sum)" = "$(ints "$tmp/a.csv" | md5sum)" ]
"$rs" export --db "$tmp/a.db" --run 1 --probs >"$tmp/p.csv" 2>"$tmp/err"
expect "probs rows: k experts ran per token, each at its executed rank" \
  [ "$(awk -F, 'NR > 1 && $20 >= 0 && $19 == 1' "$tmp/p.csv" | wc -l)" = $((12 * 6 * 2 * 50 * 2)) ]
sql "$tmp/a.db" -header "SELECT * FROM rs_probs(1)" >"$tmp/sqlp.csv" 2>"$tmp/err"
pints() { cut -d, -f1-13,15-17,19,20 "$1" | tr -d '\r'; }
expect "rs_probs gives the export's probs rows" [ "$(pints "$tmp/sqlp.csv" | md5sum)" = "$(pints "$tmp/p.csv" | md5sum)" ]

# --- the intervene protocol and the report ------------------------------------------------------
"$rs" replay "$model" --data $data --limit 10 --protocol intervene --db "$tmp/i.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "intervene: clean, the perturbation, forced in all MoE blocks, then in each" \
  [ "$(q "$tmp/i.db" "SELECT group_concat(spec, ';') FROM (SELECT spec FROM views ORDER BY view)")" = \
    "clean;noise:severity=1;base:view=1+route:from=0;base:view=1+route:from=0,layers=1;base:view=1+route:from=0,layers=3" ]
"$rs" replay "$model" --data $data --limit 10 --protocol intervene --augment 'rotate:deg=20' --db "$tmp/i.db" \
  --threads 1 >/dev/null 2>"$tmp/err"
expect "intervene --augment: the perturbation given" [ "$(q "$tmp/i.db" "SELECT spec FROM views WHERE run_id = 2 AND view = 1")" = "rotate:deg=20" ]
"$rs" report --db "$tmp/i.db" --runs 1,2 --out "$tmp/report" --images 0 >/dev/null 2>"$tmp/err"
expect "the report has the interventions section with both runs" \
  sh -c "[ -s '$tmp/report/tables/route-interventions.csv' ] && [ \"\$(sed -n '/^## Routing interventions/,/^## A/p' \
         '$tmp/report/report.md' | grep -c '| noise:severity=1 \|| rotate:deg=20 ')\" = 6 ]"

# --- a schema-4 store reads in place and upgrades ---------------------------------------------------
cp "$golden/store-v4.db" "$tmp/v4.db"
"$rs" stats --db "$tmp/v4.db" --run 2 --format json --resamples 100 >"$tmp/v4-before.json" 2>"$tmp/err"
"$rs" export --db "$tmp/v4.db" --run 2 >"$tmp/v4.csv" 2>"$tmp/err"
expect "schema 4: export reads what ran as the router's top-k" \
  [ "$(awk -F, 'NR > 1 && $20 != ($13 < 2 ? $14 : -1)' "$tmp/v4.csv" | wc -l)" = 0 ]
expect "reading leaves it at schema 4" [ "$(q "$tmp/v4.db" 'PRAGMA user_version')" = 4 ]
"$rs" replay "$model" --data $data --limit 2 --protocol intervene --db "$tmp/v4.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "a forced replay into it upgrades it to schema 7" [ "$(q "$tmp/v4.db" 'PRAGMA user_version')" = 7 ]
"$rs" stats --db "$tmp/v4.db" --run 2 --format json --resamples 100 >"$tmp/v4-after.json" 2>"$tmp/err"
expect "and the old run's statistics stay the same" cmp -s "$tmp/v4-before.json" "$tmp/v4-after.json"

# --- bad specs: one line, exit 1, before any work -------------------------------------------------
bad_spec() { # NAME VIEWS PATTERN
  "$rs" replay "$model" --data $data --limit 2 --protocol custom --views "$2" --db "$tmp/bad.db" >/dev/null 2>"$tmp/err"
  expect "$1" failed_with $? 1 "$3"
}
bad_spec "route without from" 'clean;base:view=0+route:layers=1' "route needs from=F"
bad_spec "from a later view" 'clean;base:view=0+route:from=2;noise:severity=1' "route's from=2 is not an earlier view"
bad_spec "layers= names a dense block" 'clean;base:view=0+route:from=0,layers=2' "layers: block 2 is not a MoE block (MoE blocks: 1, 3)"
bad_spec "layers= beyond the model" 'clean;base:view=0+route:from=0,layers=9' "block 9 is not a MoE block"
bad_spec "an attacked forced view" 'clean;base:view=0+pgd:eps=1/255+route:from=0' "a forced view cannot be attacked"
bad_spec "route not last" 'clean;route:from=0+noise:severity=1' "route must be the last operation"
bad_spec "a block named twice" 'clean;base:view=0+route:from=0,layers=1/1' "layers: '1/1' names block 1 twice"
bad_spec "a hex block" 'clean;base:view=0+route:from=0,layers=0x1' "layers: '0x1' is not block indices"
bad_spec "an unknown key" 'clean;base:view=0+route:from=0,mode=x' "route has no parameter 'mode'"
expect "and no store was written" [ ! -s "$tmp/bad.db" ]
"$rs" replay "$model" --data $data --limit 2 --protocol intervene --augment 'base:view=0+noise:severity=1' \
  --db "$tmp/bad.db" >/dev/null 2>"$tmp/err"
expect "intervene --augment with a base of its own" failed_with $? 1 "writes base: and route: itself"
"$rs" replay "$model" --data $data --limit 2 --protocol noise --augment 'noise:severity=1' --db "$tmp/bad.db" >/dev/null 2>"$tmp/err"
expect "--augment with another protocol: usage, exit 2" failed_with $? 2 "--augment belongs to --protocol pair or intervene"

testlib_done route_cli
