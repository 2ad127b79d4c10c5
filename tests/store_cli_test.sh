#!/usr/bin/env bash
# End-to-end tests of how the commands about stored runs open a store: a schema-1 store
# (tests/golden/store-v1.db, written by routerscope before schema 2) is read in place and
# gives the same figures before and after a writer upgrades it; a store in a folder the
# reader cannot write is read (SQLite "immutable") unless a WAL is pending.
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
expect "replay into it upgrades it to the current schema (6)" [ "$(version "$v1")" = 6 ]
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

testlib_done store_cli
