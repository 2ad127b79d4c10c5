"""Train a routerscope V-MoE on Fashion-MNIST and export it as a checkpoint.

    /usr/bin/python3 pytorch/train.py --steps 2000 --seed 0 --out models/NAME.safetensors

Data: the IDX files of Debian's `dataset-fashion-mnist`. The first 55,000 training images
train, the last 5,000 are the validation split; the 10,000 test images are only used for
the final evaluation. Pixels/255, then (x - 0.5) / 0.5.

Every step draws B images and makes two views of each (an independent random-resized
"inception" crop, area in [--crop-min, 1] of the image, aspect 3/4..4/3, resized back to
28x28 bilinearly, and a horizontal flip with p = 0.5; both views batched as one forward
pass). The classification loss is the mean cross-entropy over both views, plus a router
loss chosen with --router-loss:

  vmoe  V-MoE's auxiliary losses (Riquelme et al. 2021, appendix A.2): importance loss
        (CV^2 of the per-expert sum of the clean router softmax) and load loss (CV^2 of
        the per-expert mean probability of being in the noisy top-k), 0.005 each, summed
        over MoE layers; one group per view.
  prc   the patch-level routing consistency loss ("PRC", docs/metrics.md):
        S = E/N sum r1 r2^T over the matched patch pairs of the two views,
        L = 5e-3 mean_e (S_ee - 1)^2 + 5e-2 mean_{e!=f} S_ef^2, summed over MoE layers;
        no balancing losses.
  jsd   the path-representation consistency loss (the earlier variant of PRC): the mean
        Jensen-Shannon divergence (bits) between the clean router softmax of matched patch
        pairs of the two views, summed over MoE layers, times --jsd-weight; V-MoE's
        importance and load losses are kept. Unlike PRC's S = I target, JSD alone is
        minimised by routing every patch to one expert, so the balancing losses stay to
        rule that collapse out (PRC's diagonal term is what does it there).
  none  classification loss only.

--adv-eps EPS (method "adv"): plain PGD adversarial training of the V-MoE baseline (not
AdvMoE's alternating router/expert updates: one optimiser step updates both, which keeps
the recipe and step count of the other methods). Each step attacks both augmented views:
L-inf PGD on [0,1] pixels against the cross-entropy, random start uniform in the eps-ball,
--adv-steps S steps of size 2.5 eps / S, each projected onto the ball and [0,1]; the
examples are made with the model in train mode (router noise on) but no parameter update,
and the step then trains on the adversarial views alone, with V-MoE's balancing losses.
The random start has its own generator (seed + 2), so batches and views are those of the
V-MoE run with the same --seed.

--method advmoe (with --adv-eps, --adv-steps): AdvMoE's router-expert alternating adversarial
training (Zhang et al., ICCV 2023; facts from OPTML-Group/Robust-MoE-CNN `train_moe.py`,
function `trainer`), adapted from one CNN gate per image to one router per token. AdvMoE runs
both phases on every batch (two updates per batch); with the recipe's budget of --steps
optimiser steps the phases alternate instead, experts on even steps and routers on odd
ones, each step on the batch and views V-MoE's run draws at that step, each phase with its
own example and its own AdamW (same schedule):
  1. experts (every parameter but the routers): a TRADES example (start x + 0.001 N(0,1),
     --adv-steps signed-gradient steps of 2.5 eps / S, projected onto the eps-ball and
     [0,1], eval mode) ascending KL(p_clean || p_adv) of the class softmax summed over
     images plus the router term below; then the update on CE(clean) + beta KL(p_clean ||
     p_adv) / B (--trades-beta, AdvMoE's 6).
  2. routers (the `moe.router` weights only): an example made the same way; then the
     update on the router CE against label mod E + alpha KL(r_clean || r_adv) / B
     (--router-alpha, AdvMoE's 6) + V-MoE's balancing losses.
eps, steps and step size are the plain adversarial recipe's (AdvMoE's CIFAR defaults are
eps 8/255, 2 steps of 5/255), so the two adversarial methods differ only in the scheme.
Router terms per token: the router softmax of each patch token (class token excluded),
KL / CE averaged over patch tokens and MoE blocks per image (a CNN gate has one score
vector per image; the mean keeps the router term on the scale of the class term).

Router noise (std --noise/E on the logits, V-MoE's default) is applied in training for
every variant, so the variants differ only in the router loss. The router loss sees the
clean logits (PRC and importance: clean softmax; load: clean logits vs noisy threshold).

--precision bf16 trains through fast_forward (the same math, GEMMs in bfloat16, router,
norms, softmaxes and parameters in float32); evaluation and export are always float32.

AdamW with linear warmup and cosine decay, gradient clipping at norm 1 (as V-MoE). Weight
decay applies to matrices only (not biases, LayerNorm, pos_embed, cls_token), the usual
ViT practice. Deterministic for a fixed --seed and --threads on one machine.
"""
import argparse
import gzip
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import export  # noqa: E402
from vmoe import VMoE  # noqa: E402

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
NUM_VAL = 5000
MEAN, STD = 0.5, 0.5


