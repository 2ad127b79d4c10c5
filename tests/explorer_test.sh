#!/usr/bin/env bash
# The report's routing explorer (index.html, docs/explorer.md) in headless Chromium: a pair
# run and a noise run of the tiny model, their report, and tests/explorer_test.py, which
# points at patches and checks the page's matched patches, experts and probabilities
# against `routerscope export` of the same runs, and the layout at 900 px and 390 px.
# Needs Debian's chromium, chromium-driver and python3-selenium (scripts/ensure-deps.sh
# --tests); without them the suite is skipped (exit 77), saying what is missing.
# usage: explorer_test.sh ROUTERSCOPE MODEL
set -u
rs=$(realpath "$1") model=$(realpath "$2") here=$(cd "$(dirname "$0")" && pwd)
. "$here/testlib.sh"
py=/usr/bin/python3

missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v chromedriver >/dev/null || missing="$missing chromium-driver"
"$py" -c 'import selenium' 2>/dev/null || missing="$missing python3-selenium"
[ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing="$missing dataset-fashion-mnist"
if [ -n "$missing" ]; then
  echo "skip: not installed:$missing (scripts/ensure-deps.sh --tests installs them)"
  exit 77
fi
# chromedriver and chromium talk over "localhost"; a bare root (debootstrap minbase has no
# /etc/hosts) cannot resolve it, and the browser never starts there
if ! getent hosts localhost >/dev/null; then
  echo "skip: the name localhost does not resolve here (no localhost line in /etc/hosts): chromedriver needs it"
  exit 77
fi
testlib_init
db=$tmp/r.db
"$rs" replay "$model" --data fashion-mnist:test --limit 12 --db "$db" >/dev/null 2>"$tmp/err" &&
"$rs" replay "$model" --data fashion-mnist:test --limit 12 --protocol noise --db "$db" >/dev/null 2>>"$tmp/err"
expect "a pair and a noise run replay" [ $? = 0 ]
"$rs" report --db "$db" --runs 1,2 --images 2 --resamples 50 --out "$tmp/rep" >/dev/null 2>"$tmp/err"
expect "the report is written" [ $? = 0 ]
expect "index.html carries the explorer's data and script" \
  sh -c "grep -q 'id=\"rsx-data\"' '$tmp/rep/index.html' && grep -q 'explorer.js' '$tmp/rep/index.html'"
expect "index.html names no other site (works offline)" \
  sh -c "! grep -Eq '(src|href)=\"(https?:)?//' '$tmp/rep/index.html'"
"$rs" export --db "$db" --run 1 -o "$tmp/e1.csv" 2>"$tmp/err" && "$rs" export --db "$db" --run 2 -o "$tmp/e2.csv" 2>"$tmp/err"
expect "both runs export" [ $? = 0 ]
printf '1 %s 1\n2 %s 3\n' "$tmp/e1.csv" "$tmp/e2.csv" >"$tmp/cases"
timeout 240 "$py" "$here/explorer_test.py" "$tmp/rep" "$tmp/cases"
expect "chromium: the explorer shows the export's routing (explorer_test.py)" [ $? = 0 ]
testlib_done explorer
