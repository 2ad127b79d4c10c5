#!/usr/bin/env bash
# End-to-end tests of `routerscope export` and the SQLite extension on runs replayed here:
# row counts (images x views x layers x tokens x R, and x E with --probs), csv and jsonl
# carrying the same rows, probabilities summing to 1 per token, the SQL functions giving
# the export's rows, corrupt BLOBs and missing records as one error (never a crash, never
# fewer rows), the Python example of
# docs/export.md against `routerscope stats`, and bad usage.
# usage: export_test.sh ROUTERSCOPE MODEL EXTENSION DOCS
set -u
rs=$(realpath "$1") model=$(realpath "$2") ext=$(realpath "$3") docs=$(realpath "$4")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip export tests: dataset-fashion-mnist is not installed"; echo "export: 0 passed, 0 failed"; exit 0
fi
db=$tmp/e.db
"$rs" replay "$model" --data fashion-mnist:test --limit 4 --db "$db" --threads 1 >/dev/null 2>"$tmp/err"          # run 1
"$rs" replay "$model" --data fashion-mnist:test --limit 2 --protocol noise --db "$db" --threads 1 >/dev/null 2>&1 # run 2
expect "two runs replayed" [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE status='done'")" = 2 ]
# The tiny model: 2 MoE layers (blocks 1 and 3), 50 tokens (class token + 7x7), E 8, R 2.
L=2 T=50 R=2 E=8

# --- csv ---------------------------------------------------------------------------------
"$rs" export --db "$db" --run 1 >"$tmp/r.csv" 2>"$tmp/err"
expect "csv export exits 0" [ $? = 0 ]
header=export_v,run,image,view,layer,block,token,is_cls,patch,row,col,match,rank,expert,gate,label,predicted,pred_prob,kept,executed
expect "csv header row" [ "$(head -1 "$tmp/r.csv")" = "$header" ]
expect "csv rows = images x views x layers x tokens x R" [ "$(($(wc -l <"$tmp/r.csv") - 1))" = $((4 * 2 * L * T * R)) ]
expect "every row has 20 fields and export_v 3" [ "$(awk -F, 'NR > 1 && (NF != 20 || $1 != 3)' "$tmp/r.csv" | wc -l)" = 0 ]
expect "nothing forced: executed is the router's expert for the top_k ranks, -1 beyond" \
  [ "$(awk -F, 'NR > 1 && $20 != ($13 < 2 ? $14 : -1)' "$tmp/r.csv" | wc -l)" = 0 ]
expect "no capacity: kept = 1 exactly for the top_k ranks" [ "$(awk -F, 'NR > 1 && $19 != ($13 < 2)' "$tmp/r.csv" | wc -l)" = 0 ]
expect "blocks are the MoE blocks 1 and 3" [ "$(tail -n +2 "$tmp/r.csv" | cut -d, -f6 | sort -u | tr '\n' ' ')" = "1 3 " ]
expect "class token: token 0, patch/row/col/match -1" \
  [ "$(awk -F, '$8 == 1 && ($7 != 0 || $9 != -1 || $10 != -1 || $11 != -1 || $12 != -1)' "$tmp/r.csv" | wc -l)" = 0 ]
expect "patch 10 sits on row 1, col 3 of the 7x7 grid" \
  [ "$(awk -F, '$9 == 10 && ($10 != 1 || $11 != 3 || $7 != 11)' "$tmp/r.csv" | wc -l)" = 0 ]
expect "view 0 patches match themselves" [ "$(awk -F, '$4 == 0 && $8 == 0 && $12 != $9' "$tmp/r.csv" | wc -l)" = 0 ]
expect "ranks are ordered by decreasing gate" \
  awk -F, 'NR > 1 { if ($13 == 1 && $15 > prev + 0) bad = 1; prev = $15 } END { exit bad }' "$tmp/r.csv"
"$rs" export --db "$db" --run 2 >"$tmp/n.csv" 2>"$tmp/err"
expect "noise run: 2 images x 6 views x layers x tokens x R rows" \
  [ "$(($(wc -l <"$tmp/n.csv") - 1))" = $((2 * 6 * L * T * R)) ]
