#!/usr/bin/env bash
# End-to-end tests of attacked views (`pgd:` view operations, `--protocol adversarial`) and
# `base:view=V` on the real binary (docs/attacks.md, docs/views.md):
#   bad specs      pgd:eps=-1, loss=foo, steps=0, alpha=abc, a model-dependent objective
#                  error: exit 1, one line quoting the spec, no database, no run
#   adversarial    the protocol's views on the tiny model, its attacks rows (norms inside
#                  each ball, steps, objective blobs)
#   eps = 0        an attacked view with eps 0 records exactly what its start view records;
#                  base views keep their base's pixels and geometry
#   determinism    --threads 1 --batch 7 and --threads 2 --batch 64: identical records,
#                  attacks included; two shards merged: identical too
#   modes          vmoe (sign steps, cross-entropy) and L2 runs end to end
#   strength       (release build only) a router attack lowers Top-1 agreement as eps grows
#                  on a bundled model
# usage: attack_test.sh ROUTERSCOPE MODEL MODELS_DIR
set -u
rs=$(realpath "$1") model=$(realpath "$2") models=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip attack tests: dataset-fashion-mnist is not installed"; echo "attack: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test

# Every stored fact of run 1, attacks included, in a canonical order.
dump() { # DB
  sqlite3 "$1" "SELECT 'p', image, view, predicted, printf('%.9g', prob), params, hex(match) FROM predictions
                  WHERE run_id=1 ORDER BY image, view;
                SELECT 'r', image, view, layer, hex(top_idx), hex(top_gate), hex(probs) FROM routing
                  WHERE run_id=1 ORDER BY image, view, layer;
                SELECT 'a', image, view, printf('%.9g', linf), printf('%.9g', l2), steps, hex(objective)
                  FROM attacks WHERE run_id=1 ORDER BY image, view;"
}
# The routing and prediction rows of view V of run 1 without the view number.
view_records() { # DB V
  sqlite3 "$1" "SELECT image, predicted, printf('%.9g', prob), hex(match) FROM predictions
                  WHERE run_id=1 AND view=$2 ORDER BY image;
                SELECT image, layer, hex(top_idx), hex(top_gate), hex(probs) FROM routing
                  WHERE run_id=1 AND view=$2 ORDER BY image, layer;" >"$tmp/view$2.txt"
}
q() { sqlite3 "$1" "$2"; }

# --- bad specs: one line quoting the spec, exit 1, nothing recorded ----------------------
bad_spec() { # NAME PATTERN ARGS...
  local name=$1 pattern=$2; shift 2
  "$rs" replay "$model" --data $data --limit 4 --db "$tmp/bad.db" "$@" >"$tmp/out" 2>"$tmp/err"
  expect "$name: exit 1, one line" failed_with $? 1 "$pattern"
  expect "$name: no database" [ ! -e "$tmp/bad.db" ]
}
bad_spec "pgd:eps=-1" "view 'pgd:eps=-1': eps -1 outside" \
  --protocol custom --views 'clean;pgd:eps=-1'
bad_spec "loss=foo" "view 'base:view=0+pgd:eps=1/255,loss=foo': loss: 'foo' is not" \
  --protocol adversarial --attack 'pgd:loss=foo' --eps 1/255
bad_spec "steps=0" "view 'base:view=0+pgd:eps=4/255,steps=0': steps '0' is not an integer" \
  --protocol adversarial --attack 'pgd:steps=0' --eps 4/255
bad_spec "a key typo" "pgd has no parameter 'stpes' (did you mean 'steps'? pgd takes eps, steps, alpha, loss, beta, target, norm, start, mode, layers)" \
  --protocol adversarial --attack 'pgd:stpes=3' --eps 4/255
bad_spec "alpha=abc" "alpha 'abc' is not a number or a fraction A/B" \
  --protocol adversarial --attack 'pgd:alpha=abc'
bad_spec "eps list" "view 'base:view=0+pgd:eps=x,steps=10,loss=router': eps 'x' is not a number" \
  --protocol adversarial --eps 1/255,x
# The protocol's radii are a grid the statistics read in order: strictly increasing.
bad_spec "decreasing eps" "--eps '8/255,1/255': the radii must increase strictly (1/255 after 8/255)" \
  --protocol adversarial --eps 8/255,1/255
