#!/usr/bin/env bash
# End-to-end tests of the corruptions protocol (docs/corruptions.md) on the real binary:
#   views         clean, then every default corruption at every severity, set written out
#   lists         --corruptions and --severities choose the views; bad names, severities
#                 and misplaced options fail with one line
#   determinism   --threads 1 --batch 3 and --threads 2 --batch 64 store identical records
#   no geometry   every patch of a corrupted view matches the same patch of the clean view
#   readers       stats reads the run; render grid draws view 0 and one view per corruption
#                 at severity 3 by default, --views the ones named
# usage: corrupt_test.sh ROUTERSCOPE MODEL
set -u
rs=$(realpath "$1") model=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip corrupt tests: dataset-fashion-mnist is not installed"; echo "corrupt_cli: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test
q() { sqlite3 "$1" "$2"; }
dump() { # DB RUN
  sqlite3 "$1" "SELECT 'p', image, view, predicted, printf('%.9g', prob), params, hex(match) FROM predictions
                  WHERE run_id=$2 ORDER BY image, view;
                SELECT 'r', image, view, layer, hex(top_idx), hex(top_gate), hex(probs) FROM routing
                  WHERE run_id=$2 ORDER BY image, view, layer;"
}

# --- the default protocol -----------------------------------------------------------------
"$rs" replay "$model" --data $data --limit 5 --protocol corruptions --db "$tmp/a.db" --threads 1 --batch 3 \
  >/dev/null 2>"$tmp/err"
expect "corruptions: replays" [ $? = 0 ]
expect "corruptions: clean + 15 corruptions x 5 severities" [ "$(q "$tmp/a.db" "SELECT count(*) FROM views")" = 76 ]
expect "corruptions: view 0 is clean" [ "$(q "$tmp/a.db" "SELECT spec FROM views WHERE view = 0")" = clean ]
expect "corruptions: the 28 px model gets CIFAR-10-C's set, written in the spec" \
  [ "$(q "$tmp/a.db" "SELECT spec FROM views WHERE view = 75")" = "corrupt:name=jpeg_compression,severity=5,set=cifar" ]
expect "corruptions: the drawn parameters name the corruption and its set" \
  grep -q '"corrupt":{"name":"fog","severity":1,"set":"cifar","seed":"' \
  <(q "$tmp/a.db" "SELECT params FROM predictions WHERE view = 46 AND image = 0")
expect "corruptions: no geometry, every patch matches itself in the clean view" \
  [ "$(q "$tmp/a.db" "SELECT count(DISTINCT lower(hex(match))) FROM predictions")" = 1 ]

"$rs" replay "$model" --data $data --limit 5 --protocol corruptions --db "$tmp/b.db" --threads 2 --batch 64 \
  >/dev/null 2>"$tmp/err"
dump "$tmp/a.db" 1 >"$tmp/a.txt"
dump "$tmp/b.db" 1 >"$tmp/b.txt"
expect "corruptions: records independent of --threads and --batch" cmp -s "$tmp/a.txt" "$tmp/b.txt"
expect "corruptions: corrupted views route differently from clean ones somewhere" \
  [ "$(q "$tmp/a.db" "SELECT count(*) FROM routing r JOIN routing c ON c.image = r.image AND c.layer = r.layer
                      AND c.view = 0 WHERE r.view > 0 AND r.top_idx != c.top_idx")" -gt 0 ]

"$rs" stats --db "$tmp/a.db" >"$tmp/stats.txt" 2>"$tmp/err"
expect "stats reads a corruptions run" [ $? = 0 ]
expect "stats: one row per corrupted view and layer" grep -q "view 75" "$tmp/stats.txt"