"$rs" export --db "$db" --run 1 -o "$tmp/o.csv" 2>"$tmp/err"
expect "-o writes the same bytes as stdout" cmp -s "$tmp/o.csv" "$tmp/r.csv"

# --- jsonl ---------------------------------------------------------------------------------
"$rs" export --db "$db" --run 1 --format jsonl >"$tmp/r.jsonl" 2>"$tmp/err"
expect "jsonl export exits 0" [ $? = 0 ]
expect "jsonl has one line per csv row" [ "$(wc -l <"$tmp/r.jsonl")" = $((4 * 2 * L * T * R)) ]
same_rows() { # every JSON line parses and holds the csv row's values, keys in column order
  python3 - "$tmp/r.csv" "$tmp/r.jsonl" <<'EOF'
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1])))
head, rows = rows[0], rows[1:]
for line, row in zip(open(sys.argv[2]), rows):
    obj = json.loads(line)
    assert list(obj) == head, list(obj)
    for k, v in zip(head, row):
        assert (obj[k] is None and v == "") or float(obj[k]) == float(v), (k, obj[k], v)
EOF
}
expect "jsonl lines carry the csv rows" same_rows

# --- --probs -------------------------------------------------------------------------------
"$rs" export --db "$db" --run 1 --probs >"$tmp/p.csv" 2>"$tmp/err"
expect "--probs rows = images x views x layers x tokens x E" [ "$(($(wc -l <"$tmp/p.csv") - 1))" = $((4 * 2 * L * T * E)) ]
expect "--probs header" [ "$(head -1 "$tmp/p.csv" | cut -d, -f12-15)" = "match,expert,prob,rank" ]
sums_ok() { # per token the distribution sums to 1 within float16 rounding
  awk -F, 'NR > 1 { s[$3 " " $4 " " $5 " " $7] += $14 }
           END { for (k in s) { n++; if ((s[k] - 1) ^ 2 > 1e-4) exit 1 } exit n != 4 * 2 * 2 * 50 }' "$tmp/p.csv"
}
expect "--probs: each token's probabilities sum to ~1" sums_ok
expect "--probs: R experts per token have a rank" [ "$(awk -F, 'NR > 1 && $15 >= 0' "$tmp/p.csv" | wc -l)" = $((4 * 2 * L * T * R)) ]
gates_ok() { # the float32 gate of each ranked expert equals its float16 probability to half precision
  awk -F, 'NR == FNR { if (FNR > 1) g[$3 " " $4 " " $5 " " $7 " " $14] = $15; next }
           FNR > 1 && $15 >= 0 { k = $3 " " $4 " " $5 " " $7 " " $13; d = g[k] - $14
                                 if (!(k in g) || d * d > (1e-3 * $14) ^ 2 + 1e-12) exit 1 }' "$tmp/r.csv" "$tmp/p.csv"
}
expect "--probs: ranked experts' probs equal the routing rows' gates" gates_ok

# --- SQL through the extension ----------------------------------------------------------------
# The sanitizer build instruments the extension too; the sqlite3 shell is not instrumented,
# so ASan's runtime has to be loaded first for the extension to load at all.
sql_env=()
if readelf -d "$ext" 2>/dev/null | grep -q 'libasan'; then
  asan=$(${CC:-cc} -print-file-name=libasan.so 2>/dev/null)
  sql_env=(env "LD_PRELOAD=$asan" "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0")
  echo "note: sanitizer build, sqlite3 runs with LD_PRELOAD=$asan"
