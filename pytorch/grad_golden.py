"""Write the golden cases for the C input gradient (model/grad.h) under tests/golden/.

For each case NAME: grad-NAME.safetensors (a small random model, via export.py) and
grad-NAME.grad.safetensors (F32 tensors):
    pixels [B,C,H,W]   the attacked images, [0,1] pixel units (not normalised)
    labels [B]         class labels (as floats)
    ref.{block} [B,T,E] router softmax of the clean images (the reference pass)
    value.{obj} [B]    the objective per image
    grad.{obj} [B,C,H,W] d value / d pixels
with __metadata__ "objectives": a JSON list of [obj, spec], spec the attack-spec keys
(e.g. "loss=ce&router,beta=0.5") that the C test hands to rs_objective_set, and for the
dispatch cases "dispatch": {"capacity_factor", "group_images", "bpr"[, "bf16", "pad_last"]} as
JSON.

Dispatch cases (grad-dispatch-*) run the model with expert capacity (vmoe.py's dispatch, after
vmoe's `vmoe/moe.py`), the reference included: autograd then differentiates the
capacity-limited model, with each group's kept mask a constant (it is computed from detached
gates, as vmoe's dispatcher is not differentiated), so a dropped choice gets no gradient.
Their last group is short (3 images in groups of 2), and the generator asserts that choices
are dropped and, with BPR, that the top-1 gates inside a group are at least MIN_GAP apart.
With "bf16" the model rounds expert inputs and outputs to bfloat16 (vmoe.py's bf16_round,
straight through for autograd; no finite-difference check, the steps have none); with
"pad_last" the short last group is filled with explicit all-zero images (zero after
normalisation) that take capacity and carry no objective.

Objectives (docs/gradients.md) are computed in float64 by autograd from the stored
(float32) weights, pixels and reference. Before writing, the generator asserts:
- a central finite-difference check in float64 of every objective's gradient (every
  pixel of one case, random directions for the others);
- the float32 C path will select the same experts: in the attacked pass every token's
  top-(k+1) router probabilities, and the best expert other than the reference's top-1,
  are separated by at least MIN_GAP.

    /usr/bin/python3 pytorch/grad_golden.py [NAME ...]   (only the cases named, e.g. dispatch-k1-bpr)
"""
import copy
import json
import math
import sys
from pathlib import Path

import torch

from export import export, load, make_model, write_safetensors
from vmoe import VMoE, num_tokens

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden"
HALF = [0.5]
MIN_GAP = 1e-5
FD_STEP = 1e-6
FD_TOL = 1e-6  # max |fd - autograd| relative to max |autograd|
PERTURB = 0.15  # attacked = clip(clean + U(-PERTURB, PERTURB))


def case(name, seed, dispatch=None, **config):
    config.setdefault("layer_norm_eps", 1e-6)
    config.setdefault("representation", False)
    return {"name": name, "seed": seed, "batch": 3, "config": config, "dispatch": dispatch}


def dispatch(factor, bpr, bf16=False, pad=False):
    d = {"capacity_factor": factor, "group_images": 2, "bpr": bpr}
    if bf16:
        d["bf16"] = True
    if pad:
        d["pad_last"] = True
    return d


K2 = dict(image_size=[12, 12], channels=1, patch_size=4, hidden=16, depth=2, heads=2, mlp_dim=32,
          num_classes=5, moe_layers=[0, 1], num_experts=4, top_k=2, classifier="token", gelu="erf",
          mean=HALF, std=HALF, representation=True)
K1 = dict(image_size=[12, 8], channels=1, patch_size=2, hidden=8, depth=2, heads=2, mlp_dim=16,
          num_classes=3, moe_layers=[1], num_experts=6, top_k=1, classifier="token", gelu="tanh",
          mean=[0.3], std=[0.4], representation=True)