# ----------------------------------------------------------------------------- data

def read_idx(path):
    """An IDX file (optionally gzipped) as a numpy array of its declared shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    if len(data) != start + math.prod(dims):
        raise ValueError(f"{path}: {len(data) - start} data bytes for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def load_split(split):
    """(images uint8 [N,1,28,28], labels int64 [N]) for split 'train' or 't10k'."""
    images = read_idx(DATA_DIR / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(DATA_DIR / f"{split}-labels-idx1-ubyte.gz")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


def normalise(x):
    """[0,1] pixels -> model input."""
    return (x - MEAN) / STD


# ----------------------------------------------------------------------------- views

def sample_crops(n, size, crop_min, gen, ratio=(3 / 4, 4 / 3), attempts=10):
    """Random-resized ("inception") crop boxes for n images of size (H, W), vectorised.

    As torchvision's RandomResizedCrop: up to `attempts` draws of (area fraction in
    [crop_min, 1], log-uniform aspect w/h in `ratio`); w, h rounded to whole pixels; the
    first draw that fits is kept, with its top-left corner uniform over the valid integer
    positions; images where none fits get the whole image. Returns float64 tensors
    (x0, y0, w, h) [n], in pixels of the source image."""
    H, W = size
    area = torch.empty(n, attempts, dtype=torch.float64).uniform_(crop_min, 1.0, generator=gen)
    log_r = torch.empty(n, attempts, dtype=torch.float64).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    w = torch.round(torch.sqrt(area * H * W * torch.exp(log_r)))
    h = torch.round(torch.sqrt(area * H * W / torch.exp(log_r)))
    ok = (w >= 1) & (w <= W) & (h >= 1) & (h <= H)
    first = torch.argmax(ok.to(torch.int8), dim=1)  # first True (0 when none)
    found = ok.any(dim=1)
    w = torch.where(found, w.gather(1, first[:, None])[:, 0], torch.tensor(float(W), dtype=torch.float64))
    h = torch.where(found, h.gather(1, first[:, None])[:, 0], torch.tensor(float(H), dtype=torch.float64))
    u = torch.rand(n, 2, dtype=torch.float64, generator=gen)
    x0 = torch.floor(u[:, 0] * (W - w + 1))  # uniform integer in [0, W - w]
    y0 = torch.floor(u[:, 1] * (H - h + 1))
    return x0, y0, w, h


def sample_views(n, size, crop_min, gen):
    """View parameters for n images: dict of float64 [n] tensors x0, y0, w, h, and bool flip.

    A view maps its continuous pixel coordinates (u, v) in [0,W)x[0,H) (pixel centres at
    i + 0.5) to source coordinates
        x = x0 + (flip ? W - u : u) * w / W,   y = y0 + v * h / H."""
    x0, y0, w, h = sample_crops(n, size, crop_min, gen)
    flip = torch.rand(n, generator=gen) < 0.5
    return {"x0": x0, "y0": y0, "w": w, "h": h, "flip": flip}


def render_views(images, views):
    """Apply views to [n,C,H,W] float images in [0,1] -> [n,C,H,W], bilinear, zeros outside
    the source image (align_corners=False, i.e. the view-to-source map above)."""
    n, c, H, W = images.shape
    sx = views["w"] / W
    sx = torch.where(views["flip"], -sx, sx)
    # normalised source x = sx * normalised view x + tx (flip: u -> W - u mirrors about 0)
    tx = (2 * views["x0"] + views["w"]) / W - 1
    sy = views["h"] / H
    ty = (2 * views["y0"] + views["h"]) / H - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1),
                         torch.stack([zero, sy, ty], 1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, [n, c, H, W], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def snap(t):
    """Values within 1e-9 of an integer, set to it."""
    r = torch.round(t)
    return torch.where((t - r).abs() < 1e-9, r, t)


def patch_correspondence(view_a, view_b, size, patch):
    """For every patch of view B, the index of the view-A patch containing the source point
    of its centre, or -1 when that point falls outside view A. Returns int64 [n, G*G']
    (patches in raster order).

    Contract (docs/views.md): pixel centres at i + 0.5 (align_corners=False), a
    point on a patch boundary belongs to the patch right/below, view 1 is A. Computed in
    float64: centre (c + 1/2) P -> source x -> view-A coordinate u_A -> floor(u_A / P)."""
    H, W = size
    gh, gw = H // patch, W // patch
    cy = (torch.arange(gh, dtype=torch.float64) + 0.5) * patch
    cx = (torch.arange(gw, dtype=torch.float64) + 0.5) * patch
    v = cy[:, None].expand(gh, gw).reshape(1, -1)  # [1, N] view-B coordinates
    u = cx[None, :].expand(gh, gw).reshape(1, -1)

    def col(t):
        return t[:, None]

    ub = torch.where(col(view_b["flip"]), W - u, u)
    xs = col(view_b["x0"]) + ub * col(view_b["w"]) / W  # source coordinates
    ys = col(view_b["y0"]) + v * col(view_b["h"]) / H
    ua = (xs - col(view_a["x0"])) * W / col(view_a["w"])  # view-A coordinates
    ua = torch.where(col(view_a["flip"]), W - ua, ua)
    va = (ys - col(view_a["y0"])) * H / col(view_a["h"])
    # A centre that lands exactly on a patch boundary in exact arithmetic may come out a
    # hair below it in float64; snap values within 1e-9 of an integer so that it goes to
    # the patch right/below, as the contract says (rs_view_match in C does the same).
    ua, va = snap(ua), snap(va)
    inside = (ua >= 0) & (ua < W) & (va >= 0) & (va < H)
    pa = torch.floor(va / patch).long() * gw + torch.floor(ua / patch).long()
    return torch.where(inside, pa, torch.full_like(pa, -1))


# ----------------------------------------------------------------------------- routers

class RouterTap:
    """Adds V-MoE's training noise to every MoE router and keeps the logits.

    A forward hook on each `blocks.{i}.moe.router` (an nn.Linear, so the checkpoint names
    are unchanged) stores the clean logits and, in train mode, returns logits + noise_std *
    N(0,1): the MoE then picks experts and gates from the noisy softmax, as V-MoE does.
    The model itself is built with noise_std = 0 so that noise is added once.
    `logits[i]` = (clean [S,E], noisy [S,E]) from the latest forward pass."""

    def __init__(self, model, noise_std):
        self.noise_std = noise_std
        self.logits = {}
        for i, block in enumerate(model.blocks):
            if hasattr(block, "moe"):
                block.moe.router.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def hook(module, inputs, clean):
            noisy = clean
            if module.training and self.noise_std > 0:
                noisy = clean + self.noise_std * torch.randn_like(clean)
            self.logits[i] = (clean, noisy)
            return noisy
        return hook


def cv_squared(x):
    """Squared coefficient of variation over the last axis (population variance)."""
    return x.var(dim=-1, unbiased=False) / x.mean(dim=-1) ** 2


def importance_loss(probs):
    """V-MoE importance loss per group: probs [G,S,E] clean softmax -> [G]."""
    return cv_squared(probs.sum(dim=1))


def load_loss(logits, noisy, noise_std, k):
    """V-MoE load loss per group: logits, noisy [G,S,E] -> [G].

    Each token's threshold is its k-th largest noisy logit; P(expert e would be selected
    if the noise were re-drawn) = 1 - Phi((threshold - logit_e) / noise_std). The loss is
    CV^2 over experts of its mean over the group's tokens."""
    threshold = noisy.topk(k, dim=-1).values[..., -1:]
    z = (threshold - logits) / noise_std
    p = 0.5 * torch.erfc(z / math.sqrt(2))  # 1 - Phi(z)
    return cv_squared(p.mean(dim=1))


