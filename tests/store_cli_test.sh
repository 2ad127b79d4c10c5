#!/usr/bin/env bash
# End-to-end tests of how the commands about stored runs open a store: a schema-1 store
# (tests/golden/store-v1.db, written by routerscope before schema 2) is read in place and
# gives the same figures before and after a writer upgrades it; a store in a folder the
# reader cannot write is read (SQLite "immutable") unless a WAL is pending; a damaged store
# (issue 26: a routing, predictions or samples row deleted, a float16 inf, NaN or all-zero
# probability BLOB, a flipped gate byte) is refused by every reader — stats, compare, render,
# report, export, export --probs — with exit 1 and one line naming run, image, view and layer;
# an unfinished run is exported and reported with a notice; a missing models row is named.
# usage: store_cli_test.sh ROUTERSCOPE MODEL GOLDEN_DIR
set -u
rs=$(realpath "$1") model=$(realpath "$2") golden=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init
if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip store tests: dataset-fashion-mnist is not installed"; echo "store_cli: 0 passed, 0 failed"; exit 0
fi
version() { sqlite3 "$1" 'PRAGMA user_version'; }

# --- a schema-1 store, read in place ----------------------------------------------------
v1=$tmp/v1.db
cp "$golden/store-v1.db" "$v1"
"$rs" runs --db "$v1" >"$tmp/runs" 2>"$tmp/err"
expect "runs reads a schema-1 store" sh -c "grep -q '^1 ' '$tmp/runs' && grep -q '^2 ' '$tmp/runs'"
for r in 1 2; do "$rs" stats --db "$v1" --run $r --format json --resamples 100 >"$tmp/before-$r.json" 2>"$tmp/err"; done
expect "stats reads it" grep -q '"Top-1"' "$tmp/before-2.json"
expect "the k = 1 run is read as k = 1 (from the stored config)" grep -q 'run 2: model .* ([0-9a-f]*, k=1)' "$tmp/before-2.json"
"$rs" render grid --db "$v1" --run 1 -o "$tmp/grid.png" 2>"$tmp/err"
expect "render draws from it" [ -s "$tmp/grid.png" ]
expect "reading leaves it at schema 1" [ "$(version "$v1")" = 1 ]

# A writer upgrades it, and every figure stays the same.
"$rs" replay "$model" --data fashion-mnist:test --limit 2 --seed 9 --db "$v1" --threads 1 >/dev/null 2>"$tmp/err"
expect "replay into it upgrades it to the current schema (7)" [ "$(version "$v1")" = 7 ]
expect "the upgrade stored k = 1 for the k = 1 run" [ "$(sqlite3 "$v1" 'SELECT top_k FROM runs WHERE id = 2')" = 1 ]
for r in 1 2; do
  "$rs" stats --db "$v1" --run $r --format json --resamples 100 >"$tmp/after-$r.json" 2>"$tmp/err"
  expect "run $r: the same statistics after the upgrade" cmp -s "$tmp/before-$r.json" "$tmp/after-$r.json"
done

# --- a store in a folder the reader cannot write -----------------------------------------
# Root writes anywhere, so the reader is another user (nobody) when the suite runs as root.
as_reader=()
if [ "$(id -u)" = 0 ]; then
  if command -v setpriv >/dev/null; then as_reader=(setpriv --reuid 65534 --regid 65534 --clear-groups)
  else as_reader=(skip); fi
fi
if [ "${as_reader[0]:-}" = skip ]; then
  echo "skip read-only folder tests: running as root without setpriv"
