"""Write the golden cases for dispatch with expert capacity under tests/golden/dispatch/.

Each case runs one of the golden models of tests/golden/ (its weights as stored) on random
normalised images with a small capacity factor, so that tokens are dropped, and writes
NAME.ref.safetensors: `input`, `logits`, `router.i` (the router softmax [B,T,E]) and
`kept.i` ([B,T,R] 0/1, R = max(2, top_k): whether dispatch kept each recorded choice;
ranks beyond top_k are never dispatched and read 0), computed in float64. `__metadata__`
names the model relative to this folder and the dispatch: `capacity_factor`,
`group_images`, `bpr`, and for the cases of vmoe's numerics `bf16` (expert inputs and
outputs rounded to bfloat16, vmoe.py's bf16_round) and `pad_last` (the short last group
filled with explicit all-zero images, which take capacity; only the real images are
written, with `kept_unpadded.i`, the kept mask the same images get without padding, so the
test sees the padding matter). Deterministic: rerunning rewrites identical bytes.

    /usr/bin/python3 pytorch/dispatch_golden.py

Checks made when generating: the float32 module agrees with the reference within 1e-5
(logits, router probabilities) and keeps exactly the same choices; every token's top-R
probabilities are separated by at least MIN_GAP; with BPR, the top-1 gates inside every
group are separated by at least MIN_GAP, so a float32 implementation puts the tokens in the
same priority order; and some choices are really dropped.
"""
import copy
from pathlib import Path

import torch

from export import load, write_safetensors
from vmoe import VMoE

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
OUT = GOLDEN / "dispatch"
SELF_CHECK_TOL = 1e-5
MIN_GAP = 1e-5

# (name, model, images, input seed, capacity factor, group images, bpr[, bf16, pad_last])
CASES = [
    ("k2_vanilla", "token_k2_e4", 5, 15, 0.5, 2, False),
    ("k2_bpr", "token_k2_e4", 5, 15, 0.5, 2, True),
    ("k1_vanilla", "token_k1_e16_bias_fmnist", 5, 32, 1.0, 2, False),
    ("k1_bpr", "token_k1_e16_bias_fmnist", 5, 32, 1.0, 2, True),
    ("k2_bf16", "token_k2_e4", 5, 17, 0.5, 2, False, True, False),
    ("k2_bpr_bf16_pad", "token_k2_e4", 5, 15, 0.5, 2, True, True, True),
    ("k1_pad", "token_k1_e16_bias_fmnist", 5, 16, 1.0, 2, True, False, True),
]


def top_gap(probs, top_r):
    top = torch.sort(probs, dim=-1, descending=True).values[..., :top_r + 1]
    return (top[..., :-1] - top[..., 1:]).min().item()


def priority_gap(probs, group_images):
    """Smallest gap between the sorted top-1 gates of the tokens of any one group."""
    b, t, _ = probs.shape
    top1 = probs.max(dim=-1).values.reshape(-1)
    gap = float("inf")
    for start in range(0, b * t, group_images * t):
        g = torch.sort(top1[start:start + group_images * t]).values
        if g.numel() > 1:
            gap = min(gap, (g[1:] - g[:-1]).min().item())
    return gap


def padded(kept, top_r):
    """Bool [B,T,k] -> float32 [B,T,R] with zeros for the ranks never dispatched."""
    b, t, k = kept.shape
    out = torch.zeros(b, t, top_r)
    out[..., :k] = kept.float()
    return out


def run_padded(model, x, dispatch):
    """The model on X with a short last group filled with explicit all-zero images when
    dispatch asks (pad_last); the outputs of X's own images."""
    b, g = x.shape[0], dispatch["group_images"]
    if dispatch.get("pad_last") and b % g:
        x = torch.cat([x, torch.zeros((g - b % g,) + tuple(x.shape[1:]), dtype=x.dtype)])
    logits, router, kept = model(x, True, dispatch)
    if dispatch.get("keep_padding"):
        return logits, router, kept
    return logits[:b], {i: p[:b] for i, p in router.items()}, {i: k[:b] for i, k in kept.items()}


def write_case(name, model_name, images, seed, factor, group, bpr, bf16=False, pad=False):
    config, state = load(GOLDEN / f"{model_name}.safetensors")
    model = VMoE(config).eval()
    model.load_state_dict(state)
    h, w = config["image_size"]
    x = torch.randn(images, config["channels"], h, w, generator=torch.Generator().manual_seed(seed))
    dispatch = {"capacity_factor": factor, "group_images": group, "bpr": bpr, "bf16": bf16, "pad_last": pad}
    with torch.no_grad():
        model64 = copy.deepcopy(model).double()
        logits64, router64, kept64 = run_padded(model64, x.double(), dispatch)
        logits32, router32, kept32 = run_padded(model, x, dispatch)
        unpadded = model64(x.double(), True, dict(dispatch, pad_last=False))[2] if pad else None
    err = max([(logits32 - logits64).abs().max().item()]
              + [(router32[i] - router64[i]).abs().max().item() for i in router64])
    top_r = max(2, config["top_k"])
    gap = min(top_gap(p, top_r) for p in router64.values())
    pgap = min(priority_gap(p, group) for p in router64.values()) if bpr else float("inf")
    same = all(torch.equal(kept32[i], kept64[i]) for i in kept64)
    dropped = sum((~kept64[i]).sum().item() for i in kept64)
    total = sum(kept64[i].numel() for i in kept64)
    if pad:
        if bpr:  # the padding's tokens take part in the priority order too
            with torch.no_grad():
                full = run_padded(model64, x.double(), dict(dispatch, keep_padding=True))[1]
            pgap = min(priority_gap(p, group) for p in full.values())
        same = same and not all(torch.equal(unpadded[i], kept64[i]) for i in kept64)
    if err > SELF_CHECK_TOL or gap < MIN_GAP or pgap < MIN_GAP or not same or dropped == 0:
        raise SystemExit(f"{name}: |f32-f64| {err:.2e}, top-R gap {gap:.2e}, priority gap "
                         f"{pgap:.2e}, same kept {same}, dropped {dropped}: pick another seed")
    ref = {"input": x, "logits": logits64.float()}
    ref.update({f"router.{i}": p.float() for i, p in router64.items()})
    ref.update({f"kept.{i}": padded(k, top_r) for i, k in kept64.items()})
    meta = {"format": "routerscope-golden-dispatch", "model": f"../{model_name}.safetensors",
            "capacity_factor": repr(factor), "group_images": str(group), "bpr": "true" if bpr else "false"}
    if bf16:
        meta["bf16"] = "true"
    if pad:
        meta["pad_last"] = "true"
        ref.update({f"kept_unpadded.{i}": padded(k, top_r) for i, k in unpadded.items()})
    write_safetensors(OUT / f"{name}.ref.safetensors", ref, meta)
    print(f"{name:12s} {model_name} B{images} cf={factor} group={group} bpr={bpr} bf16={bf16} pad={pad}: "
          f"{dropped}/{total} choices dropped, |f32-f64|={err:.1e}, top-R gap={gap:.1e}"
          + (f", priority gap={pgap:.1e}" if bpr else ""))


def main():
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        write_case(*case)


if __name__ == "__main__":
    main()