CASES = [
    case("token-k2-erf-pre", 11, image_size=[12, 12], channels=1, patch_size=4, hidden=16, depth=2,
         heads=2, mlp_dim=32, num_classes=5, moe_layers=[0, 1], num_experts=4, top_k=2,
         classifier="token", gelu="erf", mean=HALF, std=HALF, representation=True),
    case("gap-k1-tanh", 12, image_size=[8, 12], channels=3, patch_size=4, hidden=16, depth=3,
         heads=4, mlp_dim=24, num_classes=4, moe_layers=[1, 2], num_experts=8, top_k=1,
         classifier="gap", gelu="tanh", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
         router_bias=True),
    case("token-k1-tanh-pre", 13, image_size=[12, 8], channels=1, patch_size=2, hidden=8, depth=2,
         heads=2, mlp_dim=16, num_classes=3, moe_layers=[1], num_experts=6, top_k=1,
         classifier="token", gelu="tanh", mean=[0.3], std=[0.4], representation=True),
    case("gap-k2-erf", 14, image_size=[8, 8], channels=2, patch_size=4, hidden=16, depth=2,
         heads=2, mlp_dim=32, num_classes=6, moe_layers=[0, 1], num_experts=4, top_k=2,
         classifier="gap", gelu="erf", mean=[0.5, 0.4], std=[0.5, 0.3]),
]
CASES += [
    case("dispatch-k2-vanilla", 11, dispatch(0.5, False), **K2),
    case("dispatch-k2-bpr", 12, dispatch(0.5, True), **K2),
    case("dispatch-k1-vanilla", 13, dispatch(0.5, False), **K1),
    case("dispatch-k1-bpr", 13, dispatch(0.5, True), **K1),
    # vmoe's numerics: bfloat16 dispatch (straight through), and a padded last group
    case("dispatch-k2-bf16", 11, dispatch(0.5, False, bf16=True), **K2),
    case("dispatch-k1-bf16-pad", 13, dispatch(0.5, False, bf16=True, pad=True), **K1),
]
FD_FULL = "token-k2-erf-pre"  # the case whose every pixel is checked by finite differences


def objectives(config):
    first = config["moe_layers"][0]
    return [("ce", "loss=ce"), ("router", "loss=router"),
            ("router-target", "loss=router-target,target=1"), ("jsd", "loss=jsd"),
            ("margin", "loss=margin"), ("ce-router", "loss=ce&router,beta=0.5"),
            ("router-layers", f"loss=router,layers={first}"),
            ("jsd-margin", f"loss=margin&jsd,beta=2,layers={first}"),
            # AdvMoE's router attack (label mod E, and a fixed expert) and its joint attack
            ("router-ce-label", "loss=router-ce,target=label"), ("router-ce", "loss=router-ce,target=1"),
            ("ce-router-ce", "loss=ce&router-ce,target=label,beta=0.5")]


def parse_spec(spec):
    keys = dict(kv.split("=", 1) for kv in spec.split(","))
    terms = keys["loss"].split("&")
    target = keys.get("target", "-1")
    return {"terms": terms, "beta": float(keys.get("beta", 1.0)),
            "target": target if target == "label" else int(target),
            "layers": [int(b) for b in keys["layers"].split("/")] if "layers" in keys else None}


def router_term(kind, p, r, target):
    """Per token values [B,Np] of one router term; p current, r reference softmax [B,Np,E];
    target [B] the expert of router-target and router-ce."""
    star = r.argmax(-1, keepdim=True)  # first maximal index: ties to the lower expert
    at_target = p.gather(-1, target.view(-1, 1, 1).expand(-1, p.shape[1], 1)).squeeze(-1)
    if kind == "router":
        return -torch.log(p.gather(-1, star)).squeeze(-1)
    if kind == "router-target":
        return torch.log(at_target)
    if kind == "router-ce":  # AdvMoE's CrossEntropyLoss(scores, target), per token, maximised
        return -torch.log(at_target)
    if kind == "jsd":
        m = 0.5 * (p + r)
        kl = torch.xlogy(r, r) - torch.xlogy(r, m) + torch.xlogy(p, p) - torch.xlogy(p, m)
        return 0.5 * kl.sum(-1) / math.log(2)
    if kind == "margin":
        others = p.masked_fill(torch.nn.functional.one_hot(star.squeeze(-1), p.shape[-1]).bool(),
                               -math.inf)
        return others.max(-1).values - p.gather(-1, star).squeeze(-1)
    raise ValueError(kind)


