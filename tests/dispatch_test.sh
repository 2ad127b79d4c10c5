#!/usr/bin/env bash
# End-to-end tests of dispatch with expert capacity (docs/dispatch.md) on the tiny model:
# eval reports drops and a factor that drops nothing keeps the accuracy; replay records
# kept masks that do not depend on --batch, --threads, sharding or an interrupted-and-
# resumed run;
# the settings are part of the identity; stats prints the dispatch tables; an older store
# still reads; a group seed replays the same images in other groups (router choices of the
# first MoE layer unchanged, kept sets not), independently of --batch, --threads, shards
# and resumption, and compare --interference measures it; bad options fail with one line.
# usage: dispatch_test.sh ROUTERSCOPE MODEL GOLDEN_DIR
set -u
rs=$(realpath "$1") model=$(realpath "$2") golden=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip dispatch tests: dataset-fashion-mnist is not installed"; echo "dispatch: 0 passed, 0 failed"; exit 0
fi
data=fashion-mnist:test

# --- eval ------------------------------------------------------------------------------------
"$rs" eval "$model" --data $data --limit 60 --threads 1 >"$tmp/plain" 2>"$tmp/err"
"$rs" eval "$model" --data $data --limit 60 --threads 1 --capacity-factor 100 >"$tmp/wide" 2>"$tmp/err"
expect "a factor that drops nothing: no drops, the plain accuracy" \
  sh -c "grep -q ': 0 of 12000 top-k choices dropped' '$tmp/wide' && [ \"\$(grep -o 'accuracy.*)' '$tmp/plain')\" = \"\$(grep -o 'accuracy.*)' '$tmp/wide')\" ]"
"$rs" eval "$model" --data $data --limit 60 --threads 1 --capacity-factor 0.5 --group-images 4 --bpr >"$tmp/small" 2>"$tmp/err"
expect "a small factor drops choices and says so" grep -qE 'capacity factor 0.5, groups of 4 images, BPR: [1-9][0-9]* of 12000' "$tmp/small"
"$rs" eval "$model" --data $data --limit 60 --threads 2 --batch 7 --capacity-factor 0.5 --group-images 4 --bpr >"$tmp/small2" 2>"$tmp/err"
expect "eval with dispatch does not depend on --batch or --threads" \
  [ "$(grep -v speed "$tmp/small")" = "$(grep -v speed "$tmp/small2")" ]

# --- replay: records independent of batch and threads ----------------------------------------
opts=(--data $data --limit 30 --capacity-factor 0.75 --group-images 4)
"$rs" replay "$model" "${opts[@]}" --db "$tmp/a.db" --threads 1 --batch 4 >/dev/null 2>"$tmp/err"
expect "replay with a capacity factor" [ $? = 0 ]
"$rs" replay "$model" "${opts[@]}" --db "$tmp/b.db" --threads 2 --batch 30 >/dev/null 2>"$tmp/err"
dump() { sqlite3 "$1" "SELECT image, view, layer, hex(top_idx), hex(top_gate), hex(probs), hex(kept) FROM routing ORDER BY 1, 2, 3"; }
both() { # CMD... -- CMD... [-- CMD...]: every command succeeds (the checks run in this shell,
  # where the functions above exist; `sh -c` would not see them)
  local cmd=()
  for arg in "$@" --; do
    if [ "$arg" = -- ]; then "${cmd[@]}" || return 1; cmd=(); else cmd+=("$arg"); fi
  done
}
expect "records and kept masks equal for any batch and thread count" [ "$(dump "$tmp/a.db" | md5sum)" = "$(dump "$tmp/b.db" | md5sum)" ]
expect "kept masks hold drops" [ "$(sqlite3 "$tmp/a.db" "SELECT sum(length(kept) - length(replace(kept, x'00', '')) > 0) FROM routing")" -gt 0 ]
expect "the run records its dispatch" [ "$(sqlite3 "$tmp/a.db" "SELECT capacity_factor, group_images, bpr FROM runs")" = "0.75|4|0" ]
"$rs" replay "$model" "${opts[@]}" --db "$tmp/a.db" --threads 1 >"$tmp/out" 2>"$tmp/err"
expect "an identical job is reported, not recomputed" grep -q "already complete" "$tmp/out"
"$rs" replay "$model" "${opts[@]}" --bpr --db "$tmp/a.db" --threads 1 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" --data $data --limit 30 --db "$tmp/a.db" --threads 1 >/dev/null 2>"$tmp/err"
expect "BPR and no capacity are runs of their own; the plain one records no mask" \
  [ "$(sqlite3 "$tmp/a.db" "SELECT group_concat(coalesce(bpr, 'none')) FROM runs ORDER BY id")|$(sqlite3 "$tmp/a.db" "SELECT count(*) FROM routing WHERE run_id = 3 AND kept IS NULL")" = "0,1,none|120" ]