fi
sql() { "${sql_env[@]}" sqlite3 -bail -csv "$1" ".load $ext" "${@:2}"; }
sql "$db" -header "SELECT * FROM rs_routing(1)" >"$tmp/sql.csv" 2>"$tmp/err"
expect "rs_routing(1) runs" [ $? = 0 ]
expect "rs_routing has the export's header" [ "$(head -1 "$tmp/sql.csv" | tr -d '\r')" = "$header" ]
sql_same() { # SQL EXPORT ROWS TOL: same rows in the same order, integers equal, floats to relative TOL
  paste -d, <(tr -d '\r' <"$1") "$2" | awk -F, -v n=20 -v rows="$3" -v tol="$4" 'NR > 1 {
    for (i = 1; i <= n; i++) { a = $i; b = $(i + n)
      if (a == b) continue
      if (a == "" || b == "" || (a - b) ^ 2 > tol * tol * b * b + 1e-24) exit 1 } c++ } END { exit c != rows }'
}
# The export prints gates with 9 digits (float32 round-trips), probs with 6 (float16 does).
expect "rs_routing(1) gives the export's rows" sql_same "$tmp/sql.csv" "$tmp/r.csv" $((4 * 2 * L * T * R)) 1e-8
sql "$db" -header "SELECT * FROM rs_probs(1)" >"$tmp/sqlp.csv" 2>"$tmp/err"
expect "rs_probs(1) gives the export --probs rows" sql_same "$tmp/sqlp.csv" "$tmp/p.csv" $((4 * 2 * L * T * E)) 1e-5
expect "WHERE image = N reads one image" [ "$(sql "$db" "SELECT count(*) FROM rs_routing(1) WHERE image = 2")" = $((2 * L * T * R)) ]
expect "rs_probs sums to 1 per token in SQL" [ "$(sql "$db" "SELECT max(abs(s - 1)) < 1e-2 FROM \
  (SELECT sum(prob) s FROM rs_probs(2) GROUP BY image, view, layer, token)")" = 1 ]
sql "$db" "SELECT * FROM rs_routing(9)" >/dev/null 2>"$tmp/err"
expect "a missing run is an SQL error listing the runs" sh -c "[ $? != 0 ] && grep -q 'no run 9 (runs here: 1, 2)' '$tmp/err'"
sql "$db" "SELECT * FROM rs_routing" >/dev/null 2>"$tmp/err"
expect "no run id: an SQL error that says how" sh -c "[ $? != 0 ] && grep -q 'which run' '$tmp/err'"

# --- per-view rows in the schema-8 encoding (docs/store.md, "Size") -----------------------------
# An identity match map is stored as 0 bytes and the view parameters leave out their defaults.
# The same store rewritten to the schema-7 encoding (every map spelled out, no checksums, as a
# store of schema 7 whose runs are checked row by row) exports the same rows, through the
# cursor and through the SQL extension.
expect "noise run: every view moves no pixel, so every match map is 0 bytes" \
  [ "$(sqlite3 "$db" "SELECT count(*) FROM predictions WHERE run_id = 2 AND length(match) <> 0")" = 0 ]
expect "pair run: view 0's maps are 0 bytes, a crop's 49 int16" [ "$(sqlite3 "$db" "SELECT group_concat(DISTINCT \
  view || ':' || length(match)) FROM predictions WHERE run_id = 1 AND typeof(match) = 'blob'")" = "0:0,1:98" ]
expect "the clean view's parameters are {}" \
  [ "$(sqlite3 "$db" "SELECT group_concat(DISTINCT params) FROM predictions WHERE run_id = 2 AND view = 0")" = "{}" ]
expect "a noise view's are its sigma and noise seed, no geometry" [ "$(sqlite3 "$db" "SELECT count(*) FROM predictions \
  WHERE run_id = 2 AND view > 0 AND (json_type(params, '\$.noise_sigma') IS NOT 'real' OR \
  json_type(params, '\$.noise_seed') IS NOT 'text' OR json_type(params, '\$.affine') IS NOT NULL)")" = 0 ]
identity=$(for p in $(seq 0 48); do printf '%02x00' "$p"; done)
sqlite3 "$db" "VACUUM INTO '$tmp/v7.db'"
sqlite3 "$tmp/v7.db" "UPDATE predictions SET match = x'$identity' WHERE length(match) = 0;
  UPDATE runs SET checksum = NULL; PRAGMA user_version = 7"
expect "the schema-7 copy spells out every map" \
  [ "$(sqlite3 "$tmp/v7.db" "SELECT count(*) FROM predictions WHERE length(match) <> 98")" = 0 ]
