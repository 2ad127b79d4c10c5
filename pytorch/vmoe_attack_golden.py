"""An independent reference for routerscope's vmoe attack recipe, written from
google-research/vmoe's code (facts, not code): the model's forward pass with vmoe's einsum
dispatcher and Bfloat16Dispatcher, its PGD attack and its routing_changes figure. Writes
tests/golden/vmoe-attack.txt, which tests/vmoe_reference_test.sh compares with
`routerscope stats` on the same run.

What it follows, file by file (google-research/vmoe):
- vmoe/moe.py, compute_capacity: C = ceil(S * k * capacity_factor / E), raised to a
  multiple of 4.
- vmoe/moe.py, _get_top_experts_per_item_common and _get_top_experts_per_item_einsum_
  dispatcher: top-k per token; buffer index = cumsum over the rank-major one-hot choices
  (all top-1 before any top-2), a choice kept when its index is < C; dispatch weights
  one-hot (S,E,C), combine weights gates * dispatch weights. (No batch priority: the attack
  study's config sets batch_priority False.)
- vmoe/moe.py, EinsumDispatcher and Bfloat16Dispatcher: dispatch = einsum of the dispatch
  weights with the data cast to bfloat16, cast back to float32; the experts run in float32;
  combine = einsum of the combine weights with the expert outputs cast to bfloat16.
  Autograd passes the casts straight through (a cast's derivative is 1).
- vmoe/data/input_pipeline.py: a last partial batch is padded with all-zero examples (zero
  model inputs), which take part in dispatch; projects/adversarial_attacks masks them out
  of every figure (attacks.py, stateful_attack).
- projects/adversarial_attacks/attacks.py, stateless_attack_pgd: x_0 = the images,
  x_{t+1} = x_t + (eps / N) * sign(grad of the mean softmax cross-entropy), N steps, no
  projection, no clipping. Padding has zero loss (all-zero label), so it never moves.
  Here in [0,1] pixel units (the model's mean = std = 0.5 make eps/255 here vmoe's
  eps/127.5), each step computed in float64 and rounded to float32 once, as routerscope
  documents its update (docs/attacks.md).
- projects/adversarial_attacks/attacks.py, sum_intersection_over_union, and main's
  routing_changes = 1 - sum / num_images: per MoE layer, the experts with a non-zero
  combine weight in the clean and the attacked pass, IoU per token (0 when the union is
  empty), averaged over all tokens (class token included), then over the images.

The model runs in float32, as vmoe's does; only the weights are routerscope's
(models/fmnist-tiny-vmoe-k2.safetensors, read by export.load). The images are the first
COUNT Fashion-MNIST test images, bytes / 255.

With --advmoe it writes instead tests/golden/advmoe-attack.txt: AdvMoE's router attack
(OPTML-Group/Robust-MoE-CNN, utils/eval_utils.py, adv_val_router) adapted to a ViT's
per-token routers as routerscope defines loss=router-ce,target=label (docs/attacks.md):
ascend the mean over patch tokens and MoE blocks of the cross-entropy of the router softmax
against label mod E, ε = 8/255, 10 steps of x + 2/255 · sign(g) projected to the ε-ball and
clipped to [0, 1] (its PGD), the last iterate kept; without capacity (every top-k choice
runs) and float32 throughout. The start is the clean image (routerscope's start=zero):
AdvMoE's uniform random start draws from a generator no other program shares.

    /usr/bin/python3 pytorch/vmoe_attack_golden.py [--advmoe]
"""
import gzip
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from export import load

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "fmnist-tiny-vmoe-k2.safetensors"
OUT = ROOT / "tests" / "golden" / "vmoe-attack.txt"
DATA = Path("/usr/share/datasets/fashion-mnist")
COUNT = 10                  # images: groups of 4, so the last group is padded with 2 zero images
EPS = [(2, 255), (8, 255)]  # as routerscope's --eps 2/255,8/255
STEPS = 40                  # stateless_attack_pgd's num_updates in configs/attack/ilsvrc2012.py
CAPACITY_FACTOR = 1.5       # configs/attack/ilsvrc2012.py: 'capacity_factor': 1.5
GROUP_IMAGES = 4            # configs/attack/ilsvrc2012.py: group_size = tokens of 4 images
ADV_OUT = ROOT / "tests" / "golden" / "advmoe-attack.txt"
ADV_EPS, ADV_ALPHA, ADV_STEPS = 8 / 255, 2 / 255, 10  # AdvMoE's --epsilon-test, --step-size-test, --num-steps-test
ADV_COMMAND = ("replay MODEL --data fashion-mnist:test --limit 10 --protocol adversarial --attack "
               "pgd:steps=10,alpha=2/255,loss=router-ce,target=label,start=zero --eps 8/255")