bad_spec "repeated eps" "--eps '1/255,2/255,2/255': the radii must increase strictly (2/255 after 2/255)" \
  --protocol adversarial --eps 1/255,2/255,2/255
# Radii are decimal numbers or fractions, nothing else.
bad_spec "hex eps" "eps '0x10' is not a number or a fraction A/B" --protocol adversarial --eps 0x10
bad_spec "blank before eps" "eps ' 1/255' is not a number or a fraction A/B" --protocol adversarial --eps ' 1/255'
bad_spec "target beyond the experts" "view 'clean+pgd:eps=1/255,loss=router-target,target=99': target=99" \
  --protocol custom --views 'clean;clean+pgd:eps=1/255,loss=router-target,target=99'
bad_spec "layers= names a dense block" "layers: block 0 is not a MoE block" \
  --protocol custom --views 'clean;pgd:eps=1/255,layers=0'
bad_spec "base after itself" "base view 1 is not an earlier view (this is view 1)" \
  --protocol custom --views 'clean;base:view=1+noise:sigma=0.1'
bad_spec "geometry after base" "after base, only jitter, corrupt, noise, pgd and route may follow" \
  --protocol custom --views 'clean;base:view=0+flip:p=1'
"$rs" replay "$model" --data $data --limit 4 --db "$tmp/bad.db" --attack pgd:steps=2 >"$tmp/out" 2>"$tmp/err"
expect "--attack without adversarial: usage error" failed_with $? 2 "--attack belongs to --protocol adversarial"
# An existing store gains no run either.
"$rs" replay "$model" --data $data --limit 2 --protocol noise --db "$tmp/keep.db" >/dev/null 2>&1
"$rs" replay "$model" --data $data --limit 4 --db "$tmp/keep.db" --protocol adversarial --eps -1 >"$tmp/out" 2>"$tmp/err"
expect "bad eps into an existing store: exit 1" failed_with $? 1 "eps -1 outside"
expect "... and no run is recorded" [ "$(q "$tmp/keep.db" 'SELECT count(*) FROM runs')" = 1 ]

# --- the adversarial protocol on 8 images --------------------------------------------------
"$rs" replay "$model" --data $data --limit 8 --db "$tmp/adv.db" --protocol adversarial --threads 2 \
  >"$tmp/out" 2>"$tmp/err"
expect "adversarial: 8 images x 5 views" grep -q "8 images x 5 views" "$tmp/out"
expect "view 0 clean, then base:view=0+pgd per eps" [ "$(q "$tmp/adv.db" "SELECT group_concat(spec, ';') FROM
  (SELECT spec FROM views WHERE run_id=1 ORDER BY view)")" = "clean;base:view=0+pgd:eps=1/255,steps=10,loss=router;base:view=0+pgd:eps=2/255,steps=10,loss=router;base:view=0+pgd:eps=4/255,steps=10,loss=router;base:view=0+pgd:eps=8/255,steps=10,loss=router" ]
expect "one attacks row per image and attacked view" [ "$(q "$tmp/adv.db" 'SELECT count(*) FROM attacks')" = 32 ]
expect "10 steps, 11 float32 objective values" \
  [ "$(q "$tmp/adv.db" 'SELECT count(*) FROM attacks WHERE steps = 10 AND length(objective) = 44')" = 32 ]
expect "every perturbation inside its eps-ball" [ "$(q "$tmp/adv.db" "SELECT count(*) FROM attacks
  WHERE linf > view * 0 + (CASE view WHEN 1 THEN 1 WHEN 2 THEN 2 WHEN 3 THEN 4 ELSE 8 END) / 255.0 + 1e-6")" = 0 ]
expect "the largest ball is used" [ "$(q "$tmp/adv.db" "SELECT max(linf) > 7.9 / 255 FROM attacks WHERE view = 4")" = 1 ]
expect "attacked views match view 0 patch for patch" [ "$(q "$tmp/adv.db" "SELECT count(*) FROM predictions
  WHERE hex(match) != (SELECT hex(match) FROM predictions WHERE run_id=1 AND image=0 AND view=0)")" = 0 ]