for r in 1 2; do
  "$rs" export --db "$db" --run $r >"$tmp/enc8.csv" 2>"$tmp/err"
  "$rs" export --db "$tmp/v7.db" --run $r >"$tmp/enc7.csv" 2>"$tmp/err"
  expect "run $r: the schema-7 encoding exports the same rows" sh -c "[ -s '$tmp/enc8.csv' ] && cmp -s '$tmp/enc8.csv' '$tmp/enc7.csv'"
  sql "$tmp/v7.db" "SELECT * FROM rs_routing($r)" >"$tmp/sql7.csv" 2>"$tmp/err"
  sql "$db" "SELECT * FROM rs_routing($r)" >"$tmp/sql8.csv" 2>"$tmp/err"
  expect "run $r: and the same rs_routing rows" sh -c "[ -s '$tmp/sql8.csv' ] && cmp -s '$tmp/sql8.csv' '$tmp/sql7.csv'"
done

# --- dispatch: the kept column ---------------------------------------------------------------
"$rs" replay "$model" --data fashion-mnist:test --limit 4 --db "$db" --threads 1 --capacity-factor 0.5 \
  --group-images 2 >/dev/null 2>&1                                                                       # run 3
"$rs" export --db "$db" --run 3 >"$tmp/k.csv" 2>"$tmp/err"
expect "capacity run: some top-k choices dropped, none beyond top_k kept" \
  sh -c "[ \"\$(awk -F, 'NR > 1 && \$13 < 2 && \$19 == 0' '$tmp/k.csv' | wc -l)\" -gt 0 ] &&
         [ \"\$(awk -F, 'NR > 1 && \$13 >= 2 && \$19 != 0' '$tmp/k.csv' | wc -l)\" = 0 ]"
expect "the export's kept column is the stored mask" [ "$(awk -F, 'NR > 1 && $19 == 0' "$tmp/k.csv" | wc -l)" = \
  "$(python3 -c "import sqlite3; print(sum(b.count(0) for (b,) in sqlite3.connect('$db').execute('SELECT kept FROM routing WHERE run_id = 3')))")" ]
sql "$db" -header "SELECT * FROM rs_routing(3)" >"$tmp/sqlk.csv" 2>"$tmp/err"
expect "rs_routing(3) gives the export's rows, kept included" sql_same "$tmp/sqlk.csv" "$tmp/k.csv" $((4 * 2 * L * T * R)) 1e-8
expect "rs_probs(3): as many kept experts as kept choices" [ "$(sql "$db" "SELECT sum(kept) FROM rs_probs(3)")" = \
  "$(awk -F, 'NR > 1 && $19 == 1' "$tmp/k.csv" | wc -l)" ]

# --- a corrupt store ---------------------------------------------------------------------------
cp "$db" "$tmp/bad.db"
sqlite3 "$tmp/bad.db" "UPDATE routing SET probs = x'0000' WHERE run_id = 1 AND image = 1 AND view = 1 AND layer = 0"
sql "$tmp/bad.db" "SELECT count(*) FROM rs_probs(1)" >/dev/null 2>"$tmp/err"
st=$?
expect "corrupt BLOB in SQL: an error naming the record, no crash" \
  sh -c "[ $st != 0 ] && [ $st -lt 128 ] && grep -q 'run 1 image 1 view 1 layer 0: probs BLOB of 2 bytes, expected 800' '$tmp/err'"
"$rs" export --db "$tmp/bad.db" --run 1 >/dev/null 2>"$tmp/err"
expect "corrupt BLOB in export: exit 1, one line" failed_with $? 1 "image 1 view 1 layer 0"
cp "$db" "$tmp/bad2.db"
python3 - "$tmp/bad2.db" <<'EOF'
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
ids = bytearray(conn.execute("SELECT top_idx FROM routing WHERE rowid = 1").fetchone()[0])
ids[3] = 200  # expert 200 of 8
conn.execute("UPDATE routing SET top_idx = ? WHERE rowid = 1", (bytes(ids),))
conn.commit()
EOF
sql "$tmp/bad2.db" "SELECT count(*) FROM rs_routing(1)" >/dev/null 2>"$tmp/err"
st=$?
expect "expert id out of range in SQL: an error, no crash" sh -c "[ $st != 0 ] && [ $st -lt 128 ] && grep -q 'run 1 image 0 view 0 layer 0: token 1 rank 1: expert id 200 >= 8 experts' '$tmp/err'"
"$rs" export --db "$tmp/bad2.db" --run 1 >/dev/null 2>"$tmp/err"
expect "expert id out of range in export: exit 1, one line" failed_with $? 1 "expert id 200 >= 8"

# Missing and malformed records in SQL (issue 26): an error naming the record, never fewer
# rows. Run 1 holds images 0..3 (2 views, 2 layers).
sql_refused() { # NAME SQL QUERY PATTERN: a copy of the store changed by SQL, then QUERY fails naming the record
  cp "$db" "$tmp/bad3.db"
  sqlite3 "$tmp/bad3.db" "$2"
  sql "$tmp/bad3.db" "$3" >/dev/null 2>"$tmp/err"
  local st=$?
  expect "$1: an SQL error naming the record" sh -c "[ $st != 0 ] && [ $st -lt 128 ] && grep -q '$4' '$tmp/err'"
}
sql_refused "a routing row deleted" "DELETE FROM routing WHERE run_id = 1 AND image = 2 AND view = 1 AND layer = 0" \
  "SELECT count(*) FROM rs_routing(1)" "rs_routing: run 1 image 2 view 1 layer 0: no routing record"
sql_refused "the last image's routing deleted" "DELETE FROM routing WHERE run_id = 1 AND image = 3" \
  "SELECT count(*) FROM rs_probs(1)" "rs_probs: run 1 image 3 view 0 layer 0: no routing record"
sql_refused "a routing row deleted, asked by image" "DELETE FROM routing WHERE run_id = 1 AND image = 2 AND layer = 1" \
  "SELECT count(*) FROM rs_routing(1) WHERE image = 2" "run 1 image 2 view 0 layer 1: no routing record"
sql_refused "a samples row deleted (its routing rows stay)" "DELETE FROM samples WHERE run_id = 1 AND image = 1" \
  "SELECT count(*) FROM rs_routing(1)" "run 1 image 1 view 0 layer 0: no routing record (a routing, predictions or samples row is missing"
sql_refused "a float16 inf" "UPDATE routing SET probs = CAST(x'007c' || substr(probs, 3) AS BLOB)
  WHERE run_id = 1 AND image = 1 AND view = 0 AND layer = 1" "SELECT count(*) FROM rs_probs(1)" \
  "run 1 image 1 view 0 layer 1: token 0: float16 probability of expert 0 is infinite"
sql_refused "an all-zero probability BLOB" "UPDATE routing SET probs = zeroblob(length(probs))
  WHERE run_id = 1 AND image = 0 AND view = 1 AND layer = 1" "SELECT count(*) FROM rs_routing(1)" \
  "run 1 image 0 view 1 layer 1: token 0: float16 probabilities sum to 0.000000"
expect "an image the run does not hold is no rows, no error" [ "$(sql "$db" "SELECT count(*) FROM rs_routing(1) WHERE image = 99")" = 0 ]

# --- the Python example of docs/export.md ------------------------------------------------------
awk '/<!-- tests\/export_test.sh runs the next code block/ { want = 1; next }
     want && /^```python$/ { on = 1; next } on && /^```$/ { exit } on' "$docs" >"$tmp/example.py"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 "$tmp/example.py" "$db" 1 >"$tmp/py.out" 2>"$tmp/err"
  expect "the docs' Python example runs" [ $? = 0 ]
  "$rs" stats --db "$db" --run 1 --format csv --resamples 0 >"$tmp/stats.csv" 2>"$tmp/err"
  py_matches() { # block B: top1 X (...), entropy Y bits  vs  1,view 1,B,top1,X  and  1,all,B,entropy_bits,Y
    [ "$(wc -l <"$tmp/py.out")" = 2 ] && awk -F, 'NR == FNR { if ($4 == "top1" && $2 == "view 1") t[$3] = $5
                                   if ($4 == "entropy_bits" && $2 == "all") h[$3] = $5; next }
      { b = $2; sub(":", "", b); if (!(b in t) || ($4 - t[b]) ^ 2 > 1e-12 || ($(NF - 1) - h[b]) ^ 2 > 1e-8) exit 1 }' \
      "$tmp/stats.csv" FS=' ' "$tmp/py.out"
  }
  expect "its Top-1 and entropy per block equal routerscope stats" py_matches