COMMAND = ("replay MODEL --data fashion-mnist:test --limit 10 --protocol adversarial "
           "--attack pgd:mode=vmoe --eps 2/255,8/255 --capacity-factor 1.5 --group-images 4 "
           "--bf16-dispatch --pad-last-group")


def read_idx(name, count):
    with gzip.open(DATA / name, "rb") as f:
        data = f.read()
    if name.endswith("images-idx3-ubyte.gz"):
        rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        x = np.frombuffer(data, np.uint8, count * rows * cols, 16).reshape(count, 1, rows, cols)
        return torch.from_numpy(x.astype(np.float32)) / 255.0
    return torch.from_numpy(np.frombuffer(data, np.uint8, count, 8).astype(np.int64))


def to_bf16(x):
    """vmoe's _cast_to_bfloat16 and the cast back, straight through for autograd."""
    return x + (x.bfloat16().float() - x).detach()


def einsum_dispatcher(gates, k, capacity):
    """(dispatch weights (S,E,C) bool, combine weights (S,E,C)) of one group's GATES (S,E)."""
    s, e = gates.shape
    idx = torch.sort(-gates.detach(), dim=-1, stable=True).indices[:, :k]  # lax.top_k: ties low
    one_hot = F.one_hot(idx.t().reshape(-1), e)                             # (K*S, E), rank-major
    buffer = (one_hot.cumsum(0) * one_hot - 1).view(k, s, e).transpose(0, 1).max(1).values  # (S,E)
    dispatch = (buffer >= 0) & (buffer < capacity)
    dispatch = F.one_hot(buffer.clamp(0, capacity - 1), capacity).bool() & dispatch.unsqueeze(-1)
    return dispatch, gates.unsqueeze(-1) * dispatch


def moe(state, i, config, x, numerics):
    """vmoe's MlpMoeBlock on X (B,T,D), groups of GROUP_IMAGES images. Returns the output and
    the combine weights summed over the buffer, (B,T,E)."""
    b, t, d = x.shape
    pre = f"blocks.{i}.moe."
    w1, b1 = state[pre + "experts.fc1.weight"], state[pre + "experts.fc1.bias"]
    w2, b2 = state[pre + "experts.fc2.weight"], state[pre + "experts.fc2.bias"]
    e, k = config["num_experts"], config["top_k"]
    s = GROUP_IMAGES * t if numerics else b * t
    groups = x.reshape(-1, s, d)
    # Without vmoe's numerics every choice runs: a capacity of S places per expert is never full.
    capacity = math.ceil(s * k * CAPACITY_FACTOR / e) if numerics else s
    capacity += (-capacity) % 4
    cast = to_bf16 if numerics else (lambda z: z)
    outs, weights, probs = [], [], []
    for g in groups:
        gates = torch.softmax(g @ state[pre + "router.weight"].t(), dim=-1)
        dispatch, combine = einsum_dispatcher(gates, k, capacity)
        data = torch.einsum("SEC,SD->ECD", dispatch.to(g.dtype), cast(g))
        h = F.gelu(torch.einsum("ECD,EMD->ECM", data, w1) + b1.unsqueeze(1))
        y = torch.einsum("ECM,EDM->ECD", h, w2) + b2.unsqueeze(1)
        outs.append(torch.einsum("SEC,ECD->SD", combine, cast(y)))
        weights.append(combine.sum(-1))
        probs.append(gates)
    return (torch.stack(outs).reshape(b, t, d), torch.stack(weights).reshape(b, t, e),
            torch.stack(probs).reshape(b, t, e))


