"""V-MoE vision transformer in plain torch.nn, following routerscope's checkpoint contract.

Parameter names are timm-style and match the `.safetensors` layout the C side reads
(see docs/checkpoint.md). The forward pass is

    conv patch embed (stride P) -> tokens in raster order -> [cls] + tokens -> + pos_embed
    -> blocks: x += attn(norm1(x)); x += mlp_or_moe(norm2(x))
    -> norm (all tokens) -> pool (token: x[:, 0]; gap: mean over tokens)
    -> [tanh(pre_logits)] -> head

MoE routing: p = softmax(router(h)) over the E experts; the top_k experts (ties to the
lower expert index) each process the token and their outputs are summed, weighted by
p_e (not renormalised). By default no capacity limit; router noise only in training, if
asked for.

Dispatch (optional, `dispatch=` in VMoE.forward), after google-research/vmoe's
`vmoe/moe.py` (compute_capacity and the top-experts-per-item dispatcher): the batch is cut
into groups of `group_images` consecutive images (the last group holds what remains), each
group's S tokens in sequence order. Every expert takes at most
C = ceil(S * k * capacity_factor / E), raised to a multiple of 4, of a group's choices.
Places go rank by rank (all top-1 choices before any top-2 choice), within a rank in token
order, or with Batch Priority Routing (`bpr`) by decreasing top-1 gate (a stable order);
a choice whose expert is full is dropped and adds nothing. With `bf16`, vmoe's
Bfloat16Dispatcher (`vmoe/moe.py`): the rows an expert receives are rounded to bfloat16 before
its MLP, and its outputs before the gate-weighted combine (bf16_round); `pad_last` is the
caller's business (vmoe pads a last partial batch with all-zero images: pass them in).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

REQUIRED_KEYS = (
    "image_size", "channels", "patch_size", "hidden", "depth", "heads", "mlp_dim",
    "num_classes", "moe_layers", "num_experts", "top_k", "classifier", "layer_norm_eps",
    "gelu", "mean", "std", "representation",
)


def check_config(config):
    """Raise ValueError with one clear message if `config` is not a usable model config."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ValueError(f"config: missing keys {missing}")
    h, w = config["image_size"]
    p, d = config["patch_size"], config["hidden"]
    problems = []
    if h % p or w % p:
        problems.append(f"image_size {h}x{w} not divisible by patch_size {p}")
    if d % config["heads"]:
        problems.append(f"hidden {d} not divisible by heads {config['heads']}")
    if config["classifier"] not in ("token", "gap"):
        problems.append(f"classifier {config['classifier']!r} is not 'token' or 'gap'")
    if config["gelu"] not in ("erf", "tanh"):
        problems.append(f"gelu {config['gelu']!r} is not 'erf' or 'tanh'")
    if not 1 <= config["top_k"] <= config["num_experts"]:
        problems.append(f"top_k {config['top_k']} not in 1..num_experts")
    layers = config["moe_layers"]
    if len(set(layers)) != len(layers) or not all(0 <= i < config["depth"] for i in layers):
        problems.append(f"moe_layers {layers} must be distinct block indices < depth")
    if not len(config["mean"]) == len(config["std"]) == config["channels"]:
        problems.append("mean/std must have one entry per channel")
    labels = config.get("labels")
    if labels is not None and len(labels) != config["num_classes"]:
        problems.append(f"{len(labels)} labels for {config['num_classes']} classes")
    if problems:
        raise ValueError("config: " + "; ".join(problems))


def num_tokens(config):
    """Sequence length T: patches in the grid, plus one for the class token."""
    h, w = config["image_size"]
    p = config["patch_size"]
    return (h // p) * (w // p) + (config["classifier"] == "token")


def expected_shapes(config):
    """{tensor name: shape} of a checkpoint for `config` (the checkpoint contract)."""
    d, m, e = config["hidden"], config["mlp_dim"], config["num_experts"]
    c, p, k = config["channels"], config["patch_size"], config["num_classes"]
    shapes = {"patch_embed.weight": (d, c, p, p), "patch_embed.bias": (d,),
              "pos_embed": (1, num_tokens(config), d)}
    if config["classifier"] == "token":
        shapes["cls_token"] = (1, 1, d)
    for i in range(config["depth"]):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,),
                       b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                       b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                       b + "norm2.weight": (d,), b + "norm2.bias": (d,)})
        if i in config["moe_layers"]:
            ex = b + "moe.experts."
            shapes.update({b + "moe.router.weight": (e, d),
                           ex + "fc1.weight": (e, m, d), ex + "fc1.bias": (e, m),
                           ex + "fc2.weight": (e, d, m), ex + "fc2.bias": (e, d)})
            if config.get("router_bias", False):
                shapes[b + "moe.router.bias"] = (e,)
        else:
            shapes.update({b + "mlp.fc1.weight": (m, d), b + "mlp.fc1.bias": (m,),
                           b + "mlp.fc2.weight": (d, m), b + "mlp.fc2.bias": (d,)})
    shapes.update({"norm.weight": (d,), "norm.bias": (d,),
                   "head.weight": (k, d), "head.bias": (k,)})
    if config["representation"]:
        shapes.update({"pre_logits.weight": (d, d), "pre_logits.bias": (d,)})
    return shapes