else
  echo "skip the docs' Python example: numpy is missing (scripts/ensure-deps.sh --tests installs it)"
fi

# --- bad usage -----------------------------------------------------------------------------
"$rs" export --db "$db" --run 1 --format xml >/dev/null 2>"$tmp/err"
expect "unknown format: exit 2, one line" failed_with $? 2 "--format wants csv or jsonl, got 'xml'"
"$rs" export --db "$db" --run 9 >/dev/null 2>"$tmp/err"
expect "missing run: exit 1, one line listing the runs" failed_with $? 1 "no run 9 (runs here: 1, 2, 3)"
"$rs" export --db "$tmp/missing.db" --run 1 >/dev/null 2>"$tmp/err"
expect "missing database: exit 1, one line naming it" failed_with $? 1 "missing.db"
expect "and creates none" [ ! -e "$tmp/missing.db" ]
"$rs" export --db "$db" >/dev/null 2>"$tmp/err"
expect "no --run: exit 2" failed_with $? 2 "--run is required"
"$rs" export --db "$db" --run x >/dev/null 2>"$tmp/err"
expect "bad --run: exit 2" failed_with $? 2 "--run wants a run id, 'last' or MODEL/PROTOCOL, got 'x'"
"$rs" export --db "$db" --run 1,2 >/dev/null 2>"$tmp/err"
expect "--run takes one run: exit 2" failed_with $? 2 "--run wants a run id, 'last' or MODEL/PROTOCOL, got '1,2'"