def forward(state, config, pixels, numerics=True, probs=None):
    """Logits and {block: combine weights (B,T,E)} of [0,1] PIXELS, with NUMERICS (the
    attack study's capacity, bfloat16 dispatch and zero-image padding to whole groups; only
    the real images' rows are returned) or without (every choice runs, float32). PROBS, a
    dict, receives {block: router softmax (B,T,E)}."""
    n = pixels.shape[0]
    x = (pixels - 0.5) / 0.5
    pad = (-n) % GROUP_IMAGES if numerics else 0
    x = torch.cat([x, torch.zeros((pad,) + tuple(x.shape[1:]))])
    d, heads = config["hidden"], config["heads"]
    x = F.conv2d(x, state["patch_embed.weight"], state["patch_embed.bias"], stride=config["patch_size"])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + state["pos_embed"]
    eps, cw = config["layer_norm_eps"], {}
    for i in range(config["depth"]):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (d,), state[p + "norm1.weight"], state[p + "norm1.bias"], eps)
        q, kk, v = F.linear(h, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"]).chunk(3, dim=-1)
        split = lambda z: z.view(z.shape[0], z.shape[1], heads, -1).transpose(1, 2)
        a = torch.softmax(split(q) @ split(kk).transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        o = (a @ split(v)).transpose(1, 2).reshape(x.shape)
        x = x + F.linear(o, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        h = F.layer_norm(x, (d,), state[p + "norm2.weight"], state[p + "norm2.bias"], eps)
        if i in config["moe_layers"]:
            y, cw[i], p_i = moe(state, i, config, h, numerics)
            if probs is not None:
                probs[i] = p_i[:n]
        else:
            y = F.linear(F.gelu(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                         state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        x = x + y
    x = F.layer_norm(x, (d,), state["norm.weight"], state["norm.bias"], eps)[:, 0]
    logits = F.linear(x, state["head.weight"], state["head.bias"])
    return logits[:n], {i: w[:n] for i, w in cw.items()}


def attack(state, config, pixels, labels, eps):
    x = pixels.clone()
    step = eps / STEPS  # float64, as routerscope's update
    for _ in range(STEPS):
        xg = x.clone().requires_grad_(True)
        logits, _ = forward(state, config, xg)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, labels), xg)
        x = (x.double() + step * torch.sign(g).double()).float()
    return x


def advmoe_attack(state, config, pixels, labels):
    """AdvMoE's router PGD (adv_val_router) with routerscope's per-token router-ce."""
    e, first = config["num_experts"], 1  # the class token is token 0
    target = labels % e
    x = pixels.clone()
    for _ in range(ADV_STEPS):
        xg = x.clone().requires_grad_(True)
        probs = {}
        forward(state, config, xg, numerics=False, probs=probs)
        terms = [-torch.log(p[:, first:].gather(-1, target.view(-1, 1, 1).expand(-1, p.shape[1] - first, 1)))
                 .mean() for p in probs.values()]
        (g,) = torch.autograd.grad(torch.stack(terms).mean(), xg)
        x64 = x.double() + ADV_ALPHA * torch.sign(g).double()
        x64 = torch.minimum(torch.maximum(x64, pixels.double() - ADV_EPS), pixels.double() + ADV_EPS)
        x = x64.clamp(0, 1).float()
    return x


def advmoe_main(config, state, pixels, labels):
    lines = [f"# pytorch/vmoe_attack_golden.py --advmoe: {MODEL.name}, routerscope {ADV_COMMAND}",
             "# view,layer,metric,value as `routerscope stats --format csv` prints them"]
    with torch.no_grad():
        logits0, cw0 = forward(state, config, pixels, numerics=False)
    x = advmoe_attack(state, config, pixels, labels)
    with torch.no_grad():
        logits, cw = forward(state, config, x, numerics=False)
    lines.append(f"clean,,accuracy,{(logits0.argmax(-1) == labels).double().mean().item():.10g}")
    lines.append(f"view 1,,accuracy,{(logits.argmax(-1) == labels).double().mean().item():.10g}")
    for i in config["moe_layers"]:
        lines.append(f"view 1,{i},routing_changes,{routing_changes(cw0[i], cw[i]):.10g}")
    ADV_OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def routing_changes(cw0, cw1):
    a, b = (cw0 > 0).double(), (cw1 > 0).double()  # the figure in float64, as stats computes it
    inter = (a * b).sum(-1)
    union = (a + b).sum(-1) - inter
    iou = torch.where(union > 0, inter / union, torch.zeros_like(inter))
    return 1.0 - (iou.sum().item() / a.shape[1]) / a.shape[0]


def main():
    torch.set_num_threads(2)
    config, state = load(MODEL)
    assert config["mean"] == [0.5] and config["std"] == [0.5] and not config["representation"]
    assert config["classifier"] == "token" and config["gelu"] == "erf" and not config.get("router_bias")
    pixels = read_idx("t10k-images-idx3-ubyte.gz", COUNT)
    labels = read_idx("t10k-labels-idx1-ubyte.gz", COUNT)
    if "--advmoe" in sys.argv[1:]:
        return advmoe_main(config, state, pixels, labels)
    lines = [f"# pytorch/vmoe_attack_golden.py: {MODEL.name}, routerscope {COMMAND}",
             "# view,layer,metric,value as `routerscope stats --format csv` prints them"]
    with torch.no_grad():
        logits0, cw0 = forward(state, config, pixels)
    lines.append(f"clean,,accuracy,{(logits0.argmax(-1) == labels).double().mean().item():.10g}")
    for v, (num, den) in enumerate(EPS, 1):
        x = attack(state, config, pixels, labels, num / den)
        with torch.no_grad():
            logits, cw = forward(state, config, x)
        lines.append(f"view {v},,accuracy,{(logits.argmax(-1) == labels).double().mean().item():.10g}")
        for i in config["moe_layers"]:
            lines.append(f"view {v},{i},routing_changes,{routing_changes(cw0[i], cw[i]):.10g}")
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
