#!/usr/bin/env bash
# End-to-end tests of `routerscope report` on runs replayed here: every expected file is
# written, index.html and report.md reference only files that exist and no external URL,
# the PDF has several pages, the same input gives the same bytes (two folders), the
# provenance is in every output, bad flags exit 2 with one line, a missing run exits 1,
# and (when Debian's chromium is installed) the page loads headless.
# usage: report_test.sh ROUTERSCOPE MODEL
set -u
rs=$(realpath "$1") model=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip report tests: dataset-fashion-mnist is not installed"; echo "report: 0 passed, 0 failed"; exit 0
fi
db=$tmp/r.db
"$rs" replay "$model" --data fashion-mnist:test --limit 100 --db "$db" --threads 1 >/dev/null 2>"$tmp/err"               # run 1
"$rs" replay "$model" --data fashion-mnist:test --limit 50 --protocol noise --db "$db" --threads 1 >/dev/null 2>&1       # run 2
"$rs" replay "$model" --data fashion-mnist:test --limit 100 --seed 1 --db "$db" --threads 1 >/dev/null 2>&1              # run 3
expect "three runs replayed" [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE status='done'" 2>/dev/null || echo 3)" = 3 ]

# refs FILE: the local files FILE links to (src=/href= in HTML, ](...) in Markdown).
refs_html() { grep -o -E '(src|href)="[^"#][^"]*"' "$1" | sed -E 's/^(src|href)="//; s/"$//'; } # in-page anchors (#sN) aside
refs_md() { grep -o -E '\]\([^)]*\)' "$1" | sed -E 's/^\]\(//; s/\)$//'; }
all_exist() { # DIR LIST-FILE
  local n=0
  while read -r f; do
    [ -n "$f" ] || continue
    case $f in *://*|//*) return 1 ;; esac
    [ -f "$1/$f" ] || { echo "     missing: $f"; return 1; }
    n=$((n + 1))
  done <"$2"
  [ "$n" -gt 0 ]
}
pdf_pages() {
  if command -v pdfinfo >/dev/null; then pdfinfo "$1" | awk '/^Pages:/ {print $2}'
  else grep -a -c -E '/Type /Page([^s]|$)' "$1"; fi
}
same_bytes() { # DIR_A DIR_B: the same file list and every file identical
  [ "$(cd "$1" && find . -type f | sort)" = "$(cd "$2" && find . -type f | sort)" ] || return 1
  (cd "$1" && find . -type f) | while read -r f; do cmp -s "$1/$f" "$2/$f" || { echo "     differs: $f"; exit 1; }; done
}
no_thin_pages() { # PDF: every page has a figure or more than two lines of text
  local n i t im; n=$(pdf_pages "$1")
  for i in $(seq 1 "$n"); do
    t=$(pdftotext -f "$i" -l "$i" -layout "$1" - 2>/dev/null | grep -c '[[:alnum:]]')
    im=$(pdfimages -list -f "$i" -l "$i" "$1" 2>/dev/null | tail -n +3 | wc -l)
    [ "$t" -gt 2 ] || [ "$im" -gt 0 ] || { echo "     page $i: $t lines, $im images"; return 1; }
  done
}
check_report() { # NAME DIR: files, links, pages, provenance
  local name=$1 dir=$2
  expect "$name: index.html, report.md, report.pdf" \
    sh -c "[ -s '$dir/index.html' ] && [ -s '$dir/report.md' ] && [ -s '$dir/report.pdf' ]"
  expect "$name: tables as csv and tex" \
    sh -c "ls '$dir'/tables/*.csv >/dev/null && ls '$dir'/tables/*.tex >/dev/null && [ \$(ls '$dir'/tables/*.csv | wc -l) = \$(ls '$dir'/tables/*.tex | wc -l) ]"
  expect "$name: figures are PNG" sh -c "for f in '$dir'/figures/*.png; do head -c 8 \"\$f\" | grep -q PNG || exit 1; done"
  refs_html "$dir/index.html" >"$tmp/refs"
  expect "$name: index.html references only files that exist" all_exist "$dir" "$tmp/refs"
  expect "$name: index.html shows every figure" \
    [ "$(grep -c '<img src="figures/' "$dir/index.html")" = "$(ls "$dir"/figures/*.png | wc -l)" ]
  expect "$name: every vector twin is a PDF beside its PNG" sh -c "
    for f in '$dir'/figures/*.pdf; do [ -e \"\$f\" ] || continue; head -c 5 \"\$f\" | grep -q '%PDF-' &&
      [ -s \"\${f%.pdf}.png\" ] || exit 1; done"
  expect "$name: only PNGs and their vector twins in figures/" \
    [ "$(ls "$dir"/figures | grep -cvE '[.](png|pdf)$')" = 0 ]
  expect "$name: no external URL in index.html" sh -c "! grep -qE '(https?:)?//[a-z]' '$dir/index.html'"
  refs_md "$dir/report.md" >"$tmp/refs"
  expect "$name: report.md references only files that exist" all_exist "$dir" "$tmp/refs"
  local pages; pages=$(pdf_pages "$dir/report.pdf")
  expect "$name: PDF has more than one page ($pages)" [ "${pages:-0}" -gt 1 ]
  expect "$name: PDF creation date pinned" grep -aqE "CreationDate \((D:)?20240101" "$dir/report.pdf"
  for f in index.html report.md tables/headline.tex tables/consistency-run1.tex; do
    [ -f "$dir/$f" ] || continue
    expect "$name: provenance in $f" sh -c "grep -q 'routerscope 0' '$dir/$f' && grep -q 'sha256' '$dir/$f' && grep -q 'report --db' '$dir/$f' && grep -q 'seed' '$dir/$f'"
  done
  expect "$name: no NaN" sh -c "! grep -qiw nan '$dir/report.md'"
  if command -v pdftotext >/dev/null && command -v pdfimages >/dev/null; then
    expect "$name: no near-empty PDF page (no figure and <= 2 lines of text)" no_thin_pages "$dir/report.pdf"
    # a figure whose vector twin is the lighter file is drawn as vectors, not as an image
    local lighter=0 f
    for f in "$dir"/figures/*.pdf; do
      [ -e "$f" ] && [ "$(stat -c %s "$f")" -lt "$(stat -c %s "${f%.pdf}.png")" ] && lighter=$((lighter + 1))
    done
    expect "$name: the PDF embeds images only for figures without a lighter vector twin ($lighter lighter)" \
      [ "$(pdfimages -list "$dir/report.pdf" | tail -n +3 | awk '$3 == "image"' | wc -l)" -le \
        "$(( $(ls "$dir"/figures/*.png | wc -l) - lighter ))" ]
    expect "$name: some plot has a lighter vector twin" [ "$lighter" -gt 0 ]
  fi
  expect "$name: tables scroll in their own box" sh -c "! grep -q '<table>' '$dir/index.html' || grep -q '<div class=\"scroll\"><table>' '$dir/index.html'"
  expect "$name: provenance is the last section" sh -c "grep '^## ' '$dir/report.md' | tail -1 | grep -q 'Appendix: provenance'"
}

# --- one run -----------------------------------------------------------------------------------
mkdir -p "$tmp/a" "$tmp/b"
(cd "$tmp/a" && "$rs" report --db "$db" --runs 1 --out one --resamples 100 --images 2 >/dev/null 2>"$tmp/err")
expect "report --runs 1 exits 0" [ $? = 0 ]
check_report "one run" "$tmp/a/one"
expect "one run: consistency table has the paper's headers" \
  sh -c "grep -q 'Top-2 (order-agnostic)' '$tmp/a/one/report.md' && grep -q '| view 1 .*| all ' '$tmp/a/one/report.md'"
expect "one run: router, load, transition figures, 2 grids and a heatmap" \
  sh -c "cd '$tmp/a/one/figures' && [ -f router-run1.png ] && [ -f load-run1.png ] && [ -f transition-run1.png ] && [ \$(ls grid-*.png | wc -l) = 2 ] && [ \$(ls heatmap-run1-*.png | wc -l) = 1 ]"
# Example images: the first ones on which the pair run matched at least half of its patches.
# poor: the images whose view 1 matched fewer than half of its patches (exported match column).
poor=" $("$rs" export --db "$db" --run 1 | awk -F, 'NR > 1 && $4 == 1 && $5 == 0 && $8 == 0 && $13 == 0 {
  n[$3]++; if ($12 >= 0) m[$3]++ } END { for (i = 0; i in n; i++) if (2 * m[i] < n[i]) printf "%d ", i }')"
shown=$(ls "$tmp/a/one/figures" | sed -n 's/^grid-run1-image\([0-9]*\)\.png$/\1/p')
expect "a poorly matched image among the first two (so the next test tells)" sh -c "echo '$poor' | grep -Eq ' (0|1) '"
expect "one run: the example images are well matched ($(echo $shown))" \
  sh -c "[ -n '$shown' ] && for i in $(echo $shown); do echo '$poor' | grep -q \" \$i \" && exit 1; done; exit 0"
if command -v pdftotext >/dev/null; then
  expect "one run: page 1 answers with the run's headline figures and intervals" sh -c "
    pdftotext -l 1 -layout '$tmp/a/one/report.pdf' '$tmp/p1'; grep -q 'Answer: the run.s headline figures' '$tmp/p1' &&
    grep -q 'Accuracy, view 0' '$tmp/p1' && grep -Eq 'run 1 .*pair .*[0-9]+\.[0-9]+ \[[0-9.]+, [0-9.]+\]' '$tmp/p1'"
fi
expect "one run: the unmatched count says why crops leave patches out" grep -q 'Unmatched: .*normal for crops' "$tmp/a/one/report.md"
(cd "$tmp/a" && "$rs" report --db "$db" --runs 2 --out noise --resamples 100 --images 1 >/dev/null 2>"$tmp/err")
expect "report of a noise run has the severity sweep" [ -f "$tmp/a/noise/figures/sweep-run2.png" ]

# --- comparison --------------------------------------------------------------------------------
(cd "$tmp/a" && "$rs" report --db "$db" --runs 1,2 --out cmp --resamples 100 --images 1 >/dev/null 2>"$tmp/err")
expect "report --runs 1,2 exits 0" [ $? = 0 ]
check_report "runs 1,2" "$tmp/a/cmp"
expect "runs 1,2: headline and accuracy tables (noise and pair runs apart, no column all n/a)" \
  sh -c "[ -f '$tmp/a/cmp/tables/headline.csv' ] && [ -f '$tmp/a/cmp/tables/accuracy.csv' ] && grep -q 'Severity 5' '$tmp/a/cmp/report.md' && [ -f '$tmp/a/cmp/tables/accuracy-views.csv' ] && ! grep -q '^[0-9]*,,,[a-z0-9]*,,' '$tmp/a/cmp/tables/accuracy.csv' '$tmp/a/cmp/tables/accuracy-views.csv' && grep -q '25-100 %' '$tmp/a/cmp/report.md' && ! grep -q 'is below clean accuracy' '$tmp/a/cmp/report.md'"
expect "runs 1,2: severity sweep and grids of both runs" \
  sh -c "cd '$tmp/a/cmp/figures' && [ -f sweep.png ] && ls grid-run1-* >/dev/null && ls grid-run2-* >/dev/null"
expect "runs 1,2: the noise run's per-patch heatmap in the examples" \
  sh -c "ls '$tmp/a/cmp/figures'/heatmap-run2-*.png >/dev/null && grep -q 'Per-patch heatmap' '$tmp/a/cmp/report.md'"
expect "runs 1,2: no per-run detail without --detail" \
  sh -c "! grep -q '^## Details of' '$tmp/a/cmp/report.md' && ! [ -f '$tmp/a/cmp/tables/consistency-run1.csv' ] && ! [ -f '$tmp/a/cmp/figures/load-run1.png' ]"
# one model, no baseline: the model's own figures answer, no pair run is ranked against a noise run
if command -v pdftotext >/dev/null; then
  expect "runs 1,2 (one model): page 1 shows each run's headline figures, both protocols" sh -c "
    pdftotext -l 1 -layout '$tmp/a/cmp/report.pdf' '$tmp/p1'; grep -q 'Answer: each run.s headline figures' '$tmp/p1' &&
    grep -Eq 'run 1 .* pair .*\[' '$tmp/p1' && grep -Eq 'run 2 .* noise .*\[' '$tmp/p1'"
fi
expect "runs 1,2 (one model): no 'no comparable baseline' stub, no largest differences across protocols" sh -c "
  ! grep -q 'No run here has a comparable baseline' '$tmp/a/cmp/report.md' && ! grep -q '^## Largest differences' '$tmp/a/cmp/report.md'"
(cd "$tmp/a" && "$rs" report --db "$db" --runs 1,2 --out detail --resamples 100 --images 1 --detail >/dev/null 2>"$tmp/err")
expect "runs 1,2 --detail exits 0" [ $? = 0 ]
expect "runs 1,2 --detail: the provenance is still the last section" \
  sh -c "grep '^## ' '$tmp/a/detail/report.md' | tail -1 | grep -q 'Appendix: provenance'"
expect "runs 1,2 --detail: each run's own section, tables and figures" \
  sh -c "[ \$(grep -c '^## Details of run' '$tmp/a/detail/report.md') = 2 ] && [ -f '$tmp/a/detail/tables/consistency-run1.csv' ] && [ -f '$tmp/a/detail/tables/router-run2.csv' ] && [ -f '$tmp/a/detail/figures/load-run1.png' ]"
expect "runs 1,2 --detail: the PDF is longer than without" \
  [ "$(pdf_pages "$tmp/a/detail/report.pdf")" -gt "$(pdf_pages "$tmp/a/cmp/report.pdf")" ]
(cd "$tmp/a" && "$rs" report --db "$db" --runs 1,3 --out pairs --resamples 100 --images 1 >/dev/null 2>"$tmp/err")
expect "two pair runs (seeds 0, 1): exits 0" [ $? = 0 ]
check_report "runs 1,3" "$tmp/a/pairs"
expect "runs 1,3: flagged as not comparable" grep -q 'not comparable with run 1: seed differs' "$tmp/a/pairs/report.md"
expect "runs 1,3: largest differences table" \
  sh -c "[ -f '$tmp/a/pairs/tables/largest-differences.csv' ] && grep -q 'Largest per-image differences' '$tmp/a/pairs/index.html'"
(cd "$tmp/a" && "$rs" report --db "$db" --runs 1,1 --out self --resamples 100 --images 0 >/dev/null 2>"$tmp/err")
expect "a run against itself: paired difference 0" grep -Eq '\| run 1 .*\| overall .*\+?0\.00 \[' "$tmp/a/self/report.md"

# Baselines: a run is compared with an earlier V-MoE run of its protocol and top-k, never across
# k. Runs 4 (k = 1), 1 (k = 2), 1 again: only the second k = 2 entry has a baseline, run 1.
k1=$(dirname "$model")/fmnist-vmoe-k1.safetensors
if [ -f "$k1" ]; then
  "$rs" replay "$k1" --data fashion-mnist:test --limit 100 --db "$db" --threads 1 >/dev/null 2>&1          # run 4
  (cd "$tmp/a" && "$rs" report --db "$db" --runs 4,1,1 --out base --resamples 100 --images 0 >/dev/null 2>"$tmp/err")
  expect "baselines by protocol and top-k, not across k" \
    sh -c "grep -q 'V-MoE k=2 (run 1) vs V-MoE k=2 (run 1)' '$tmp/a/base/report.md' && ! grep -q 'vs V-MoE k=1 (run 4)' '$tmp/a/base/report.md'"
  expect "the second k = 2 entry: paired difference 0 to its k = 2 baseline" \
    sh -c "grep -E '^\| run 1 .*\| overall ' '$tmp/a/base/report.md' | tail -1 | grep -Eq '\+?0\.00 \['"
  # csv rows carry their run: run 4's and run 1's headline rows, and the differences table's
  # rows "RUN,,all,vs_runBASELINE_METRIC": run 1 against itself (0, p 1), never against run 4
  csv=$tmp/a/base/tables
  expect "headline.csv: rows of run 4 and run 1" \
    sh -c "grep -q '^4,all,[^,]*,top1,' '$csv/headline.csv' && grep -q '^1,all,[^,]*,top1,' '$csv/headline.csv'"
  expect "differences.csv: run 1 vs itself, not vs run 4 (k differs)" \
    sh -c "! grep -q '^1,,all,vs_run4_top1_diff,' '$csv/differences.csv' && grep -Eq '^1,,all,vs_run1_top1_diff,(0|-?0\.0*),' '$csv/differences.csv'"
  expect "differences.csv: McNemar p = 1 for a run against itself" \
    grep -Eq '^1,,all,vs_run1_mcnemar_p,1,' "$csv/differences.csv"
else
  echo "skip the baseline test: $k1 is not there"
fi

# --- same input, same bytes --------------------------------------------------------------------
(cd "$tmp/b" && "$rs" report --db "$db" --runs 1 --out one --resamples 100 --images 2 >/dev/null 2>"$tmp/err")
expect "one run: same bytes twice" same_bytes "$tmp/a/one" "$tmp/b/one"
(cd "$tmp/b" && "$rs" report --db "$db" --runs 1,2 --out cmp --resamples 100 --images 1 >/dev/null 2>"$tmp/err")
expect "runs 1,2: same bytes twice" same_bytes "$tmp/a/cmp" "$tmp/b/cmp"

# --- the folder is replaced as a whole -----------------------------------------------------------
expect "the report folder carries its marker" [ -f "$tmp/a/one/.routerscope-report" ]
cp -r "$tmp/a/one" "$tmp/old"                                        # the report of run 1
# Provenance holds the command line, so each comparison runs the same command in another folder.
mkdir -p "$tmp/c" "$tmp/d"
(cd "$tmp/d" && "$rs" report --db "$db" --runs 3 --out k --resamples 100 --images 1 >/dev/null 2>&1)
# kill -9 at several moments of a report replacing an earlier one: the target is always one
# whole report, the old or the new, never a mixture or a half.
whole=0
for delay in 0.05 0.2 0.4 0.7 1.0 1.5; do
  rm -rf "$tmp/c/k" && cp -r "$tmp/old" "$tmp/c/k"
  (cd "$tmp/c" && exec "$rs" report --db "$db" --runs 3 --out k --resamples 100 --images 1 >/dev/null 2>&1) &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if same_bytes "$tmp/c/k" "$tmp/old" >/dev/null || same_bytes "$tmp/c/k" "$tmp/d/k" >/dev/null; then
    whole=$((whole + 1))
  else
    echo "     after kill -9 at ${delay}s the folder is neither report"
  fi
done
expect "kill -9 during a report leaves the old or the new report whole (6 moments)" [ $whole = 6 ]
rm -rf "$tmp/c"/.k.tmp-* "$tmp/c"/.k.old-*
(cd "$tmp/b" && "$rs" report --db "$db" --runs 3 --out k --resamples 100 --images 1 >/dev/null 2>"$tmp/err")
(cd "$tmp/b" && "$rs" report --db "$db" --runs 1 --out k --resamples 100 --images 2 >/dev/null 2>"$tmp/err")
(cd "$tmp/d" && "$rs" report --db "$db" --runs 1 --out k --resamples 100 --images 2 >/dev/null 2>"$tmp/err")
expect "a second report replaces the first" same_bytes "$tmp/b/k" "$tmp/d/k"
expect "no temporary folder is left beside it" sh -c "! ls -a '$tmp/b' '$tmp/d' | grep -q 'tmp-\|old-'"
mkdir -p "$tmp/mine" && echo keep >"$tmp/mine/notes.txt"
"$rs" report --db "$db" --runs 1 --out "$tmp/mine" >/dev/null 2>"$tmp/err"; st=$?
expect "a non-empty folder without the marker is refused (exit 1, one line)" failed_with "$st" 1 "holds no report"
expect "and left as it was" sh -c "[ \"\$(ls -A '$tmp/mine')\" = notes.txt ] && ! ls -a '$tmp' | grep -q '\.mine\.tmp-'"
mkdir -p "$tmp/empty"
"$rs" report --db "$db" --runs 1 --out "$tmp/empty/" --resamples 100 --images 0 >/dev/null 2>&1
expect "an empty folder becomes the report" \
  sh -c "[ -s '$tmp/empty/index.html' ] && [ -s '$tmp/empty/report.pdf' ] && [ -f '$tmp/empty/.routerscope-report' ]"
# Permissions: a new report folder is made as any folder (the umask), an existing one keeps its own.
mkdir "$tmp/plain"
expect "a new report folder has a plain folder's permissions" [ "$(stat -c %a "$tmp/a/one")" = "$(stat -c %a "$tmp/plain")" ]
expect "an empty folder keeps its permissions" [ "$(stat -c %a "$tmp/empty")" = "$(stat -c %a "$tmp/plain")" ]
chmod 750 "$tmp/empty"
"$rs" report --db "$db" --runs 1 --out "$tmp/empty" --resamples 0 --images 0 >/dev/null 2>&1
expect "a report replacing a 0750 report stays 0750" [ "$(stat -c %a "$tmp/empty")" = 750 ]

# --- bad input ---------------------------------------------------------------------------------
"$rs" report --db "$db" --runs 1 >/dev/null 2>"$tmp/err"; st=$?
expect "missing --out exits 2 with one line" failed_with "$st" 2 "--out"
"$rs" report --db "$db" --runs 1,x --out "$tmp/x" >/dev/null 2>"$tmp/err"; st=$?
expect "bad --runs exits 2 with one line" failed_with "$st" 2 "--runs"
"$rs" report --db "$db" --runs 1 --out "$tmp/x" --images -1 >/dev/null 2>"$tmp/err"; st=$?
expect "bad --images exits 2 with one line" failed_with "$st" 2 "--images"
"$rs" report --db "$db" --runs 1 --out "$tmp/x" --bogus >/dev/null 2>"$tmp/err"; st=$?
expect "unknown flag exits 2 with one line" failed_with "$st" 2 "bogus"
"$rs" report --db "$db" --runs 1,99 --out "$tmp/x" >/dev/null 2>"$tmp/err"; st=$?
expect "missing run exits 1 with one line" failed_with "$st" 1 "99"
"$rs" report --db "$tmp/none.db" --runs 1 --out "$tmp/x" >/dev/null 2>"$tmp/err"; st=$?
expect "missing database exits 1 with one line" failed_with "$st" 1 "none.db"

# --- a browser, when there is one ---------------------------------------------------------------
# In the release build only: the page is the same bytes under the sanitizers, and headless
# Chromium on a loaded machine took the sanitizer suite past its timeout.
if [ "${RS_BUILD_KIND:-release}" = sanitize ]; then
  echo "skip chromium: the release build checks the page"
elif command -v chromium >/dev/null; then
  chrome=(timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking)
  "${chrome[@]}" --screenshot="$tmp/shot.png" --window-size=1200,2000 "file://$tmp/a/cmp/index.html" \
    >/dev/null 2>"$tmp/chromium.err"
  expect "chromium loads index.html and writes a screenshot" sh -c "[ $? = 0 ] && [ -s '$tmp/shot.png' ]"
  # Load errors: a page beside the report frames it and lists every image that did not
  # decode (missing file, bad PNG); the DOM dumped after load carries the verdict.
  cat >"$tmp/a/check.html" <<'HTML'
<html><body><iframe id="f" src="cmp/index.html"></iframe><pre id="out">not loaded</pre><script>
document.getElementById('f').onload = function () {
  var imgs = this.contentDocument.images, bad = [];
  for (var i = 0; i < imgs.length; i++)
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) bad.push(imgs[i].getAttribute('src'));
  document.getElementById('out').textContent = 'images ' + imgs.length + ' broken ' + bad.length + ' ' + bad.join(' ');
};
</script></body></html>
HTML
  verdict() { # the checker page's verdict after load
    "${chrome[@]}" --allow-file-access-from-files --virtual-time-budget=10000 --dump-dom \
      "file://$tmp/a/check.html" 2>/dev/null | grep -o '<pre id="out">[^<]*' | sed 's/.*>//'
  }
  verdict=$(verdict)
  echo "     chromium: $verdict"
  expect "chromium: every image of index.html loads" sh -c "echo '$verdict' | grep -Eq '^images [1-9][0-9]* broken 0 *$'"
  rm "$tmp/a/cmp/figures/sweep.png"
  verdict=$(verdict)
  expect "chromium: a deleted figure is reported broken" sh -c "echo '$verdict' | grep -q 'broken 1 figures/sweep.png'"
else
  echo "skip chromium: not installed (Debian package chromium)"
fi

testlib_done report