def run_kept(model, x, dispatch):
    """(logits, router softmax, kept choices by block) of normalised X with DISPATCH. With
    pad_last a short last group is filled with explicit all-zero images (vmoe's padding of a
    last partial batch), which take capacity; only X's own rows are returned."""
    b, g = x.shape[0], dispatch["group_images"]
    if dispatch.get("pad_last") and b % g:
        x = torch.cat([x, torch.zeros((g - b % g,) + tuple(x.shape[1:]), dtype=x.dtype)])
    logits, router, kept = model(x, return_router=True, dispatch=dispatch)
    return logits[:b], {i: p[:b] for i, p in router.items()}, {i: k[:b] for i, k in kept.items()}


def run(model, x, dispatch):
    """(logits, router softmax by block) of normalised X, with DISPATCH or without capacity."""
    if dispatch is None:
        return model(x, return_router=True)
    logits, router, _ = run_kept(model, x, dispatch)
    return logits, router


def objective(model, config, spec, pixels, labels, ref, dispatch=None):
    """Value [B] of the objective SPEC on PIXELS ([0,1], float64)."""
    s = parse_spec(spec)
    mean = torch.tensor(config["mean"], dtype=pixels.dtype).view(1, -1, 1, 1)
    std = torch.tensor(config["std"], dtype=pixels.dtype).view(1, -1, 1, 1)
    logits, router = run(model, (pixels - mean) / std, dispatch)
    first = num_tokens(config) - (config["image_size"][0] // config["patch_size"]) * (
        config["image_size"][1] // config["patch_size"])
    blocks = s["layers"] or config["moe_layers"]
    E = config["num_experts"]
    target = labels % E if s["target"] == "label" else torch.full_like(labels, max(s["target"], 0))
    value = torch.zeros(pixels.shape[0], dtype=pixels.dtype)
    for t, kind in enumerate(s["terms"]):
        w = 1.0 if t == 0 else s["beta"]
        if kind == "ce":
            value = value + w * torch.nn.functional.cross_entropy(logits, labels, reduction="none")
            continue
        per_block = [router_term(kind, router[i][:, first:], ref[i][:, first:], target).mean(1)
                     for i in blocks]
        value = value + w * torch.stack(per_block).mean(0)
    return value


def value_and_grad(model, config, spec, pixels, labels, ref, dispatch):
    x = pixels.clone().requires_grad_(True)
    v = objective(model, config, spec, x, labels, ref, dispatch)
    (g,) = torch.autograd.grad(v.sum(), x)
    return v.detach(), g


def fd_check(name, model, config, spec, pixels, labels, ref, grad, full, dispatch):
    """Central differences in float64: every pixel (FULL) or 6 random directions."""
    def f(x):
        with torch.no_grad():
            return objective(model, config, spec, x, labels, ref, dispatch).sum().item()
    if full:
        flat = pixels.flatten()
        fd = torch.empty_like(flat)
        for i in range(flat.numel()):
            e = torch.zeros_like(flat)
            e[i] = FD_STEP
            fd[i] = (f((flat + e).view_as(pixels)) - f((flat - e).view_as(pixels))) / (2 * FD_STEP)
        err = (fd - grad.flatten()).abs().max().item()
    else:
        gen = torch.Generator().manual_seed(7)
        err = 0.0
        for _ in range(6):
            d = torch.randn(pixels.shape, generator=gen, dtype=torch.float64)
            fd = (f(pixels + FD_STEP * d) - f(pixels - FD_STEP * d)) / (2 * FD_STEP)
            err = max(err, abs(fd - (grad * d).sum().item()) / d.abs().sum().item())
    scale = grad.abs().max().item()
    if not err <= FD_TOL * scale:
        raise SystemExit(f"{name} {spec}: finite differences differ from autograd by {err:.2e} "
                         f"(max |grad| {scale:.2e})")
    return err / scale


def check_gaps(name, config, router, ref):
    """Smallest gap the float32 C path must resolve to pick the same experts."""
    k = config["top_k"]
    gap = math.inf
    for i, p in router.items():
        top = torch.sort(p, dim=-1, descending=True).values[..., :k + 1]
        gap = min(gap, (top[..., :-1] - top[..., 1:]).min().item())
        star = ref[i].argmax(-1, keepdim=True)
        others = torch.sort(p.scatter(-1, star, -1.0), dim=-1, descending=True).values
        gap = min(gap, (others[..., 0] - others[..., 1]).min().item())
        rs = torch.sort(ref[i], dim=-1, descending=True).values
        if (rs[..., 0] == rs[..., 1]).any():
            raise SystemExit(f"{name}: tie in the reference's top-1")
    if gap < MIN_GAP:
        raise SystemExit(f"{name}: router near-tie (gap {gap:.2e}); pick another seed")
    return gap


def check_dispatch(name, router, kept, dispatch):
    """Some choice is dropped; with BPR the top-1 gates of a group are MIN_GAP apart, so the
    float32 C path puts the group's tokens in the same priority order."""
    dropped = sum((~k).sum().item() for k in kept.values())
    if dropped == 0:
        raise SystemExit(f"{name}: no choice dropped; lower the capacity factor")
    if dispatch["bpr"]:
        for p in router.values():
            b, t, _ = p.shape
            top1 = p.max(-1).values.reshape(-1)
            for start in range(0, b * t, dispatch["group_images"] * t):
                g = torch.sort(top1[start:start + dispatch["group_images"] * t]).values
                if (g[1:] - g[:-1]).min().item() < MIN_GAP:
                    raise SystemExit(f"{name}: near-tie in the BPR order; pick another seed")
    return dropped


def write_case(c):
    name, config = c["name"], c["config"]
    model_path = OUT / f"grad-{name}.safetensors"
    export(make_model(config, c["seed"]), config, model_path)
    config, state = load(model_path)
    model = VMoE(config).eval()
    model.load_state_dict(state)
    model = copy.deepcopy(model).double()
    h, w = config["image_size"]
    gen = torch.Generator().manual_seed(2000 + c["seed"])
    clean = torch.rand(c["batch"], config["channels"], h, w, generator=gen)
    noise = (torch.rand(clean.shape, generator=gen) * 2 - 1) * PERTURB
    pixels = (clean + noise).clamp(0, 1).float()  # stored as F32: the C input exactly
    labels = torch.randint(0, config["num_classes"], (c["batch"],), generator=gen)
    mean = torch.tensor(config["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(config["std"]).view(1, -1, 1, 1)
    d = c["dispatch"]
    with torch.no_grad():
        _, ref64 = run(model, ((clean - mean) / std).double(), d)
        _, router = run(model, (pixels.double() - mean) / std, d)
    ref = {i: p.float().double() for i, p in ref64.items()}  # the stored F32 reference
    gap = check_gaps(name, config, router, ref)
    meta = {}
    if d is not None:
        with torch.no_grad():
            _, _, kept = run_kept(model, (pixels.double() - mean) / std, d)
        c["dropped"] = check_dispatch(name, router, kept, d)
        meta["dispatch"] = json.dumps(d)
    tensors = {"pixels": pixels, "labels": labels.float()}
    tensors.update({f"ref.{i}": p.float() for i, p in ref.items()})
    objs = objectives(config)
    worst = 0.0
    for obj, spec in objs:
        v, g = value_and_grad(model, config, spec, pixels.double(), labels, ref, d)
        # The bfloat16 roundings are steps: their straight-through gradient is a definition
        # (vmoe's), with no finite-difference counterpart; every other piece is checked in
        # the cases without them.
        if not (d and d.get("bf16")):
            worst = max(worst, fd_check(name, model, config, spec, pixels.double(), labels, ref, g,
                                        name == FD_FULL, d))
        tensors[f"value.{obj}"] = v.float()
        tensors[f"grad.{obj}"] = g.float()
    write_safetensors(OUT / f"grad-{name}.grad.safetensors", tensors,
                      {"format": "routerscope-grad-golden", "model": model_path.name,
                       "objectives": json.dumps(objs), **meta})
    return gap, worst


def main():
    torch.set_num_threads(2)
    names = sys.argv[1:]
    for c in CASES:
        if names and c["name"] not in names:
            continue
        gap, worst = write_case(c)
        print(f"grad-{c['name']:20s} T={num_tokens(c['config'])}  min gap {gap:.1e}  "
              f"finite differences {'every pixel' if c['name'] == FD_FULL else '6 directions'}: "
              f"max rel err {worst:.1e}"
              + (f", {c['dropped']} choices dropped" if c["dispatch"] else ""))


if __name__ == "__main__":
    main()
