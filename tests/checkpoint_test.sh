#!/usr/bin/env bash
# README's "Analysing your own checkpoint" runs as written: a bundled model saved as a
# timm-style .pth (pytorch/to_timm.py) and the README's example config go into mine/, and
# the README's command block, extracted from the README, runs from the repository root's
# layout down to a report, in a database that already holds runs of another checkpoint of
# the same file name (the walkthrough must report its own runs). Also: convert_timm.py
# keeps the weights, refuses a config or state dict that does not fit in one line and
# writes nothing; `convert timm` points to the script.
# The walkthrough replays 1,000 images twice and writes a report (about 20 s in release):
# release build only. Needs Debian's python3-torch (scripts/ensure-deps.sh --tests).
# usage: checkpoint_test.sh ROUTERSCOPE SOURCE_ROOT MODEL STAND_IN_MODEL
set -u
rs=$(realpath "$1") root=$(realpath "$2") model=$(realpath "$3") stand_in=$(realpath "$4")
. "$(dirname "$0")/testlib.sh"
testlib_init
py=/usr/bin/python3

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip: dataset-fashion-mnist is not installed"; testlib_done checkpoint; exit
fi
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "skip: $py has no torch (scripts/ensure-deps.sh --tests installs python3-torch)"; testlib_done checkpoint; exit
fi

# The README section's first block of KIND (json, sh), as a reader copies it.
readme_block() {
  awk -v want="$1" '/^## Analysing your own checkpoint/ {s = 1; next} s && /^## / {exit}
    s && $0 == "```" want {on = 1; next} on && /^```$/ {exit} on' "$root/README.md"
}

# --- the repository's layout, with mine/ holding a .pth and the README's config --------
w=$tmp/repo
mkdir -p "$w/mine"
ln -s "$(dirname "$rs")" "$w/build"
ln -s "$root/pytorch" "$w/pytorch"
readme_block json >"$w/mine/vmoe.json"
readme_block sh >"$tmp/walk.sh"
expect "README has the config and the commands" test -s "$w/mine/vmoe.json" -a -s "$tmp/walk.sh"
"$py" "$root/pytorch/to_timm.py" "$model" "$w/mine/vmoe.pth" "$tmp/model.json" >/dev/null 2>"$tmp/err"
expect "to_timm.py saves the bundled model as a .pth" [ $? = 0 ]
expect "the .pth has timm's names" "$py" -c "import torch, sys; s = torch.load(sys.argv[1]);
sys.exit(not ('patch_embed.proj.weight' in s and 'blocks.1.mlp.experts.7.fc2.bias' in s and 'blocks.3.mlp.router.weight' in s))" \
  "$w/mine/vmoe.pth"

# --- convert_timm.py: the weights kept, mismatches in one line -----------------------
conv() { "$py" "$root/pytorch/convert_timm.py" "$@" >/dev/null 2>"$tmp/err"; }
conv "$w/mine/vmoe.pth" "$tmp/model.json" "$tmp/same.safetensors"
expect "convert_timm.py converts the .pth" [ $? = 0 ]
"$rs" eval "$model" --data fashion-mnist:test --limit 200 --predictions "$tmp/p0" >/dev/null 2>&1
"$rs" eval "$tmp/same.safetensors" --data fashion-mnist:test --limit 200 --predictions "$tmp/p1" >/dev/null 2>"$tmp/err"
expect "the converted model predicts as the bundled one" cmp -s "$tmp/p0" "$tmp/p1"
sed 's/"num_experts": 8/"num_experts": 4/' "$w/mine/vmoe.json" >"$tmp/e4.json"
conv "$w/mine/vmoe.pth" "$tmp/e4.json" "$tmp/e4.safetensors"
expect "a config with other num_experts: exit 1, one line naming the tensor, the shapes and the key" \
  failed_with $? 1 'blocks.1.moe.router.weight: \[8, 64\] in the state dict, config wants \[4, 64\] (num_experts 4) (and 9 more)$'
expect "and nothing is written" [ ! -e "$tmp/e4.safetensors" ]
"$py" -c "import torch, sys; s = torch.load(sys.argv[1]); [s.pop(k) for k in [k for k in s if '.1.norm' in k or k.startswith('head.')]]
torch.save(s, sys.argv[2])" "$w/mine/vmoe.pth" "$tmp/short.pth"
conv "$tmp/short.pth" "$w/mine/vmoe.json" "$tmp/short.safetensors"
expect "a state dict without 6 tensors: one line naming the first" failed_with $? 1 'missing: blocks.1.norm1.weight (and 5 more)$'
sed 's/"moe_layers": \[1, 3\]/"moe_layers": [3]/' "$w/mine/vmoe.json" >"$tmp/moe.json"
conv "$w/mine/vmoe.pth" "$tmp/moe.json" "$tmp/moe.safetensors"
expect "other MoE blocks: one line that says so first" \
  failed_with $? 1 'does not fit .*moe.json: MoE blocks \[1, 3\] in the state dict, config moe_layers \[3\]; missing'
"$rs" convert timm "$w/mine/vmoe.pth" "$w/mine/vmoe.json" "$tmp/x.safetensors" >/dev/null 2>"$tmp/err"
expect "convert timm points to the script" failed_with $? 2 "pytorch/convert_timm.py STATE.pth CONFIG.json"

# --- the walkthrough, verbatim, after runs of another vmoe.safetensors ----------------
if [ "${RS_BUILD_KIND:-release}" = sanitize ]; then
  echo "skip the walkthrough: sanitizer build (release only)"; testlib_done checkpoint; exit
fi
cp "$stand_in" "$w/mine/vmoe.safetensors"
for protocol in pair noise; do
  "$rs" replay "$w/mine/vmoe.safetensors" --data fashion-mnist:test --limit 20 --protocol $protocol \
    --db "$w/mine/mine.db" --threads 1 >/dev/null 2>"$tmp/err"
done
old=$(sha256sum "$stand_in" | cut -c1-12)
(cd "$w" && bash -e "$tmp/walk.sh") >"$tmp/walk.log" 2>"$tmp/err"
expect "the README's commands run as written" [ $? = 0 ]
new=$(sha256sum "$w/mine/vmoe.safetensors" | cut -c1-12)
expect "runs tells the two vmoe.safetensors apart" \
  sh -c "grep -q ' pair .*vmoe ($old, k=2)' '$tmp/walk.log' && grep -q ' pair .*vmoe ($new, k=2)' '$tmp/walk.log'"
expect "stats --run vmoe/pair reads the converted model's run" grep -q "^run 3: model vmoe ($new, k=2)" "$tmp/walk.log"
report=$w/mine/report
expect "the report is written" test -s "$report/index.html" -a -s "$report/report.pdf"
expect "the report holds the converted model's runs, not the other vmoe's" \
  sh -c "grep -q 'vmoe ($new' '$report/report.md' && ! grep -q '$old' '$report/report.md'"
if command -v pdftotext >/dev/null; then
  pdftotext -l 1 "$report/report.pdf" "$tmp/page1.txt" 2>/dev/null
  expect "the report's first page names the model" grep -q 'vmoe' "$tmp/page1.txt"
  expect "the report's first page answers: the model's own headline figures" \
    sh -c "grep -q \"Answer: each run.s headline figures\" '$tmp/page1.txt' && grep -q 'Accuracy, view 0' '$tmp/page1.txt'"
fi

testlib_done checkpoint