expect "parameters carry the attack's seed" \
  [ "$(q "$tmp/adv.db" "SELECT count(*) FROM predictions WHERE params LIKE '%\"attack_seed\"%'")" = 32 ]

# --- eps = 0 reproduces the start view's records exactly -------------------------------------
"$rs" replay "$model" --data $data --limit 8 --db "$tmp/zero.db" --protocol custom \
  --views 'clean;base:view=0+pgd:eps=0,steps=3;crop:area=0.3-0.7+flip:p=0.5+noise:sigma=0.1;base:view=2+pgd:eps=0,steps=2,loss=jsd' \
  >"$tmp/out" 2>"$tmp/err"
expect "custom views with base and pgd run" grep -q "8 images x 4 views" "$tmp/out"
view_records "$tmp/zero.db" 0; view_records "$tmp/zero.db" 1
expect "eps = 0 on the clean view: its records exactly" cmp -s "$tmp/view0.txt" "$tmp/view1.txt"
view_records "$tmp/zero.db" 2; view_records "$tmp/zero.db" 3
expect "eps = 0 on a cropped, noisy base: its records and matches exactly" cmp -s "$tmp/view2.txt" "$tmp/view3.txt"
expect "... whose matches are the crop's, not patch for patch" [ "$(q "$tmp/zero.db" "SELECT count(*) FROM
  predictions a JOIN predictions b ON a.image = b.image AND a.view = 0 AND b.view = 3 WHERE a.match != b.match")" = 8 ]
expect "eps = 0: zero norms" [ "$(q "$tmp/zero.db" 'SELECT max(linf) + max(l2) FROM attacks')" = 0.0 ]

# --- determinism: threads, batch sizes, shards ---------------------------------------------
n=45
[ "${RS_BUILD_KIND:-release}" = sanitize ] && n=25
job=(--data $data --limit $n --protocol adversarial --attack 'pgd:steps=3,loss=ce&router,beta=0.5' --eps 0,4/255 --seed 3)
"$rs" replay "$model" "${job[@]}" --db "$tmp/d1.db" --threads 1 --batch 7 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${job[@]}" --db "$tmp/d2.db" --threads 2 --batch 64 >/dev/null 2>"$tmp/err"
dump "$tmp/d1.db" >"$tmp/d1.txt"; dump "$tmp/d2.db" >"$tmp/d2.txt"
expect "records and attacks identical across threads and batch sizes" cmp -s "$tmp/d1.txt" "$tmp/d2.txt"
expect "... and there are attacks to compare" [ "$(grep -c '^a|' "$tmp/d1.txt")" = $((2 * n)) ]
"$rs" replay "$model" "${job[@]}" --db "$tmp/s0.db" --threads 2 --shard 0/2 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${job[@]}" --db "$tmp/s1.db" --threads 1 --shard 1/2 >/dev/null 2>"$tmp/err"
"$rs" merge --db "$tmp/m.db" "$tmp/s1.db" "$tmp/s0.db" >"$tmp/out" 2>"$tmp/err"
dump "$tmp/m.db" >"$tmp/m.txt"
expect "two shards merged: the same records and attacks" cmp -s "$tmp/d1.txt" "$tmp/m.txt"

# --- vmoe and L2 modes ---------------------------------------------------------------------
"$rs" replay "$model" --data $data --limit 6 --db "$tmp/modes.db" --protocol custom \
  --views 'clean;pgd:eps=4/255,mode=vmoe,steps=4;pgd:eps=0.5,norm=l2,steps=3,loss=margin' >"$tmp/out" 2>"$tmp/err"
expect "vmoe and L2 views run" grep -q "6 images x 3 views" "$tmp/out"
expect "vmoe: 4 sign steps of eps/4 move every pixel by eps at most" \
  [ "$(q "$tmp/modes.db" "SELECT count(*) FROM attacks WHERE view = 1 AND steps = 4 AND linf <= 4 / 255.0 + 1e-6")" = 6 ]
expect "L2: inside the L2 ball" \
  [ "$(q "$tmp/modes.db" "SELECT count(*) FROM attacks WHERE view = 2 AND l2 <= 0.5 + 1e-5 AND l2 > 0")" = 6 ]