def prc_loss(r1, r2, match):
    """PRC loss of one MoE layer. r1, r2: clean router softmax of the patch tokens of view 1
    and view 2 [B,N,E]; match [B,N]: view-1 patch of each view-2 patch, -1 if none.
    Returns (loss, S [E,E])."""
    e = r1.shape[-1]
    valid = (match >= 0).to(r1.dtype)
    a = r1.gather(1, match.clamp(min=0)[..., None].expand(-1, -1, e))  # r1 at matched patch
    pairs = valid.sum().clamp(min=1)
    s = e * torch.einsum("bne,bnf->ef", a * valid[..., None], r2) / pairs
    diag = torch.diagonal(s)
    off = s - torch.diag(diag)
    loss = 5e-3 * ((diag - 1) ** 2).mean() + 5e-2 * (off ** 2).sum() / (e * (e - 1))
    return loss, s


def jsd_loss(r1, r2, match):
    """Mean Jensen-Shannon divergence (bits) of one MoE layer over the matched patch pairs.
    r1, r2: clean router softmax of the patch tokens of view 1 and view 2 [B,N,E]; match
    [B,N]: view-1 patch of each view-2 patch, -1 if none. Returns a scalar."""
    e = r1.shape[-1]
    valid = (match >= 0).to(r1.dtype)
    a = r1.gather(1, match.clamp(min=0)[..., None].expand(-1, -1, e))  # r1 at matched patch
    m = 0.5 * (a + r2)
    tiny = torch.finfo(r1.dtype).tiny  # softmax may underflow to 0; 0 log 0 counts as 0
    log_m = torch.log2(m.clamp(min=tiny))
    kl_a = (a * (torch.log2(a.clamp(min=tiny)) - log_m)).sum(-1)
    kl_b = (r2 * (torch.log2(r2.clamp(min=tiny)) - log_m)).sum(-1)
    return (0.5 * (kl_a + kl_b) * valid).sum() / valid.sum().clamp(min=1)