# --- lists ----------------------------------------------------------------------------------
"$rs" replay "$model" --data $data --limit 2 --protocol corruptions --corruptions fog,saturate --severities 1,5 \
  --db "$tmp/c.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "--corruptions/--severities: clean + 2 x 2 views" \
  [ "$(q "$tmp/c.db" "SELECT group_concat(spec, ';') FROM (SELECT spec FROM views ORDER BY view)")" = \
    "clean;corrupt:name=fog,severity=1,set=cifar;corrupt:name=fog,severity=5,set=cifar;corrupt:name=saturate,severity=1,set=cifar;corrupt:name=saturate,severity=5,set=cifar" ]
"$rs" replay "$model" --data $data --limit 2 --protocol corruptions --corruptions spatter --db "$tmp/d.db" \
  >/dev/null 2>"$tmp/err"
expect "--corruptions spatter: not implemented, one line" failed_with $? 1 "corruption 'spatter' is not implemented"
"$rs" replay "$model" --data $data --limit 2 --protocol corruptions --severities 0 --db "$tmp/d.db" \
  >/dev/null 2>"$tmp/err"
expect "--severities 0: one line" failed_with $? 1 "severity must be 1, 2, 3, 4 or 5"
"$rs" replay "$model" --data $data --limit 2 --protocol noise --corruptions fog --db "$tmp/d.db" \
  >/dev/null 2>"$tmp/err"
expect "--corruptions with another protocol: usage, exit 2" failed_with $? 2 "belongs to --protocol corruptions"
"$rs" replay "$model" --data $data --limit 2 --protocol custom --views 'clean;corrupt:name=fog,severity=2,set=imagenet' \
  --db "$tmp/e.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "custom: corrupt with set=imagenet on a 28 px model" \
  grep -q '"set":"imagenet"' <(q "$tmp/e.db" "SELECT params FROM predictions WHERE view = 1 AND image = 0")

# --- render grid of a 76-view run -------------------------------------------------------------------
png_w() { od -An -tu1 -j16 -N4 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }'; }
"$rs" render grid --db "$tmp/a.db" --run 1 -o "$tmp/g16.png" 2>"$tmp/err"
expect "render grid: a 76-view run draws by default" [ $? = 0 ]
"$rs" render grid --db "$tmp/a.db" --run 1 --views 3 -o "$tmp/g2.png" 2>"$tmp/err"
expect "render grid --views 3: draws" [ $? = 0 ]
"$rs" render grid --db "$tmp/a.db" --run 1 --views 3,18,33 -o "$tmp/g4.png" 2>"$tmp/err"
w2=$(png_w "$tmp/g2.png") w4=$(png_w "$tmp/g4.png") w16=$(png_w "$tmp/g16.png")
expect "render grid: wider with more views (2, 4, 16 views: $w2 < $w4 < $w16 px)" [ "$w2" -lt "$w4" -a "$w4" -lt "$w16" ]
"$rs" render grid --db "$tmp/a.db" --run 1 --views 0,3 -o "$tmp/g2b.png" 2>"$tmp/err"
expect "render grid --views 0,3 = --views 3 (view 0 is always first)" cmp -s "$tmp/g2.png" "$tmp/g2b.png"
"$rs" render grid --db "$tmp/a.db" --run 1 --views 76 -o "$tmp/never.png" 2>"$tmp/err"
expect "render grid --views 76: out of range, one line" failed_with $? 1 "view 76 out of range (run 1 has 76 views)"
"$rs" render grid --db "$tmp/a.db" --run 1 --views 18,3 -o "$tmp/never.png" 2>"$tmp/err"
expect "render grid --views 18,3: usage, exit 2" failed_with $? 2 "ascending order"
"$rs" render grid --db "$tmp/a.db" --run 1 --views 3, -o "$tmp/never.png" 2>"$tmp/err"
expect "render grid --views 3,: usage, exit 2" failed_with $? 2 "after the last comma"
"$rs" render heatmap --db "$tmp/a.db" --run 1 --views 3 -o "$tmp/never.png" 2>"$tmp/err"
expect "render heatmap --views: usage, exit 2" failed_with $? 2 "--views is for grid"
expect "no picture is left by a refused command" [ ! -e "$tmp/never.png" ]

testlib_done corrupt_cli