expect "vmoe's cross-entropy rises" [ "$(q "$tmp/modes.db" "SELECT count(*) FROM attacks WHERE view = 1 AND
  substr(objective, 1, 4) != substr(objective, 17, 4)")" -gt 0 ]

# --- AdvMoE's router-ce (OPTML-Group/Robust-MoE-CNN, adv_val_router) ------------------------
# Ascends the router's cross-entropy against label mod E (8 experts: labels 8 and 9 wrap) or a
# fixed expert; the value recorded at the returned pixels is that definition computed from
# the attacked view's stored router softmax (float16): mean over patch tokens (class token
# excluded) and MoE layers of -log p[target].
"$rs" replay "$model" --data $data --limit 24 --db "$tmp/advmoe.db" --protocol custom --views \
  'clean;pgd:eps=4/255,steps=4,loss=router-ce,target=label;pgd:eps=4/255,steps=4,loss=router-ce,target=3;pgd:eps=4/255,steps=4,loss=ce&router-ce,target=label,beta=0.5' \
  >"$tmp/out" 2>"$tmp/err"
check_router_ce() {
  python3 - "$tmp/advmoe.db" <<'PY'
import math, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
T, E, cls = db.execute("SELECT tokens, num_experts, has_cls FROM runs").fetchone()
labels = dict(db.execute("SELECT image, label FROM samples"))
assert any(l >= E for l in labels.values()), labels
def half(b):
    return struct.unpack(f"<{len(b) // 2}e", b)
for view, target in ((1, None), (2, 3)):
    for image, obj in db.execute("SELECT image, objective FROM attacks WHERE view = ?", (view,)):
        o = struct.unpack(f"<{len(obj) // 4}f", obj)
        assert o[-1] > o[0], (view, image, o)
        t = labels[image] % E if target is None else target
        terms = []
        for (probs,) in db.execute("SELECT probs FROM routing WHERE image = ? AND view = ?", (image, view)):
            p = half(probs)
            for tok in range(cls, T):
                row = p[tok * E:(tok + 1) * E]
                terms.append(-math.log(row[t] / sum(row)))
        want = sum(terms) / len(terms)
        assert abs(o[-1] - want) < 2e-3 * max(1, want), (view, image, o[-1], want)
for image, obj in db.execute("SELECT image, objective FROM attacks WHERE view = 3"):
    o = struct.unpack(f"<{len(obj) // 4}f", obj)
    assert o[-1] > o[0], (image, o)
PY
}
expect "router-ce: it rises, and its value is -log p[label mod E] (or p[3]) of the stored routing" check_router_ce
"$rs" replay "$model" --data idx:/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --limit 4 \
  --db "$tmp/nolabel.db" --protocol adversarial --attack 'pgd:steps=2,loss=router-ce,target=label' --eps 1/255 \
  >"$tmp/out" 2>"$tmp/err"
expect "router-ce,target=label on images without labels: exit 1 naming the image" \
  failed_with $? 1 "its loss needs labels, and image 0 of idx:"

# --- strength (release build): a router attack lowers Top-1 agreement as eps grows --------
if [ "${RS_BUILD_KIND:-release}" = release ]; then
  "$rs" replay "$models/fmnist-vmoe-k2.safetensors" --data $data --limit 40 --db "$tmp/s.db" \
    --protocol adversarial --attack 'pgd:steps=10,loss=router' --eps 1/255,2/255,4/255,8/255 --threads 2 \
    >/dev/null 2>"$tmp/err"
  "$rs" stats --db "$tmp/s.db" --format csv --resamples 0 >"$tmp/stats.csv" 2>"$tmp/err"
  top1() { awk -F, -v v="view $1" '$2 == v && $3 == "all" && $4 == "top1" { print $5 }' "$tmp/stats.csv"; }
  t1=$(top1 1) t2=$(top1 2) t3=$(top1 3) t4=$(top1 4)
  echo "     Top-1 agreement at eps 1, 2, 4, 8 /255: $t1 $t2 $t3 $t4"
  falls() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN { exit !(a > b && b > c && c > d && d < 0.9) }'; }
  expect "Top-1 agreement falls as eps grows" falls "$t1" "$t2" "$t3" "$t4"
fi

testlib_done attack