def balancing_loss(clean, noisy, noise_std, k):
    """V-MoE's importance + load losses (0.005 each) of one MoE layer, one group per view.
    clean [2,B,T,E] logits, noisy [2*B,T,E]. Returns (loss, importance, load)."""
    e = clean.shape[-1]
    # one group per view (V-MoE computes these per group of tokens); all tokens including
    # the class token are routed, so all count
    imp = importance_loss(torch.softmax(clean, -1).flatten(1, 2))
    if noise_std > 0:
        lod = load_loss(clean.flatten(1, 2), noisy.view(2, -1, e), noise_std, k)
    else:
        lod = torch.zeros_like(imp)
    return 0.005 * (imp.mean() + lod.mean()), imp.mean().item(), lod.mean().item()


def router_loss(kind, tap, config, batch, match, noise_std, jsd_weight=0.0):
    """The router loss `kind` ('vmoe', 'prc', 'jsd' or 'none') of the latest forward pass
    over a batch holding [view 1 of `batch` images; view 2 of them]. Returns (loss,
    metrics)."""
    total = torch.zeros(())
    metrics = {}
    if kind == "none":
        return total, metrics
    if kind not in ("vmoe", "prc", "jsd"):
        raise ValueError(f"unknown router loss {kind!r}")
    e, k = config["num_experts"], config["top_k"]
    cls = 1 if config["classifier"] == "token" else 0
    for i, (clean, noisy) in sorted(tap.logits.items()):
        clean = clean.view(2, batch, -1, e)  # [view, image, token, expert]
        if kind in ("vmoe", "jsd"):
            bal, metrics[f"imp{i}"], metrics[f"load{i}"] = balancing_loss(clean, noisy, noise_std, k)
            total = total + bal
        if kind == "jsd":
            r = torch.softmax(clean[:, :, cls:], dim=-1)
            jsd = jsd_loss(r[0], r[1], match)
            total = total + jsd_weight * jsd
            metrics[f"jsd{i}"] = jsd.item()
        elif kind == "prc":
            r = torch.softmax(clean[:, :, cls:], dim=-1)
            loss, s = prc_loss(r[0], r[1], match)
            total = total + loss
            metrics[f"S-I{i}"] = torch.linalg.norm(s.detach() - torch.eye(e)).item()
    return total, metrics


# ----------------------------------------------------------------------------- adversarial

