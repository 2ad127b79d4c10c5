#!/usr/bin/env bash
# ImageNet-scale input and scale-out benchmark (issue 16):
#   bench/scale_out.sh [BUILD] [IMAGES]     (needs python3-numpy and routerscope built with MPI)
# 1. V-MoE-S/32 shape (random weights) replays a list: job of IMAGES (512)
#    JPEGs of 500x375 made from Fashion-MNIST (bench/make_jpegs.c) under the pair protocol:
#    1 rank x 2 threads, then mpirun 2 ranks x 1 thread; images/s and the shares of JPEG
#    decode + resize, forward and SQLite; both stores must give the same stats.
# 2. stats on a merged 50,000-image store of the S/32 store shape (7x7 patches + class token,
#    E 8, 2 MoE layers, 2 views: the tiny model's shape is the same per image), timed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
images=${2:-512}
rs=$PWD/$build/routerscope
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --oversubscribe --allow-run-as-root)

# Random V-MoE-S/32 "last 2" weights (bench/bench.py's s32 shape), written with numpy alone so
# that the benchmark needs no PyTorch: the forward pass's cost does not depend on the values.
/usr/bin/python3 - "$tmp/s32.safetensors" <<'PY'
import json, struct, sys
import numpy as np
cfg = dict(image_size=[224, 224], channels=3, patch_size=32, hidden=512, depth=8, heads=8, mlp_dim=2048,
           num_classes=1000, moe_layers=[5, 7], num_experts=8, top_k=2, classifier="token",
           layer_norm_eps=1e-6, gelu="erf", mean=[0.5] * 3, std=[0.5] * 3, representation=False)
d, m, e, k = cfg["hidden"], cfg["mlp_dim"], cfg["num_experts"], cfg["num_classes"]
shapes = {"patch_embed.weight": (d, 3, 32, 32), "patch_embed.bias": (d,), "cls_token": (1, 1, d),
          "pos_embed": (1, 50, d), "norm.weight": (d,), "norm.bias": (d,), "head.weight": (k, d), "head.bias": (k,)}
for i in range(cfg["depth"]):
    b = f"blocks.{i}."
    shapes.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
                   b + "attn.qkv.bias": (3 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                   b + "norm2.weight": (d,), b + "norm2.bias": (d,)})
    if i in cfg["moe_layers"]:
        shapes.update({b + "moe.router.weight": (e, d), b + "moe.experts.fc1.weight": (e, m, d),
                       b + "moe.experts.fc1.bias": (e, m), b + "moe.experts.fc2.weight": (e, d, m),
                       b + "moe.experts.fc2.bias": (e, d)})
    else:
        shapes.update({b + "mlp.fc1.weight": (m, d), b + "mlp.fc1.bias": (m,), b + "mlp.fc2.weight": (d, m),
                       b + "mlp.fc2.bias": (d,)})
rng = np.random.default_rng(0)
header = {"__metadata__": {"format": "routerscope-vmoe", "config": json.dumps(cfg)}}
blobs, offset = [], 0
for name in sorted(shapes):
    a = (np.ones(shapes[name]) if name.endswith("norm1.weight") or name.endswith("norm2.weight")
         or name == "norm.weight" else rng.normal(0, 0.02, shapes[name])).astype("<f4")
    header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
    blobs.append(a.tobytes())
    offset += a.nbytes
text = json.dumps(header).encode()
text += b" " * (-(8 + len(text)) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
PY
mkdir -p "$tmp/jpg"
"$build/make_jpegs" fashion-mnist:test "$images" 500 375 "$tmp/jpg"
echo "== $images JPEGs of 500x375, $(du -sk "$tmp/jpg" | cut -f1) kB ($(( $(du -sk "$tmp/jpg" | cut -f1) / images )) kB each)"
job=(--data "list:$tmp/jpg/list.txt" --protocol pair)

echo "== S/32, pair, 1 rank x 2 threads"
"$rs" replay "$tmp/s32.safetensors" "${job[@]}" --db "$tmp/one.db" --threads 2
echo "== S/32, pair, 2 ranks x 1 thread (mpirun)"
"${mpi[@]}" -n 2 "$rs" replay "$tmp/s32.safetensors" "${job[@]}" --db "$tmp/two.db" --threads 1
"$rs" stats --db "$tmp/one.db" --format json >"$tmp/one.json"
"$rs" stats --db "$tmp/two.db" --format json >"$tmp/two.json"
cmp -s "$tmp/one.json" "$tmp/two.json" && echo "stats identical" || { echo "stats DIFFER"; exit 1; }

echo "== stats on a merged 50,000-image store (Fashion-MNIST train, 2 ranks, tiny model: S/32's store shape)"
"${mpi[@]}" -n 2 "$rs" replay models/fmnist-tiny-vmoe-k2.safetensors --data fashion-mnist:train --limit 50000 \
  --db "$tmp/big.db" --threads 1
ls -l "$tmp/big.db" | awk '{print "merged store", $5, "bytes"}'
/usr/bin/time -f "stats: %e s wall, %M kB max RSS" "$rs" stats --db "$tmp/big.db" >/dev/null
/usr/bin/time -f "merge again into a new store: %e s wall, %M kB max RSS" \
  "$rs" merge --db "$tmp/big2.db" "$tmp/big.db.shard-0-of-2" "$tmp/big.db.shard-1-of-2"
