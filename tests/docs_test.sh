#!/usr/bin/env bash
# The examples of docs/ run as written: checkpoint.md's Python blocks write a checkpoint
# (F32 and F16) that `inspect` and `eval` accept, store.md's Python block decodes a real
# replay's BLOBs, views.md's example specs parse and its error message is the one printed,
# as is dispatch.md's --group-size refusal;
# no file points users at notes they do not have (../shared).
# usage: docs_test.sh ROUTERSCOPE SOURCE_ROOT MODEL
set -u
rs=$(realpath "$1") root=$(realpath "$2") model=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init
docs=$root/docs
fmnist=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

# Debian's python3 (the one pytorch/ uses) when present: its numpy is python3-numpy.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || echo python3)

# The fenced ```python blocks of FILE, in order, as one program.
python_blocks() { awk '/^```python$/ {on = 1; next} /^```$/ {on = 0} on' "$1"; }
# The first fenced block after the line that ends with "Examples:" in FILE.
example_block() { awk '/Examples:$/ {want = 1; next} want && /^```/ {if (on) exit; on = 1; next} on' "$1"; }

# --- no reference to the team's design notes --------------------------------------------
refs=$(cd "$root" && grep -rln --include='*.[ch]' --include='*.md' --include='*.py' --include='*.sh' \
  --include='*.json' --include='*.build' -e '\.\./shared' -e 'shared/README' \
  README.md docs model analyze base convert cli render reports pytorch bench tests scripts models 2>/dev/null \
  | grep -v '^tests/docs_test.sh$')
expect "no file cites ../shared (found: ${refs:-none})" [ -z "$refs" ]
expect "docs/ has an index and the four references" \
  sh -c "cd '$docs' && [ -s README.md ] && [ -s checkpoint.md ] && [ -s views.md ] && [ -s metrics.md ] && [ -s store.md ]"

# --- checkpoint.md: write a checkpoint from Python -----------------------------------------
if "$py" -c 'import numpy' 2>/dev/null; then
  python_blocks "$docs/checkpoint.md" >"$tmp/write.py"
  (cd "$tmp" && "$py" write.py) >"$tmp/out" 2>"$tmp/err"
  expect "checkpoint.md's Python example runs" [ $? = 0 ]
  "$rs" inspect "$tmp/tiny-vmoe.safetensors" >"$tmp/inspect" 2>"$tmp/err"
  expect "inspect accepts the F32 example" [ $? = 0 ]
  expect "the F32 example is used in place (aligned)" grep -q '^storage  *0 bytes widened' "$tmp/inspect"
  "$rs" inspect "$tmp/tiny-vmoe-f16.safetensors" --json >"$tmp/f16.json" 2>"$tmp/err"
  expect "inspect accepts the F16 example" [ $? = 0 ]
  expect "the F16 example has the documented shape" sh -c "grep -q '\"tokens\": 50' '$tmp/f16.json' && \
    grep -q '\"top_k\": 2' '$tmp/f16.json' && grep -q 'Ankle boot' '$tmp/f16.json'"
  if [ -r "$fmnist" ]; then
    "$rs" eval "$tmp/tiny-vmoe.safetensors" --data fashion-mnist:test --limit 100 >"$tmp/eval" 2>"$tmp/err"
    expect "eval runs the F32 example" sh -c "[ $? = 0 ] && grep -q 'accuracy' '$tmp/eval'"
  fi
else
  echo "skip checkpoint.md example: $py has no numpy (python3-numpy)"
fi

# --- views.md: the example specs parse; a bad spec fails as documented -------------------
if [ -r "$fmnist" ]; then
  n=0
  while IFS= read -r spec; do
    [ -n "$spec" ] || continue
    n=$((n + 1))
    "$rs" replay "$model" --data fashion-mnist:test --limit 1 --db "$tmp/views.db" --threads 1 \
      --protocol custom --views "clean;$spec" >/dev/null 2>"$tmp/err"
    expect "views.md example '$spec' replays" [ $? = 0 ]
  done < <(example_block "$docs/views.md")
  expect "views.md has example specs" [ "$n" -ge 3 ]
  "$rs" replay "$model" --data fashion-mnist:test --limit 1 --db "$tmp/bad.db" --protocol custom \
    --views 'clean;noise:sigma=abc' >/dev/null 2>"$tmp/err"
  expect "a bad spec fails with the message views.md shows" \
    failed_with $? 1 "view 'noise:sigma=abc': sigma 'abc' is not a number"
  expect "views.md shows that message" grep -q "view 'noise:sigma=abc': sigma 'abc' is not a number" "$docs/views.md"

  # --- dispatch.md: the --group-size refusal it shows is the one printed ------------------
  "$rs" eval "$model" --data fashion-mnist:test --capacity-factor 1 --group-size 120 >/dev/null 2>"$tmp/err"
  expect "a --group-size that splits images fails with one line" failed_with $? 1 "S must be a multiple of 50"
  expect "dispatch.md shows that line" grep -qxF "$(cat "$tmp/err")" "$docs/dispatch.md"

  # --- dispatch.md: the routing-interventions recipe replays as the intervene protocol ----
  recipe=$(grep -o "\-\-views '[^']*route:[^']*'" "$docs/dispatch.md" | head -1 | sed "s/^--views '//; s/'$//")
  "$rs" replay "$model" --data fashion-mnist:test --limit 2 --db "$tmp/iv.db" --threads 1 --protocol custom \
    --views "$recipe" >/dev/null 2>"$tmp/err"
  "$rs" replay "$model" --data fashion-mnist:test --limit 2 --db "$tmp/iv.db" --threads 1 --protocol intervene \
    >/dev/null 2>"$tmp/err"
  expect "dispatch.md's --views recipe replays the views of the intervene protocol" \
    [ "$(sqlite3 "$tmp/iv.db" "SELECT count(DISTINCT spec), count(*) FROM views")" = "5|10" ]

  # --- store.md: decode a replay's BLOBs with the standard library -----------------------
  "$rs" replay "$model" --data fashion-mnist:test --limit 4 --db "$tmp/r.db" --threads 1 >/dev/null 2>"$tmp/err"
  python_blocks "$docs/store.md" >"$tmp/read.py"
  (cd "$tmp" && "$py" read.py) >"$tmp/out" 2>"$tmp/err"
  expect "store.md's Python example runs" [ $? = 0 ]
  expect "store.md's example decodes ids, gates, probabilities and matches" \
    grep -Eq '^image 0 view 0 block [0-9]+: patch 0 -> experts \[[0-9]+, [0-9]+\], gates \(.*\), p sums to 1\.000, matches view-0 patch 0$' "$tmp/out"
else
  echo "skip views.md and store.md examples: dataset-fashion-mnist is not installed"
fi

testlib_done docs
