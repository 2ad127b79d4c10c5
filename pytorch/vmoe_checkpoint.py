"""Write a small checkpoint in the google-research/vmoe format, for the converter's tests.

The format (facts from vmoe/checkpoints/{partitioned,serialization,types,base}.py of
google-research/vmoe and flax.serialization; no code taken from them):

- PREFIX.index: msgpack map {"index": tree, "shard_count": n, "version": "20220622"}. The
  tree is the model's Flax state dict (nested maps of str keys); each leaf is msgpack ext 8
  (IndexInfo) whose payload is msgpack [shaped_array bytes, [slice_nd bytes...], [shard...]]:
  shaped_array = msgpack [shape, dtype name, weak_type, {}]; slice_nd = msgpack [slice
  bytes...]; slice = msgpack [start, stop, step]. Slice i of the array lives in shard[i].
- PREFIX.data-SSSSS-of-NNNNN: msgpack map {"__msgpack_array_chunk_a87ca2__": true,
  str(array index): [[subchunks, global slice_nd (ext 6)], ...]}, array index = the
  leaf's position in the tree flattened with sorted keys; subchunks = the chunk's
  row-major values cut into pieces of at most MAX_CHUNK_SIZE bytes, each an ndarray
  (ext 1: msgpack [shape, dtype name, raw bytes]).

The model is export.make_model's random V-MoE; its weights are written under the Flax
names of vmoe/nn/vit_moe.py (embedding HWIO, SelfAttention query/key/value (D,H,Dh), ...).
Some leaves are stored as bfloat16 and one as float16; the reference outputs are computed
in float64 from the weights as stored. Deterministic: reruns rewrite identical bytes.

    /usr/bin/python3 pytorch/vmoe_checkpoint.py [OUT_DIR]   # default tests/golden/vmoe

Writes OUT_DIR/small.index, OUT_DIR/small.data-0000{0,1,2}-of-00003 and
OUT_DIR/small.ref.safetensors (input, logits, router.<block>, as pytorch/golden.py).
"""
import copy
import sys
from pathlib import Path

import msgpack
import numpy as np
import torch

from export import make_model, write_safetensors
from vmoe import VMoE

MAGIC = "__msgpack_array_chunk_a87ca2__"
EXT_NDARRAY, EXT_SLICE, EXT_SLICE_ND, EXT_INDEX_INFO = 1, 5, 6, 8
SHARDS = 3
MAX_CHUNK_BYTES = 1024  # tiny, so that larger arrays are split into several subchunks

CONFIG = {
    "image_size": [16, 16], "channels": 3, "patch_size": 4, "hidden": 32, "depth": 3,
    "heads": 4, "mlp_dim": 64, "num_classes": 10, "moe_layers": [1, 2], "num_experts": 4,
    "top_k": 2, "classifier": "token", "layer_norm_eps": 1e-6, "gelu": "tanh",
    "mean": [0.5] * 3, "std": [0.5] * 3, "representation": True,
}
SEED = 11
BATCH = 3
# Flax leaves stored in reduced precision (the rest are float32).
BF16 = {"Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel",
        "Encoder/encoderblock_0/SelfAttention/query/kernel", "embedding/kernel"}
F16 = {"head/bias"}


