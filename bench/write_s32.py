"""write_s32.py — random V-MoE-S/32 "last 2" weights (bench/bench.py's s32 shape) as a
routerscope checkpoint, written with numpy alone so that the shell benchmarks need no
PyTorch: the forward pass's cost does not depend on the values.

    /usr/bin/python3 bench/write_s32.py OUT.safetensors
"""
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