# --- runs named without their ids (store/run.h's selectors) ----------------------------
stem=$(basename "$model" .safetensors)
"$rs" export --db "$db" --run 3 >"$tmp/id3.csv" 2>/dev/null
"$rs" export --db "$db" --run last >"$tmp/last.csv" 2>"$tmp/err"
expect "--run last is the last finished run (3)" cmp -s "$tmp/id3.csv" "$tmp/last.csv"
"$rs" export --db "$db" --run "$stem/noise" >"$tmp/noise.csv" 2>"$tmp/err"
"$rs" export --db "$db" --run 2 >"$tmp/id2.csv" 2>/dev/null
expect "--run MODEL/noise is the noise run (2)" cmp -s "$tmp/id2.csv" "$tmp/noise.csv"
"$rs" export --db "$db" --run "$stem/pair" >"$tmp/pair.csv" 2>"$tmp/err"
expect "--run MODEL/pair is the last finished pair run (3)" cmp -s "$tmp/id3.csv" "$tmp/pair.csv"
"$rs" export --db "$db" --run "$stem/attack" >/dev/null 2>"$tmp/err"
expect "a MODEL/PROTOCOL with no run: exit 1, one line listing what there is" \
  failed_with $? 1 "no finished run is '$stem/attack' (finished: $stem/pair, $stem/noise)"
"$rs" export --db "$db" --run 1 --frobnicate >/dev/null 2>"$tmp/err"
expect "unknown flag: exit 2" failed_with $? 2 "unknown option '--frobnicate'"
"$rs" export --db "$db" --run 1 -o "$tmp/no/such/dir/x.csv" >/dev/null 2>"$tmp/err"
expect "unwritable output: exit 1, one line naming it" failed_with $? 1 "x.csv"
"$rs" export --help >"$tmp/out" 2>&1
expect "--help prints the usage" grep -q '^usage: routerscope export' "$tmp/out"

testlib_done export