def to_flax(model, config):
    """{flax path: float32 numpy array} for `model`, in the vmoe layout."""
    s = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    d, h = config["hidden"], config["heads"]
    dh = d // h
    out = {"embedding/kernel": s["patch_embed.weight"].transpose(2, 3, 1, 0),  # OIHW -> HWIO
           "embedding/bias": s["patch_embed.bias"],
           "cls": s["cls_token"],
           "Encoder/posembed_input/pos_embedding": s["pos_embed"],
           "Encoder/encoder_norm/scale": s["norm.weight"],
           "Encoder/encoder_norm/bias": s["norm.bias"],
           "pre_logits/kernel": s["pre_logits.weight"].T, "pre_logits/bias": s["pre_logits.bias"],
           "head/kernel": s["head.weight"].T, "head/bias": s["head.bias"]}
    for i in range(config["depth"]):
        b, f = f"blocks.{i}.", f"Encoder/encoderblock_{i}/"
        for ln, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_1", "norm2")):
            out[f + ln + "/scale"] = s[b + norm + ".weight"]
            out[f + ln + "/bias"] = s[b + norm + ".bias"]
        w, bias = s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):  # rows q, k, v; head-major
            out[f + f"SelfAttention/{name}/kernel"] = w[j * d:(j + 1) * d].T.reshape(d, h, dh)
            out[f + f"SelfAttention/{name}/bias"] = bias[j * d:(j + 1) * d].reshape(h, dh)
        out[f + "SelfAttention/out/kernel"] = s[b + "attn.proj.weight"].T.reshape(h, dh, d)
        out[f + "SelfAttention/out/bias"] = s[b + "attn.proj.bias"]
        if i in config["moe_layers"]:
            out[f + "Moe/Router/dense/kernel"] = s[b + "moe.router.weight"].T  # (D,E)
            for k, fc in (("Dense_0", "fc1"), ("Dense_1", "fc2")):
                out[f + f"Moe/Mlp/{k}/kernel"] = s[b + f"moe.experts.{fc}.weight"].transpose(0, 2, 1)
                out[f + f"Moe/Mlp/{k}/bias"] = s[b + f"moe.experts.{fc}.bias"]
        else:
            for k, fc in (("Dense_0", "fc1"), ("Dense_1", "fc2")):
                out[f + f"Mlp/{k}/kernel"] = s[b + f"mlp.{fc}.weight"].T
                out[f + f"Mlp/{k}/bias"] = s[b + f"mlp.{fc}.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def round_state(model):
    """Rounds the parameters behind the BF16/F16 leaves in place, as they will be stored."""
    d = CONFIG["hidden"]
    with torch.no_grad():
        p = dict(model.named_parameters())
        p["blocks.1.moe.experts.fc1.weight"].copy_(p["blocks.1.moe.experts.fc1.weight"].bfloat16().float())
        p["patch_embed.weight"].copy_(p["patch_embed.weight"].bfloat16().float())
        q = p["blocks.0.attn.qkv.weight"][:d]  # the query rows
        q.copy_(q.bfloat16().float())
        p["head.bias"].copy_(p["head.bias"].half().float())


def ndarray_ext(values, dtype):
    """ext 1 payload for a flat float32 chunk stored as DTYPE."""
    if dtype == "bfloat16":  # top 16 bits; exact because the values were rounded already
        bits = values.astype(np.float32).view(np.uint32)
        assert not (bits & 0xFFFF).any(), "bfloat16 leaf was not rounded first"
        raw = (bits >> 16).astype("<u2").tobytes()
    else:
        raw = values.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    return msgpack.ExtType(EXT_NDARRAY, msgpack.packb([list(values.shape), dtype, raw],
                                                     use_bin_type=True))


def slice_nd_bytes(slices):
    return msgpack.packb([msgpack.packb(list(s), use_bin_type=True) for s in slices],
                         use_bin_type=True)


def partition(name, shape):
    """The global slices an array is stored in: expert kernels are cut along the expert
    axis (as expert-parallel training stores them), the query kernels along axis 1."""
    full = [(0, n, None) for n in shape]
    if "/Moe/Mlp/" in name and name.endswith("kernel"):
        e = shape[0]
        return [[(0, e // 2, None)] + full[1:], [(e // 2, e, None)] + full[1:]]
    if name.endswith("query/kernel"):
        return [full[:1] + [(0, 1, None)] + full[2:], full[:1] + [(1, shape[1], None)] + full[2:]]
    return [full]


def write_checkpoint(prefix, flax):
    leaves = sorted(flax)  # the order jax.tree_flatten gives a dict tree with these paths
    # Sorting full paths equals flattening with sorted keys at every level only if no key
    # is a prefix of a sibling followed by a character below '/'; check it.
    def flatten(tree, path=""):
        for k in sorted(tree):
            yield from flatten(tree[k], path + k + "/") if isinstance(tree[k], dict) else [path + k]
    tree = {}
    for name in leaves:
        node = tree
        parts = name.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = name
    assert list(flatten(tree)) == leaves

    shards = [{MAGIC: True} for _ in range(SHARDS)]
    infos, turn = {}, 0
    for index, name in enumerate(leaves):
        a = flax[name]
        dtype = "bfloat16" if name in BF16 else "float16" if name in F16 else "float32"
        slices, owners = partition(name, a.shape), []
        for sl in slices:
            chunk = a[tuple(slice(s0, s1) for s0, s1, _ in sl)].reshape(-1)
            step = max(1, MAX_CHUNK_BYTES // (2 if dtype != "float32" else 4))
            sub = [ndarray_ext(chunk[i:i + step], dtype) for i in range(0, chunk.size, step)]
            shard = turn % SHARDS
            turn += 1
            shards[shard].setdefault(str(index), []).append(
                [sub, msgpack.ExtType(EXT_SLICE_ND, slice_nd_bytes(sl))])
            owners.append(shard)
        shaped = msgpack.packb([list(a.shape), dtype, False, {}], use_bin_type=True)
        info = msgpack.packb([shaped, [slice_nd_bytes(sl) for sl in slices], owners],
                             use_bin_type=True)
        infos[name] = msgpack.ExtType(EXT_INDEX_INFO, info)

    def fill(node):
        return {k: fill(v) if isinstance(v, dict) else infos[v] for k, v in node.items()}
    # A training checkpoint keeps more than the parameters; the converter must find them.
    index = {"params": fill(tree)}
    with open(f"{prefix}.index", "wb") as f:
        f.write(msgpack.packb({"index": index, "shard_count": SHARDS, "version": "20220622"},
                              use_bin_type=True))
    for s, content in enumerate(shards):
        with open(f"{prefix}.data-{s:05d}-of-{SHARDS:05d}", "wb") as f:
            f.write(msgpack.packb(content, use_bin_type=True))


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parent.parent / "tests" / "golden" / "vmoe"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    model = make_model(CONFIG, SEED)
    round_state(model)
    flax = to_flax(model, CONFIG)
    write_checkpoint(out / "small", flax)

    gen = torch.Generator().manual_seed(2000 + SEED)
    h, w = CONFIG["image_size"]
    x = torch.randn(BATCH, CONFIG["channels"], h, w, generator=gen)
    with torch.no_grad():
        logits, router = copy.deepcopy(model).double()(x.double(), return_router=True)
    ref = {"input": x, "logits": logits.float()}
    ref.update({f"router.{i}": p.float() for i, p in router.items()})
    write_safetensors(out / "small.ref.safetensors", ref,
                      {"format": "routerscope-golden", "model": "small.index"})
    print(f"wrote {out}/small.index, {SHARDS} shards, small.ref.safetensors")


if __name__ == "__main__":
    main()