expect "BPR keeps other choices than token order" \
  [ "$(sqlite3 "$tmp/a.db" "SELECT count(*) FROM routing x JOIN routing y USING (image, view, layer) WHERE x.run_id = 1 AND y.run_id = 2 AND x.kept != y.kept")" -gt 0 ]

# --- resume: an interrupted run (cut by deleting its last images) finishes identically ----------
# A run stops at a batch's end, a multiple of the forward pass's group: 16 images here (four
# dispatch groups of 4, model/group.h).
cp "$tmp/b.db" "$tmp/c.db"
sqlite3 "$tmp/c.db" "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE image >= 16; UPDATE runs SET images_done = 16, status = 'interrupted'"
"$rs" replay --db "$tmp/c.db" --resume 1 --threads 1 --batch 8 >"$tmp/out" 2>"$tmp/err"
same_dump() { [ "$(dump "$1" | md5sum)" = "$(dump "$2" | md5sum)" ]; }
expect "resume takes the run's dispatch and ends with the same records" \
  both grep -q resumed "$tmp/out" -- same_dump "$tmp/c.db" "$tmp/b.db"

# --- shards: cut at group boundaries, merged into the whole run's records ------------------------
for i in 0 1; do
  "$rs" replay "$model" "${opts[@]}" --db "$tmp/s$i.db" --shard $i/2 --threads 1 >"$tmp/s$i.out" 2>"$tmp/err"
done
"$rs" merge --db "$tmp/m.db" "$tmp/s0.db" "$tmp/s1.db" >/dev/null 2>"$tmp/err"
same_run_row() { # DB_A DB_B COLUMNS: the runs tables agree in COLUMNS
  [ "$(sqlite3 "$1" "SELECT $3 FROM runs")" = "$(sqlite3 "$2" "SELECT $3 FROM runs")" ]
}
expect "shards start at a group boundary and merge into the whole run's records and identity" \
  both grep -q 'images 0..15)' "$tmp/s0.out" -- same_dump "$tmp/m.db" "$tmp/b.db" -- \
  same_run_row "$tmp/m.db" "$tmp/b.db" "identity, capacity_factor"

# --- stats -----------------------------------------------------------------------------------
"$rs" stats --db "$tmp/a.db" --run 1 --resamples 50 >"$tmp/stats" 2>"$tmp/err"
expect "stats: dispatch note, the three dispatch tables and both routing changes" \
  sh -c "grep -q 'dispatch: capacity factor 0.75, groups of 4 images' '$tmp/stats' &&
         grep -q 'choices dropped by expert capacity' '$tmp/stats' && grep -q 'Expert 7' '$tmp/stats' &&
         grep -q 'Routing changes (router)' '$tmp/stats' && ! grep -q 'routing_changes_kept' '$tmp/stats'"