def pgd(forward, x, y, eps, steps, gen):
    """L-inf PGD on [0,1] pixels x [B,C,H,W] against the cross-entropy of labels y: random
    start uniform in the eps-ball (drawn from `gen`), `steps` signed-gradient steps of size
    2.5 eps / steps, each projected onto the ball and [0,1]; returns the last iterate,
    detached. `forward` maps model input to logits; only the pixels get gradients (the
    parameters' .grad is left untouched)."""
    start = (2 * torch.rand(x.shape, generator=gen, dtype=x.dtype) - 1) * eps
    adv = (x + start).clamp(0, 1)
    alpha = 2.5 * eps / steps
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(forward(normalise(adv)), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.minimum(torch.maximum(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def router_patch_logits(tap, n, cls):
    """Clean router logits of the patch tokens (class token excluded) of the latest forward
    pass over n images, one [n, T-cls, E] tensor per MoE block, in block order."""
    out = []
    for _, (clean, _noisy) in sorted(tap.logits.items()):
        out.append(clean.view(n, -1, clean.shape[-1])[:, cls:])
    return out


def router_kl(clean, adv):
    """Per image: KL(softmax(clean) || softmax(adv)) of each patch token's router, averaged
    over tokens and MoE blocks. clean, adv: lists of [n, T, E] logits. Returns [n]."""
    terms = [F.kl_div(F.log_softmax(a, -1), F.log_softmax(c, -1), log_target=True,
                      reduction="none").sum(-1).mean(-1) for c, a in zip(clean, adv)]
    return torch.stack(terms).mean(0)


def router_ce(clean, target, e):
    """Mean over images, patch tokens and MoE blocks of the router softmax's cross-entropy
    against label mod E (AdvMoE's `criterion(scores, target % n_expert)`, per token)."""
    t = (target % e)
    terms = [F.cross_entropy(c.flatten(0, 1), t.repeat_interleave(c.shape[1]))
             for c in clean]
    return torch.stack(terms).mean()


def trades_example(model, forward, tap, x, eps, steps, gen, cls):
    """AdvMoE's example (train_moe.py `trainer`): start x + 0.001 N(0,1); `steps` signed
    steps of 2.5 eps / steps ascending KL(p_clean || p_adv) of the class softmax summed over
    images plus the per-image router KL, each projected onto the eps-ball and [0,1]. Made
    in eval mode (no router noise). Returns the example (detached, on [0,1] pixels)."""
    model.eval()
    n = x.shape[0]
    with torch.no_grad():
        p_clean = F.log_softmax(forward(normalise(x)), -1)
        r_clean = router_patch_logits(tap, n, cls)
    alpha = 2.5 * eps / steps
    adv = x + 0.001 * torch.randn(x.shape, generator=gen)
    for _ in range(steps):
        adv.requires_grad_(True)
        out = forward(normalise(adv))
        loss = F.kl_div(F.log_softmax(out, -1), p_clean, log_target=True, reduction="sum")
        loss = loss + router_kl(r_clean, router_patch_logits(tap, n, cls)).sum()
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.minimum(torch.maximum(adv, x - eps), x + eps).clamp(0, 1)
    model.train()
    return adv.detach()


def advmoe_step(model, forward, tap, opt, params, pixels, target, args, config, batch,
                noise_std, gen, routers):
    """One AdvMoE phase (see the module's docstring): the experts' (`routers` False) or the
    routers' (`routers` True), each with its own example, optimiser `opt` and `params`.
    Returns (logits of the clean views, CE, aux, metrics)."""
    cls = 1 if config["classifier"] == "token" else 0
    n, e = pixels.shape[0], config["num_experts"]
    adv = trades_example(model, forward, tap, pixels, args.adv_eps, args.adv_steps, gen, cls)
    logits = forward(normalise(pixels))
    ce = F.cross_entropy(logits, target)
    aux, metrics = router_loss("vmoe", tap, config, batch, None, noise_std)
    if routers:
        r_clean = router_patch_logits(tap, n, cls)
        forward(normalise(adv))
        rce = router_ce(r_clean, target, e)
        rkl = router_kl(r_clean, router_patch_logits(tap, n, cls)).sum() / n
        loss = rce + args.router_alpha * rkl + aux
        metrics.update({"router_ce": rce.item(), "router_kl": rkl.item()})
    else:
        robust = F.kl_div(F.log_softmax(forward(normalise(adv)), -1),
                          F.log_softmax(logits, -1), log_target=True, reduction="sum") / n
        loss = ce + args.trades_beta * robust
        metrics["trades_kl"] = robust.item()
    model.zero_grad(set_to_none=True)
    loss.backward()
    if args.clip > 0:
        nn.utils.clip_grad_norm_(params, args.clip)
    opt.step()
    return logits.detach(), ce.detach(), aux.detach(), metrics


def fraction(text):
    """A float written as a number or a fraction ('2/255')."""
    num, _, den = text.partition("/")
    try:
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}")


# ----------------------------------------------------------------------------- fast forward

def _lin(x, layer_w, layer_b, dt):
    """F.linear with inputs and weights cast to dt (the GEMM runs in dt; autograd casts the
    gradients back to the float32 parameters)."""
    return F.linear(x.to(dt), layer_w.to(dt), None if layer_b is None else layer_b.to(dt))


def _attention(attn, x, dt):
    b, t, d = x.shape
    heads = attn.heads
    qkv = _lin(x, attn.qkv.weight, attn.qkv.bias, dt)
    q, k, v = qkv.view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    att = torch.softmax(((q * attn.scale) @ k.transpose(-2, -1)).float(), dim=-1).to(dt)
    return _lin((att @ v).transpose(1, 2).reshape(b, t, d), attn.proj.weight, attn.proj.bias, dt)


def _moe(moe, x, dt):
    """The MoE layer of vmoe.MoE with one gather, per-expert GEMMs on contiguous slices of
    the expert-sorted tokens, and one index_add back. The router runs in float32 through
    `moe.router` (so RouterTap's hook adds the training noise and keeps the logits);
    experts, gates and tie-breaking exactly as vmoe.MoE."""
    b, t, d = x.shape
    h = x.reshape(b * t, d)
    route = torch.softmax(moe.router(h.float()), dim=-1)  # noisy in training via RouterTap
    k = moe.top_k
    idx = torch.sort(-route.detach(), dim=-1, stable=True).indices[:, :k]  # ties: lower index
    gates = route.gather(1, idx).reshape(-1)  # [S*k], not renormalised
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)  # assignments grouped by expert
    tok = torch.div(order, k, rounding_mode="floor")
    counts = torch.bincount(flat, minlength=route.shape[1]).tolist()
    xs = h.to(dt)[tok]
    fc1, fc2 = moe.experts.fc1, moe.experts.fc2
    w1, b1, w2, b2 = fc1.weight.to(dt), fc1.bias.to(dt), fc2.weight.to(dt), fc2.bias.to(dt)
    parts, start = [], 0
    for e, n in enumerate(counts):
        if n:
            hid = moe.experts.act(F.linear(xs[start:start + n], w1[e], b1[e]))
            parts.append(F.linear(hid, w2[e], b2[e]))
        start += n
    ys = torch.cat(parts).float() * gates[order, None]
    return torch.zeros(b * t, d, dtype=ys.dtype).index_add(0, tok, ys).view(b, t, d)


def fast_forward(model, x, dt=torch.bfloat16):
    """Training forward pass of a vmoe.VMoE with the same parameters and the same math,
    written for speed on CPU: with dt = bfloat16 every GEMM (patch embedding, attention,
    MLPs, experts) runs in bfloat16 (oneDNN) while the residual stream, LayerNorms,
    softmaxes, the router and the head stay float32; with dt = float32 it matches the
    reference forward to rounding. Returns logits [B,K] (float32)."""
    cfg = model.config
    pe = model.patch_embed
    x = F.conv2d(x.to(dt), pe.weight.to(dt), pe.bias.to(dt), stride=pe.stride)
    x = x.float().flatten(2).transpose(1, 2)
    if cfg["classifier"] == "token":
        x = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    x = x + model.pos_embed
    for block in model.blocks:
        x = x + _attention(block.attn, block.norm1(x), dt)
        y = block.norm2(x)
        if hasattr(block, "moe"):
            x = x + _moe(block.moe, y, dt)
        else:
            mlp = block.mlp
            x = x + _lin(mlp.act(_lin(y, mlp.fc1.weight, mlp.fc1.bias, dt)),
                         mlp.fc2.weight, mlp.fc2.bias, dt).float()
    x = model.norm(x)
    x = x[:, 0] if cfg["classifier"] == "token" else x.mean(dim=1)
    if model.pre_logits is not None:
        x = torch.tanh(model.pre_logits(x))
    return model.head(x)


# ----------------------------------------------------------------------------- model

def init_weights(model, seed):
    """ViT / V-MoE-style init, deterministic in `seed`: xavier-uniform matrices (per expert),
    zero biases, lecun-normal patch embedding and router, zero head, pos_embed N(0, 0.02)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or name == "cls_token" or name.startswith("head."):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            elif name == "pos_embed":
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            elif name == "patch_embed.weight" or name.endswith("router.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            else:  # [out,in] or [E,out,in]
                fan_out, fan_in = p.shape[-2], p.shape[-1]
                bound = math.sqrt(6 / (fan_in + fan_out))
                p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=gen))


def method_of(args):
    """The training method recorded in the checkpoint: vmoe, prc, jsd, adv, advmoe (or none)."""
    if args.method == "advmoe":
        return "advmoe"
    return "adv" if args.adv_eps > 0 else args.router_loss


def make_config(args):
    return {
        "image_size": [28, 28], "channels": 1, "patch_size": 4, "hidden": args.hidden,
        "depth": args.depth, "heads": args.heads, "mlp_dim": args.mlp_dim,
        "num_classes": len(LABELS), "moe_layers": args.moe_layers,
        "num_experts": args.experts, "top_k": args.top_k, "classifier": "token",
        "layer_norm_eps": 1e-6, "gelu": "erf", "mean": [MEAN], "std": [STD],
        "representation": False, "labels": LABELS,
        # provenance read by routerscope (store, report colours and groups)
        "method": method_of(args), "train_seed": args.seed,
    }


def is_router(name):
    return ".moe.router." in name


def param_groups(model, weight_decay, keep=lambda name: True):
    """AdamW groups of the parameters whose name `keep` accepts."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not keep(name):
            continue
        (decay if p.dim() >= 2 and name not in ("pos_embed", "cls_token") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step, args):
    """Linear warmup to --lr over --warmup steps, then cosine decay to 0 at --steps."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model, images, labels, batch=1000):
    """Top-1 accuracy on clean images (eval mode: no router noise)."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch].float() / 255)
        correct += (model(x).argmax(1) == labels[i:i + batch]).sum().item()
    model.train(was_training)
    return correct / len(images)


# ----------------------------------------------------------------------------- main

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_settings(args):
    """The arguments that make a training what it is (a state resumes only under these)."""
    return {k: v for k, v in vars(args).items() if k not in ("state", "out", "log_every", "eval_every")}


def save_state(path, args, model, optimisers, gens, loop, train_s):
    """Everything the loop needs to go on exactly where it is (written atomically)."""
    state = {"settings": run_settings(args), "model": model.state_dict(),
             "optimisers": [o.state_dict() for o in optimisers],
             "rng": torch.get_rng_state(), "gens": [g.get_state() for g in gens],
             "loop": loop, "train_s": train_s}
    tmp = Path(str(path) + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path, args, model, optimisers, gens):
    """Restores a state written by save_state for the same settings. Returns (loop, train_s)."""
    state = torch.load(path)
    if state["settings"] != run_settings(args):
        sys.exit(f"train.py: {path}: written by another command; delete it to start again")
    model.load_state_dict(state["model"])
    for o, saved in zip(optimisers, state["optimisers"]):
        o.load_state_dict(saved)
    torch.set_rng_state(state["rng"])
    for g, saved in zip(gens, state["gens"]):
        g.set_state(saved)
    return state["loop"], state["train_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-dim", type=int, default=256)
    ap.add_argument("--moe-layers", type=lambda s: [int(t) for t in s.split(",") if t],
                    default=[1, 3], help="comma-separated block indices (default 1,3)")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--router-loss", choices=["vmoe", "prc", "jsd", "none"], default="vmoe")
    ap.add_argument("--jsd-weight", type=float, default=None,
                    help="weight of the JSD loss (required with --router-loss jsd)")
    ap.add_argument("--adv-eps", type=fraction, default=0.0,
                    help="PGD adversarial training with this L-inf radius on [0,1] pixels "
                         "(e.g. 2/255; method 'adv'; 0: off)")
    ap.add_argument("--adv-steps", type=int, default=3, help="PGD steps per training step")
    ap.add_argument("--method", choices=["advmoe"], default=None,
                    help="advmoe: AdvMoE's router-expert alternating adversarial training "
                         "(needs --adv-eps; see the module's docstring)")
    ap.add_argument("--trades-beta", type=float, default=6.0,
                    help="advmoe: weight of the experts' TRADES KL (AdvMoE's --beta, 6)")
    ap.add_argument("--router-alpha", type=float, default=6.0,
                    help="advmoe: weight of the routers' KL (AdvMoE's --alpha, 6)")
    ap.add_argument("--noise", type=float, default=1.0,
                    help="router noise std times E (V-MoE: 1, i.e. std 1/E); 0 disables")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128, help="images per step (x2 views)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=None, help="default: 5%% of --steps")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: off)")
    ap.add_argument("--crop-min", type=float, default=0.25, help="smallest crop area fraction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and OpenBLAS threads (default 1)")
    ap.add_argument("--precision", choices=["ref32", "fp32", "bf16"], default="ref32",
                    help="training forward: ref32 = vmoe.py's reference forward (default), "
                         "fp32 / bf16 = fast_forward with float32 / bfloat16 GEMMs")
    ap.add_argument("--no-test", action="store_true",
                    help="skip the test-set accuracy (trials that choose settings on validation)")
    ap.add_argument("--agreement-seed", type=int, default=0,
                    help="view seed of the final validation routing agreement")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=0, help="val accuracy every N steps (0: end only)")
    ap.add_argument("--state", default=None,
                    help="training state file: written every --log-every steps and resumed "
                         "from if it exists (same command), so a long training survives a stop; "
                         "a resumed training is bit-identical to an uninterrupted one")
    args = ap.parse_args()
    from agreement import agreement, format_agreement, set_threads  # imports this module
    if args.warmup is None:
        args.warmup = max(1, round(0.05 * args.steps))
    if args.router_loss == "jsd" and (args.jsd_weight is None or args.jsd_weight < 0):
        ap.error("--router-loss jsd wants --jsd-weight W >= 0")
    if args.router_loss != "jsd" and args.jsd_weight is not None:
        ap.error("--jsd-weight only applies to --router-loss jsd")
    if args.adv_eps < 0 or args.adv_eps > 1 or args.adv_steps < 1:
        ap.error("--adv-eps wants a radius in [0, 1] and --adv-steps at least 1")
    if args.adv_eps > 0 and args.router_loss != "vmoe":
        ap.error("--adv-eps trains the V-MoE baseline: use it with --router-loss vmoe")
    if args.method == "advmoe" and args.adv_eps <= 0:
        ap.error("--method advmoe wants --adv-eps EPS > 0 (and --adv-steps)")

    set_threads(args.threads)
    torch.manual_seed(args.seed)  # router noise (global generator)
    data_gen = torch.Generator().manual_seed(args.seed + 1)  # batches and views
    adv_gen = torch.Generator().manual_seed(args.seed + 2)  # PGD random starts

    t0 = time.time()
    images, labels = load_split("train")
    train_x, train_y = images[:-NUM_VAL], labels[:-NUM_VAL]
    val_x, val_y = images[-NUM_VAL:], labels[-NUM_VAL:]
    test_x, test_y = load_split("t10k")

    config = make_config(args)
    model = VMoE(config)  # noise_std 0: RouterTap adds the noise
    init_weights(model, args.seed)
    noise_std = args.noise / args.experts
    tap = RouterTap(model, noise_std)
    params = sum(p.numel() for p in model.parameters())
    opt, opts = None, None
    if args.method != "advmoe":
        opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr,
                                betas=(0.9, 0.999))
    else:  # AdvMoE: one optimiser per phase, the same schedule
        def phase(keep):
            params = [p for name, p in model.named_parameters() if keep(name)]
            return (torch.optim.AdamW(param_groups(model, args.weight_decay, keep),
                                      lr=args.lr, betas=(0.9, 0.999)), params)
        opts = (phase(lambda name: not is_router(name)), phase(is_router))
    log(f"config {json.dumps({k: v for k, v in config.items() if k != 'labels'})}")
    log(f"params {params}, train {len(train_x)}, val {len(val_x)}, test {len(test_x)}, "
        f"router loss {args.router_loss}, noise std {noise_std:g}, threads {args.threads}")
    if args.router_loss == "jsd":
        log(f"jsd weight {args.jsd_weight:g}")
    if args.method == "advmoe":
        log(f"AdvMoE training: TRADES examples eps {args.adv_eps:.6g}, {args.adv_steps} steps "
            f"of {2.5 * args.adv_eps / args.adv_steps:.6g}, beta {args.trades_beta:g}, "
            f"alpha {args.router_alpha:g}")
    elif args.adv_eps > 0:
        log(f"adversarial training: PGD eps {args.adv_eps:.6g}, {args.adv_steps} steps of "
            f"{2.5 * args.adv_eps / args.adv_steps:.6g}")

    compute = {"ref32": None, "fp32": torch.float32, "bf16": torch.bfloat16}[args.precision]

    def forward(inp):
        return model(inp) if compute is None else fast_forward(model, inp, compute)
    size = tuple(config["image_size"])
    n, b = len(train_x), args.batch
    perm, pos, epoch = torch.randperm(n, generator=data_gen), 0, 0
    optimisers = [opt] if opts is None else [o for o, _ in opts]
    gens = [data_gen, adv_gen]
    first, train_before = 0, 0.0
    if args.state and Path(args.state).exists():
        loop, train_before = load_state(args.state, args, model, optimisers, gens)
        first, perm, pos, epoch = loop["step"], loop["perm"], loop["pos"], loop["epoch"]
        log(f"resumed from {args.state} at step {first} ({train_before:.1f} s of training)")
    model.train()
    t_start = t_log = time.time()
    sums = {"loss": 0.0, "ce": 0.0, "aux": 0.0, "acc": 0.0}
    for step in range(first, args.steps):
        if pos + b > n:  # new epoch; the remainder of the last is dropped
            perm, pos, epoch = torch.randperm(n, generator=data_gen), 0, epoch + 1
        idx = perm[pos:pos + b]
        pos += b
        x = train_x[idx].float() / 255
        y = train_y[idx]
        v1 = sample_views(b, size, args.crop_min, data_gen)
        v2 = sample_views(b, size, args.crop_min, data_gen)
        target = torch.cat([y, y])
        pixels = torch.cat([render_views(x, v1), render_views(x, v2)])
        if opts is not None:  # AdvMoE: experts on even steps, routers on odd ones
            phase_opt, phase_params = opts[step % 2]
            for group in phase_opt.param_groups:
                group["lr"] = lr_at(step, args)
            logits, ce, aux, metrics = advmoe_step(
                model, forward, tap, phase_opt, phase_params, pixels, target, args, config, b,
                noise_std, adv_gen, routers=step % 2 == 1)
        else:
            if args.adv_eps > 0:
                pixels = pgd(forward, pixels, target, args.adv_eps, args.adv_steps, adv_gen)
            match = (patch_correspondence(v1, v2, size, config["patch_size"])
                     if args.router_loss in ("prc", "jsd") else None)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args)
            logits = forward(normalise(pixels))
            ce = F.cross_entropy(logits, target)
            aux, metrics = router_loss(args.router_loss, tap, config, b, match, noise_std,
                                       args.jsd_weight or 0.0)
            opt.zero_grad(set_to_none=True)
            (ce + aux).backward()
            if args.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
        loss = ce + aux

        sums["loss"] += loss.item()
        sums["ce"] += ce.item()
        sums["aux"] += aux.item()
        sums["acc"] += (logits.argmax(1) == target).float().mean().item()
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            m = args.log_every if done % args.log_every == 0 else done % args.log_every
            now = time.time()
            extra = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            log(f"step {done}/{args.steps} ep {epoch} loss {sums['loss'] / m:.4f} "
                f"ce {sums['ce'] / m:.4f} aux {sums['aux'] / m:.5f} acc {sums['acc'] / m:.4f} "
                f"lr {lr_at(step, args):.2e} {m / (now - t_log):.2f} steps/s {extra}")
            sums = dict.fromkeys(sums, 0.0)
            t_log = now
            if args.state and done < args.steps:
                save_state(args.state, args, model, optimisers, gens,
                           {"step": done, "perm": perm, "pos": pos, "epoch": epoch},
                           train_before + now - t_start)
        if args.eval_every and done % args.eval_every == 0 and done != args.steps:
            log(f"step {done} val acc {evaluate(model, val_x, val_y):.4f}")
    train_s = train_before + time.time() - t_start

    model.eval()
    val_acc = evaluate(model, val_x, val_y)
    test_acc = float("nan") if args.no_test else evaluate(model, test_x, test_y)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    export(model, config, args.out)
    # Routing agreement between two augmented views of the validation images (the model
    # selection signal; the test-set figure comes from agreement.py)
    agree = agreement(model, val_x, args.agreement_seed, args.crop_min)
    log("validation pair agreement (views seed %d, crop-min %g):\n%s"
        % (args.agreement_seed, args.crop_min, format_agreement(agree)))
    wall = time.time() - t0
    print(f"done: steps {args.steps} wall {wall:.1f} s (training {train_s:.1f} s) "
          f"params {params} val_acc {val_acc:.4f} test_acc {test_acc:.4f} "
          f"val_top1_agree {agree['overall']['top1']:.4f} "
          f"router_loss {args.router_loss} seed {args.seed} out {args.out} "
          f"method {method_of(args)}", flush=True)


if __name__ == "__main__":
    main()