def check_state_dict(config, state_dict):
    """Raise ValueError unless `state_dict` has exactly the names and shapes `config` implies."""
    expected = expected_shapes(config)
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    problems = [f"missing {k}" for k in sorted(expected.keys() - got.keys())]
    problems += [f"unexpected {k}" for k in sorted(got.keys() - expected.keys())]
    problems += [f"{k} has shape {list(got[k])}, config implies {list(expected[k])}"
                 for k in sorted(expected.keys() & got.keys()) if got[k] != expected[k]]
    if problems:
        raise ValueError("tensors do not match config: " + "; ".join(problems))


class Attention(nn.Module):
    """Multi-head softmax self-attention; qkv rows are q, k, v, each split by head."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, dim, mlp_dim, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.act = act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ExpertLinear(nn.Module):
    """E independent linear layers stored as one weight [E,out,in] and bias [E,out]."""

    def __init__(self, num_experts, in_dim, out_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_experts, out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(num_experts, out_dim))
        bound = in_dim ** -0.5  # same default init as nn.Linear, per expert
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, e, x):
        """Expert e on x [S,in] -> [S,out]."""
        return F.linear(x, self.weight[e], self.bias[e])


class Experts(nn.Module):
    def __init__(self, num_experts, dim, mlp_dim, act):
        super().__init__()
        self.fc1 = ExpertLinear(num_experts, dim, mlp_dim)
        self.fc2 = ExpertLinear(num_experts, mlp_dim, dim)
        self.act = act

    def forward(self, e, x):
        """Expert e's MLP on x [S,D] -> [S,D]."""
        return self.fc2(e, self.act(self.fc1(e, x)))


def compute_capacity(num_tokens, num_experts, capacity_factor, multiple_of=4):
    """Places per expert for `num_tokens` choices (S * k) of a group: vmoe's defaults,
    ceil(num_tokens * capacity_factor / num_experts) raised to a multiple of `multiple_of`."""
    capacity = math.ceil(num_tokens * capacity_factor / num_experts)
    if capacity < 1:
        raise ValueError(f"capacity factor {capacity_factor} gives capacity {capacity} < 1")
    return capacity + (-capacity) % multiple_of


def kept_choices(idx, top1, num_experts, capacity, bpr):
    """Which choices of one dispatch group are kept: idx [S,k] expert ids by rank, top1 [S]
    the top-1 gates. Returns bool [S,k]."""
    s, k = idx.shape
    perm = torch.sort(-top1, stable=True).indices if bpr else torch.arange(s)
    # Rank-major queue of choices; a choice's place is how many earlier choices in the
    # queue went to the same expert.
    queue = idx[perm].t().reshape(-1)
    one_hot = F.one_hot(queue, num_experts)
    place = (one_hot.cumsum(0) * one_hot).sum(1) - 1
    kept = torch.empty(s, k, dtype=torch.bool)
    kept[perm] = (place < capacity).view(k, s).t()
    return kept


def bf16_round(x):
    """x rounded to bfloat16 (nearest even, torch's cast) and back to x's dtype; a float64 x
    rounds its float32 value, as the float32 model would. Straight through for autograd: the
    rounding's derivative is taken as 1, as vmoe's gradient through its casts."""
    r = x.float().bfloat16().to(x.dtype)
    return x + (r - x).detach()