else
  ro=$(mktemp -d)
  cp "$v1" "$ro/r.db"
  chmod 755 "$ro"; chmod 644 "$ro/r.db"
  [ "$(id -u)" = 0 ] || chmod 555 "$ro"
  "${as_reader[@]}" "$rs" stats --db "$ro/r.db" --run 1 --format json --resamples 100 >"$tmp/ro.json" 2>"$tmp/err"
  expect "stats reads a store in a folder it cannot write" cmp -s "$tmp/after-1.json" "$tmp/ro.json"
  "${as_reader[@]}" "$rs" runs --db "$ro/r.db" >/dev/null 2>"$tmp/err"
  expect "and so does runs" [ $? = 0 ]
  expect "leaving nothing beside it" [ "$(ls "$ro")" = r.db ]
  # A pending WAL (a writer's committed pages not yet folded in) must not be skipped.
  [ "$(id -u)" = 0 ] || chmod 755 "$ro"
  rm -f "$ro/r.db"
  printf "PRAGMA wal_autocheckpoint = 0;\nUPDATE runs SET error = 'x' WHERE id = 1;\n.shell cp '%s' '%s-wal' '%s/'\n" \
    "$v1" "$v1" "$ro" | sqlite3 "$v1" >/dev/null 2>&1
  mv "$ro/v1.db" "$ro/r.db"; mv "$ro/v1.db-wal" "$ro/r.db-wal"; chmod 644 "$ro"/*
  [ "$(id -u)" = 0 ] || chmod 555 "$ro"
  expect "(the copied WAL holds pages)" [ -s "$ro/r.db-wal" ]
  "${as_reader[@]}" "$rs" runs --db "$ro/r.db" >/dev/null 2>"$tmp/err"
  expect "a pending WAL in a folder the reader cannot write: exit 1, one line that says so" failed_with $? 1 "r.db-wal holds pages not yet in the database"
  chmod 755 "$ro"; rm -rf "$ro"
fi

# --- damaged stores: every reader refuses them (issue 26, items 1, 6 and 8) -----------------
good=$tmp/good.db
for seed in 1 2; do
  "$rs" replay "$model" --data fashion-mnist:test --limit 12 --seed $seed --db "$good" --threads 1 >/dev/null 2>&1 \
    || bad "replay for the damaged stores"
done
readers=(stats compare render report export probs)
read_with() { # READER DB: the reader on run 1 (compare: runs 1 and 2), stdout discarded, stderr in $tmp/err
  case $1 in
    stats) "$rs" stats --db "$2" --run 1 --resamples 10 ;;
    compare) "$rs" compare --db "$2" 1 2 --resamples 10 ;;
    render) "$rs" render grid --db "$2" --run 1 -o "$tmp/d.png" ;;
    report) rm -rf "$tmp/rep"; "$rs" report --db "$2" --runs 1 --out "$tmp/rep" --images 0 --resamples 0 ;;
    export) "$rs" export --db "$2" --run 1 ;;
    probs) "$rs" export --db "$2" --run 1 --probs ;;
  esac >/dev/null 2>"$tmp/err"
}
damaged() { # NAME SQL FRAGMENT: a copy of good.db changed by SQL is refused by every reader
  cp "$good" "$tmp/d.db"
  sqlite3 "$tmp/d.db" "$2" || bad "$1: SQL"
  for r in "${readers[@]}"; do
    read_with $r "$tmp/d.db"
    expect "$1: $r refuses it in one line" failed_with $? 1 "d.db: run 1$3"
  done
  expect "$1: report wrote nothing" [ ! -e "$tmp/rep" ]
}
damaged "a routing row deleted" "DELETE FROM routing WHERE run_id = 1 AND image = 5 AND view = 1 AND layer = 1" \
  " image 5 view 1 layer 1: no routing row (the store is incomplete)"
damaged "a predictions row deleted" "DELETE FROM predictions WHERE run_id = 1 AND image = 7 AND view = 1" \
  " image 7 view 1: no predictions row"
damaged "a samples row deleted with its cascade" \
  "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE run_id = 1 AND image = 9" " image 9: no samples row"
damaged "the last image's routing deleted" "DELETE FROM routing WHERE run_id = 1 AND image = 11" \
  " image 11 view 0 layer 0: no routing row"
damaged "a float16 inf in a probability BLOB" "UPDATE routing SET probs = CAST(x'007c' || substr(probs, 3) AS BLOB)
  WHERE run_id = 1 AND image = 3 AND view = 0 AND layer = 1" " image 3 view 0 layer 1: token 0: float16 probability of expert 0 is infinite"
damaged "a float16 NaN in a probability BLOB" "UPDATE routing SET probs = CAST(x'00fe' || substr(probs, 3) AS BLOB)
  WHERE run_id = 1 AND image = 3 AND view = 1 AND layer = 0" " image 3 view 1 layer 0: token 0: float16 probability of expert 0 is NaN"
damaged "an all-zero probability BLOB" "UPDATE routing SET probs = zeroblob(length(probs))
  WHERE run_id = 1 AND image = 4 AND view = 0 AND layer = 0" " image 4 view 0 layer 0: token 0: float16 probabilities sum to 0.000000"
damaged "an expert id out of range" "UPDATE routing SET top_idx = CAST(x'ae' || substr(top_idx, 2) AS BLOB)
  WHERE run_id = 1 AND image = 2 AND view = 1 AND layer = 1" " image 2 view 1 layer 1: token 0 rank 0: expert id 174 >= 8 experts"
# a gate's last mantissa byte, which float16 rounding hides: only the checksum finds it
damaged "a gate byte flipped" "UPDATE routing SET top_gate = CAST(x'5a' || substr(top_gate, 2) AS BLOB)
  WHERE run_id = 1 AND image = 6 AND view = 0 AND layer = 0" ": its records or shapes differ from the checksum written when it finished"
cp "$good" "$tmp/d.db"
sqlite3 "$tmp/d.db" "DELETE FROM models"
read_with stats "$tmp/d.db"
expect "a missing models row is named, not 'no run 1' (item 8)" failed_with $? 1 \
  "d.db: run 1 exists, but its model (row 1 of table models) is missing: the store is damaged"

# --- an unfinished run: export and report say so (item 7) -------------------------------------
# The state of a replay killed after 6 of its 12 images: whole batches, images_done, running.
cp "$good" "$tmp/k.db"
sqlite3 "$tmp/k.db" "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE run_id = 1 AND image >= 6;
                     UPDATE runs SET images_done = 6, status = 'running', finished = NULL, checksum = NULL WHERE id = 1"
note="run 1 is not finished (running or killed, 6 of 12 images done)"
"$rs" export --db "$tmp/k.db" --run 1 >"$tmp/k.csv" 2>"$tmp/err"
expect "export of an unfinished run: exit 0, one line on stderr that says so" failed_with $? 0 "export: note: $note"
expect "and the rows of the 6 images it holds" [ "$(($(wc -l <"$tmp/k.csv") - 1))" = $((6 * 2 * 2 * 50 * 2)) ]
"$rs" report --db "$tmp/k.db" --runs 1 --out "$tmp/krep" --images 0 --resamples 0 >/dev/null 2>"$tmp/err"
expect "report of an unfinished run: exit 0, one line on stderr that says so" failed_with $? 0 "report: note: $note"
expect "and its first page says so" sh -c "head -5 '$tmp/krep/report.md' | grep -q 'Note: $note'"

testlib_done store_cli