"$rs" stats --db "$tmp/a.db" --run 1 --resamples 50 --format json >"$tmp/stats.json" 2>"$tmp/err"
check_json() { # the pooled drop rate equals the kept masks' zeros over the top-k ranks
  python3 - "$tmp/stats.json" "$tmp/a.db" <<'PY'
import json, sqlite3, sys
tables = json.load(open(sys.argv[1]))["tables"]
drop = next(t for t in tables if t["title"].startswith("Top-k choices dropped"))
row = next(r for r in drop["rows"] if r["view"] == "all" and r["layer"] == "all")
db = sqlite3.connect(sys.argv[2])
masks = [bytes(b) for (b,) in db.execute("SELECT kept FROM routing WHERE run_id = 1")]
dropped = sum(x == 0 for m in masks for x in m)  # k = 2 = R: every rank is dispatched
total = sum(len(m) for m in masks)
assert row["cells"]["choices"]["value"] == total, (row, total)
assert abs(row["cells"]["dropped"]["value"] - dropped / total) < 1e-9, (row, dropped, total)
agree = next(t for t in tables if t["title"].startswith("Agreement with view 0 before"))
assert "routing_changes_kept" not in agree["rows"][0]["cells"], agree["rows"][0]
PY
}
expect "stats json: drop rate = the stored masks" check_json
# vmoe's routing_changes (projects/adversarial_attacks: 1 - IoU of the experts with a non-zero
# combine weight, an empty union scoring 0, averaged per image over tokens, then over images)
# recomputed from the stored kept masks, against stats' JSON cells, per MoE layer and pooled.
check_changes() { # DB RUN JSON ALIGNED: ALIGNED 1 when every view is pixel-aligned (all tokens)
  python3 - "$@" <<'PY'
import json, sqlite3, struct, sys
db, run, js, aligned = sqlite3.connect(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
T, R, k, cls, V, L = db.execute("SELECT tokens, record_k, top_k, has_cls, num_views, num_layers FROM runs "
                                "WHERE id = ?", (run,)).fetchone()
rec = {(i, v, l): (top, kept) for i, v, l, top, kept in
       db.execute("SELECT image, view, layer, top_idx, kept FROM routing WHERE run_id = ?", (run,))}
match = {(i, v): struct.unpack(f"<{T - cls}h", m) if m else tuple(range(T - cls)) for i, v, m in  # b'': identity
         db.execute("SELECT image, view, match FROM predictions WHERE run_id = ?", (run,))}
images = sorted({i for i, _, _ in rec})
def kept_set(top, kept, t):
    return {top[t * R + r] for r in range(k) if kept[t * R + r]}
def iou(a, b):
    return len(a & b) / len(a | b) if a | b else 0.0
def changes(views, layers):
    per_image = []
    for i in images:
        s = n = 0
        for v in views:
            pairs = ([(t, t) for t in range(T)] if aligned else
                     [(m + cls, j + cls) for j, m in enumerate(match[i, v]) if m >= 0])
            for l in layers:
                (ta, ka), (tb, kb) = rec[i, 0, l], rec[i, v, l]
                s += sum(iou(kept_set(ta, ka, a), kept_set(tb, kb, b)) for a, b in pairs)
                n += len(pairs)
        if n:
            per_image.append(s / n)
    return 1 - sum(per_image) / len(per_image)
rows = next(t for t in json.load(open(js))["tables"] if t["title"].startswith("Routing changes vs view 0"))["rows"]
want = [changes(vs, ls) for ls in [[l] for l in range(L)] + [list(range(L))]
        for vs in [[v] for v in range(1, V)] + ([list(range(1, V))] if V > 2 else [])]
got = [r["cells"]["routing_changes"]["value"] for r in rows]
assert len(got) == len(want) and all(abs(g - w) < 1e-9 for g, w in zip(got, want)), (got, want)
assert all("routing_changes_router" in r["cells"] for r in rows)
assert any(r["cells"]["routing_changes"]["value"] != r["cells"]["routing_changes_router"]["value"] for r in rows)
PY
}
expect "stats json: routing_changes = vmoe's kept-set figure recomputed from the store (matched patches)" \
  check_changes "$tmp/a.db" 1 "$tmp/stats.json" 0
"$rs" replay "$model" --data $data --limit 24 --protocol noise --capacity-factor 0.5 --group-images 4 --db "$tmp/n.db" \
  --threads 1 >/dev/null 2>"$tmp/err"
"$rs" stats --db "$tmp/n.db" --run 1 --resamples 0 --format json >"$tmp/n.json" 2>"$tmp/err"
expect "stats json: routing_changes = vmoe's kept-set figure recomputed from the store (aligned: all tokens)" \
  check_changes "$tmp/n.db" 1 "$tmp/n.json" 1
"$rs" stats --db "$tmp/a.db" --run 3 --resamples 0 >"$tmp/stats3" 2>"$tmp/err"
expect "a run without capacity has no dispatch tables and one routing changes column" \
  sh -c "! grep -q 'Kept IoU' '$tmp/stats3' && ! grep -q 'Routing changes (router)' '$tmp/stats3'"

# --- a store of schema 1 reads as runs without capacity ----------------------------------------
cp "$golden/store-v1.db" "$tmp/v1.db"
"$rs" stats --db "$tmp/v1.db" --run 1 --resamples 0 >"$tmp/v1" 2>"$tmp/err"
expect "schema-1 store: stats in place, no dispatch tables" \
  sh -c "[ $? = 0 ] && ! grep -q 'Kept IoU' '$tmp/v1' && [ \"\$(sqlite3 '$tmp/v1.db' 'PRAGMA user_version')\" = 1 ]"

# --- group seed -----------------------------------------------------------------------------
# Groups of 2 images: windows of 16, so 40 images make windows 0..15, 16..31 and 32..39.
gs=(--data $data --limit 40 --capacity-factor 0.5 --group-images 2)
"$rs" eval "$model" "${gs[@]}" --threads 1 --predictions "$tmp/p0" >"$tmp/e0" 2>"$tmp/err"
"$rs" eval "$model" "${gs[@]}" --group-seed 3 --threads 1 --predictions "$tmp/p3" >"$tmp/e3" 2>"$tmp/err"
"$rs" eval "$model" "${gs[@]}" --group-seed 3 --threads 2 --batch 5 --predictions "$tmp/p3b" >"$tmp/e3b" 2>"$tmp/err"
expect "eval --group-seed: other drops than data order, the same for any --batch and --threads" \
  sh -c "grep -q 'group seed 3: ' '$tmp/e3' && [ \"\$(grep -o 'dropped.*' '$tmp/e0')\" != \"\$(grep -o 'dropped.*' '$tmp/e3')\" ] &&
         [ \"\$(grep -v speed '$tmp/e3')\" = \"\$(grep -v speed '$tmp/e3b')\" ] && cmp -s '$tmp/p3' '$tmp/p3b'"
"$rs" eval "$model" --data $data --limit 40 --capacity-factor 0.5 --group-images 1 --threads 1 --predictions "$tmp/q0" >/dev/null 2>"$tmp/err"
"$rs" eval "$model" --data $data --limit 40 --capacity-factor 0.5 --group-images 1 --group-seed 9 --threads 2 --batch 3 \
  --predictions "$tmp/q9" >/dev/null 2>"$tmp/err"
expect "eval: groups of one image have no batch-mates, so a group seed changes no prediction" cmp -s "$tmp/q0" "$tmp/q9"
"$rs" replay "$model" "${gs[@]}" --db "$tmp/g.db" --threads 1 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${gs[@]}" --group-seed 1 --db "$tmp/g.db" --threads 1 --batch 4 >"$tmp/out" 2>"$tmp/err"
"$rs" replay "$model" "${gs[@]}" --group-seed 2 --db "$tmp/g.db" --threads 2 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${gs[@]}" --group-seed 1 --db "$tmp/g1.db" --threads 2 --batch 40 >/dev/null 2>"$tmp/err"
expect "--batch 4 with a group seed becomes one window of 16" grep -q "batch 16" "$tmp/out"
expect "the group seed is stored, part of the identity, and listed" \
  sh -c "[ \"\$(sqlite3 '$tmp/g.db' 'SELECT group_concat(coalesce(group_seed, \"none\")) FROM runs ORDER BY id')\" = 'none,1,2' ] &&
         \"$rs\" runs --db '$tmp/g.db' | grep -q 'group seed 2)'"
rdump() { sqlite3 "$1" "SELECT image, view, layer, hex(top_idx), hex(top_gate), hex(probs), hex(kept) FROM routing WHERE run_id = $2 ORDER BY 1, 2, 3"; }
same_rdump() { [ "$(rdump "$1" "$2" | md5sum)" = "$(rdump "$3" "$4" | md5sum)" ]; } # DB RUN DB RUN
expect "a seeded run's records do not depend on --batch or --threads" same_rdump "$tmp/g.db" 2 "$tmp/g1.db" 1
pairs() { # SQL over the records of runs $2 and $3 that agree in column $4 at MoE slot $5
  sqlite3 "$1" "SELECT count(*) FROM routing x JOIN routing y USING (image, view, layer) WHERE x.run_id = $2 AND y.run_id = $3 AND x.layer = $5 AND x.$4 = y.$4"
}
first_layer_same() { # runs $1 and $2 of g.db: the first MoE layer's 80 router choices equal, kept sets not
  [ "$(pairs "$tmp/g.db" "$1" "$2" top_idx 0)" = 80 ] && [ "$(pairs "$tmp/g.db" "$1" "$2" kept 0)" -lt 80 ]
}
expect "two group seeds: the first MoE layer's router choices all equal, kept sets not" first_layer_same 2 3
expect "data order and a group seed: likewise" first_layer_same 1 2
"$rs" replay "$model" --data $data --limit 40 --capacity-factor 0.5 --group-images 1 --db "$tmp/one.db" --threads 1 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" --data $data --limit 40 --capacity-factor 0.5 --group-images 1 --group-seed 4 --db "$tmp/one.db" \
  --threads 2 --batch 3 >/dev/null 2>"$tmp/err"
expect "replay: groups of one image give the data-order records whatever the seed" \
  same_rdump "$tmp/one.db" 1 "$tmp/one.db" 2
adv=(--data $data --limit 12 --capacity-factor 0.5 --group-images 1 --protocol adversarial
     --attack 'pgd:steps=2,loss=router' --eps 2/255 --threads 1)
"$rs" replay "$model" "${adv[@]}" --db "$tmp/adv.db" >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${adv[@]}" --group-seed 4 --db "$tmp/adv.db" >/dev/null 2>"$tmp/err"
attacks() { sqlite3 "$tmp/adv.db" "SELECT image, view, linf, l2, hex(objective) FROM attacks WHERE run_id = $1 ORDER BY 1, 2"; }
same_attacks() { [ -n "$(attacks 1)" ] && [ "$(attacks 1 | md5sum)" = "$(attacks 2 | md5sum)" ]; }
expect "an attack's reference routing follows its images through a shuffled batch" \
  both same_rdump "$tmp/adv.db" 1 "$tmp/adv.db" 2 -- same_attacks
adv2=(--data $data --limit 12 --capacity-factor 0.5 --group-images 2 --group-seed 4 --protocol adversarial
      --attack 'pgd:steps=2,loss=ce&router' --eps 2/255)
"$rs" replay "$model" "${adv2[@]}" --db "$tmp/adv2a.db" --threads 1 >/dev/null 2>"$tmp/err"
"$rs" replay "$model" "${adv2[@]}" --db "$tmp/adv2b.db" --threads 2 --batch 3 >/dev/null 2>"$tmp/err"
attacks2() { sqlite3 "$1" "SELECT image, view, linf, l2, hex(objective) FROM attacks ORDER BY 1, 2"; }
same_attacks2() { [ -n "$(attacks2 "$tmp/adv2a.db")" ] && [ "$(attacks2 "$tmp/adv2a.db" | md5sum)" = "$(attacks2 "$tmp/adv2b.db" | md5sum)" ]; }
expect "an attack through capacity (its gradient's groups the shuffled dispatch groups) does not depend on --batch or --threads" \
  both same_rdump "$tmp/adv2a.db" 1 "$tmp/adv2b.db" 1 -- same_attacks2
for i in 0 1; do
  "$rs" replay "$model" "${gs[@]}" --group-seed 1 --db "$tmp/gs$i.db" --shard $i/2 --threads 1 >"$tmp/gs$i.out" 2>"$tmp/err"
done
"$rs" merge --db "$tmp/gm.db" "$tmp/gs0.db" "$tmp/gs1.db" >/dev/null 2>"$tmp/err"
expect "seeded shards are whole windows and merge into the seeded run's records, identity and seed" \
  both grep -q 'images 0..15)' "$tmp/gs0.out" -- same_rdump "$tmp/gm.db" 1 "$tmp/g1.db" 1 -- \
  same_run_row "$tmp/gm.db" "$tmp/g1.db" "identity, group_seed"
cp "$tmp/g1.db" "$tmp/gr.db"
sqlite3 "$tmp/gr.db" "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE image >= 16; UPDATE runs SET images_done = 16, status = 'interrupted'"
"$rs" replay --db "$tmp/gr.db" --resume 1 --threads 1 --batch 1 >"$tmp/out" 2>"$tmp/err"
expect "a resumed seeded run takes its seed and ends with the same records" \
  both grep -q resumed "$tmp/out" -- same_rdump "$tmp/gr.db" 1 "$tmp/g1.db" 1
"$rs" stats --db "$tmp/g.db" --run 2 --resamples 0 >"$tmp/stats" 2>"$tmp/err"
expect "stats names the group seed" grep -q "groups of 2 images (shuffled by group seed 1)" "$tmp/stats"
"$rs" compare --db "$tmp/g.db" 2 3 --interference --resamples 50 >"$tmp/interf" 2>"$tmp/err"
"$rs" compare --db "$tmp/g.db" 2 3 --interference --resamples 50 --format json >"$tmp/interf.json" 2>"$tmp/err"
check_interference() { # the first MoE layer agrees fully before dispatch; kept sets match the store
  python3 - "$tmp/interf.json" "$tmp/g.db" <<'PY'
import json, sqlite3, sys
tables = json.load(open(sys.argv[1]))["tables"]
rows = {(r["view"], r["layer"]): r["cells"] for r in tables[0]["rows"]}
first = rows[("all", "1")]
assert first["top1"]["value"] == 1 and first["topk_set"]["value"] == 1, first
db = sqlite3.connect(sys.argv[2])
def sets(run):
    out = {}
    for image, view, layer, top, kept in db.execute("SELECT image, view, layer, top_idx, kept FROM routing WHERE run_id = ?", (run,)):
        for t in range(50):
            out[image, view, layer, t] = frozenset(top[2 * t + r] for r in range(2) if kept[2 * t + r])
    return out
a, b = sets(2), sets(3)
same = sum(a[key] == b[key] for key in a) / len(a)
assert abs(rows[("all", "all")]["kept_set"]["value"] - same) < 1e-9, (rows[("all", "all")], same)
assert 0 < same < 1, same
pred = tables[1]["rows"][-1]["cells"]
assert pred["images"]["value"] == 80 and 0 <= pred["prediction_same"]["value"] <= 1, pred
PY
}
expect "compare --interference names both compositions" \
  sh -c "grep -q 'Batch interference' '$tmp/interf' && grep -q 'shuffled by group seed 2' '$tmp/interf'"
expect "compare --interference json: the first layer's router choices 100 %, kept sets as stored" check_interference
"$rs" compare --db "$tmp/g.db" 1 2 --interference --resamples 0 >/dev/null 2>"$tmp/err"
expect "data order against a seed is interference too" [ $? = 0 ]
"$rs" compare --db "$tmp/g.db" 2 --db-b "$tmp/a.db" 1 --interference >/dev/null 2>"$tmp/err"
expect "compare --interference of another job: exit 1, one line" failed_with $? 1 "not the same job in another group composition"

# --- bad usage ----------------------------------------------------------------------------------
"$rs" replay "$model" --data $data --db "$tmp/x.db" --group-seed 1 >/dev/null 2>"$tmp/err"
expect "--group-seed without a capacity factor: exit 2, one line" failed_with $? 2 "--group-seed shuffles dispatch groups"
"$rs" eval "$model" --data $data --capacity-factor 1 --group-size 120 >/dev/null 2>"$tmp/err"
expect "--group-size not a multiple of the tokens per image: exit 1, one line with the sizes that work" \
  failed_with $? 1 "--group-size 120: dispatch groups are whole images and this model's images have 50 tokens (49 patches and the class token), so S must be a multiple of 50"
"$rs" replay "$model" --data $data --db "$tmp/x.db" --capacity-factor 1 --group-size 130 >/dev/null 2>"$tmp/err"
expect "replay --group-size not a multiple: exit 1, one line" failed_with $? 1 "S must be a multiple of 50"
"$rs" eval "$model" --data $data --capacity-factor 1 --group-size 100 --group-images 2 >/dev/null 2>"$tmp/err"
expect "--group-size with --group-images: exit 2, one line" failed_with $? 2 "give one"
"$rs" replay "$model" --data $data --limit 30 --capacity-factor 0.75 --group-size 200 --db "$tmp/a.db" --threads 1 \
  >"$tmp/out" 2>"$tmp/err"
expect "--group-size 200 is --group-images 4: the same run" grep -q "already complete" "$tmp/out"
"$rs" replay "$model" --data $data --db "$tmp/x.db" --bpr >/dev/null 2>"$tmp/err"
expect "--bpr without a capacity factor: exit 2, one line" failed_with $? 2 "belong to --capacity-factor"
"$rs" eval "$model" --data $data --capacity-factor -1 >/dev/null 2>"$tmp/err"
expect "a negative factor: exit 2, one line" failed_with $? 2 "--capacity-factor wants a number in (0, 1000]"
"$rs" eval "$model" --data $data --capacity-factor 1 --group-images 0 >/dev/null 2>"$tmp/err"
expect "group of 0 images: exit 2, one line" failed_with $? 2 "--group-images wants an integer"
"$rs" eval "$model" --data $data --dispatch model --bpr >/dev/null 2>"$tmp/err"
expect "--dispatch model with --bpr: exit 2, one line" failed_with $? 2 "--dispatch model takes the model's own settings"
"$rs" eval "$model" --data $data --dispatch model >/dev/null 2>"$tmp/err"
expect "--dispatch model on a config without settings: exit 1, one line" failed_with $? 1 "carries no dispatch settings"
"$rs" replay --db "$tmp/a.db" --resume 1 --capacity-factor 2 >/dev/null 2>"$tmp/err"
expect "--resume with dispatch options: exit 2, one line" failed_with $? 2 "resume takes the run's own"

testlib_done dispatch