class MoE(nn.Module):
    """Top-k mixture of expert MLPs. Returns (output, clean router softmax, kept choices
    [B,T,k] or None without dispatch)."""

    def __init__(self, dim, mlp_dim, num_experts, top_k, act, router_bias=False, noise_std=0.0):
        super().__init__()
        self.top_k = top_k
        self.noise_std = noise_std
        self.router = nn.Linear(dim, num_experts, bias=router_bias)
        self.experts = Experts(num_experts, dim, mlp_dim, act)

    def forward(self, x, dispatch=None):
        b, t, d = x.shape
        h = x.reshape(b * t, d)
        logits = self.router(h)
        probs = torch.softmax(logits, dim=-1)
        route = probs
        # As in V-MoE, training noise changes which experts are picked and their gates; the
        # clean softmax is what we return (PRC and the recorded routing use it).
        if self.training and self.noise_std > 0:
            route = torch.softmax(logits + self.noise_std * torch.randn_like(logits), dim=-1)
        # A stable ascending sort of -p keeps equal gates in expert-index order, so ties go
        # to the lower expert index (torch.topk makes no promise about ties).
        idx = torch.sort(-route.detach(), dim=-1, stable=True).indices[:, :self.top_k]
        gates = route.gather(1, idx)  # [S,k], not renormalised
        kept = None
        if dispatch is not None:
            kept = torch.empty_like(idx, dtype=torch.bool)
            rows = dispatch["group_images"] * t
            for start in range(0, b * t, rows):
                g = slice(start, min(start + rows, b * t))
                n = g.stop - g.start
                capacity = compute_capacity(n * self.top_k, route.shape[1], dispatch["capacity_factor"])
                kept[g] = kept_choices(idx[g], gates[g, 0].detach(), route.shape[1], capacity,
                                       dispatch.get("bpr", False))
        # Sparse dispatch: each expert runs on just its tokens. A dense batched variant (all
        # experts on all tokens, zero weights for the unchosen) measured 1-8x slower on 2
        # cores for E = 4..16, k = 1..4, training and inference alike, so it is not used.
        out = torch.zeros_like(h)
        for e in range(route.shape[1]):
            chosen = idx == e if kept is None else (idx == e) & kept
            tok, slot = chosen.nonzero(as_tuple=True)  # each token at most once
            if tok.numel():
                bf16 = dispatch is not None and dispatch.get("bf16", False)
                xin = bf16_round(h[tok]) if bf16 else h[tok]
                y = self.experts(e, xin)
                y = bf16_round(y) if bf16 else y
                y = y * gates[tok, slot].unsqueeze(1)
                out = out.index_add(0, tok, y)
        if kept is not None:
            kept = kept.view(b, t, -1)
        return out.view(b, t, d), probs.view(b, t, -1), kept


class Block(nn.Module):
    def __init__(self, config, moe, act, noise_std):
        super().__init__()
        d, eps = config["hidden"], config["layer_norm_eps"]
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, config["heads"])
        self.norm2 = nn.LayerNorm(d, eps=eps)
        if moe:
            self.moe = MoE(d, config["mlp_dim"], config["num_experts"], config["top_k"], act,
                           config.get("router_bias", False), noise_std)
        else:
            self.mlp = Mlp(d, config["mlp_dim"], act)

    def forward(self, x, dispatch=None):
        """Returns (x, router softmax [B,T,E] or None for a dense block, kept choices
        [B,T,k] or None)."""
        x = x + self.attn(self.norm1(x))
        if hasattr(self, "moe"):
            y, probs, kept = self.moe(self.norm2(x), dispatch)
            return x + y, probs, kept
        return x + self.mlp(self.norm2(x)), None, None


class VMoE(nn.Module):
    def __init__(self, config, noise_std=0.0):
        """`noise_std`: std of the Gaussian noise added to router logits in train mode only."""
        super().__init__()
        check_config(config)
        self.config = config
        d, p, c = config["hidden"], config["patch_size"], config["channels"]
        act = nn.GELU(approximate="none" if config["gelu"] == "erf" else "tanh")
        self.patch_embed = nn.Conv2d(c, d, kernel_size=p, stride=p)
        if config["classifier"] == "token":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens(config), d))
        nn.init.normal_(self.pos_embed, std=0.02)
        moe_layers = set(config["moe_layers"])
        self.blocks = nn.ModuleList(Block(config, i in moe_layers, act, noise_std)
                                    for i in range(config["depth"]))
        self.norm = nn.LayerNorm(d, eps=config["layer_norm_eps"])
        self.pre_logits = nn.Linear(d, d) if config["representation"] else None
        self.head = nn.Linear(d, config["num_classes"])

    def forward(self, x, return_router=False, dispatch=None):
        """x: normalised images [B,C,H,W]. Returns logits [B,K], or with `return_router`
        (logits, {block index: clean router softmax [B,T,E]}) over all tokens, cls first.
        `dispatch`: None (no capacity) or {"capacity_factor", "group_images", "bpr"[, "bf16"]} (see
        the module's docstring); with it and `return_router` the result gains a third item,
        {block index: kept choices, bool [B,T,k]}."""
        c, (h, w) = self.config["channels"], self.config["image_size"]
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise ValueError(f"input shape {list(x.shape)}, model expects [B,{c},{h},{w}]")
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B,N,D], patches row-major
        if self.config["classifier"] == "token":
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        router, kept = {}, {}
        for i, block in enumerate(self.blocks):
            x, probs, block_kept = block(x, dispatch)
            if probs is not None:
                router[i] = probs
            if block_kept is not None:
                kept[i] = block_kept
        x = self.norm(x)
        x = x[:, 0] if self.config["classifier"] == "token" else x.mean(dim=1)
        if self.pre_logits is not None:
            x = torch.tanh(self.pre_logits(x))
        logits = self.head(x)
        if not return_router:
            return logits
        return (logits, router, kept) if dispatch is not None else (logits, router)
