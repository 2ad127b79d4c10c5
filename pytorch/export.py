"""Write and read routerscope `.safetensors` files by hand (no safetensors package here).

Layout: u64 little-endian header length N, N bytes of JSON header padded with spaces so
that 8 + N is a multiple of 8, then the tensor data, contiguous, in sorted-name order.
Header: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [b, e]}},
offsets relative to the start of the data section.

CLI: export a randomly initialised model (see make_model) for a config file:
    /usr/bin/python3 pytorch/export.py --config cfg.json --seed 0 [--dtype BF16] out.safetensors
"""
import argparse
import json
import math
import struct

import numpy as np
import torch

from vmoe import VMoE, check_config, check_state_dict

# safetensors dtype -> (torch dtype it is rounded to, little-endian raw numpy dtype)
DTYPES = {"F32": (torch.float32, "<u4"), "F16": (torch.float16, "<u2"),
          "BF16": (torch.bfloat16, "<u2")}
RAW_TORCH = {"<u4": torch.int32, "<u2": torch.int16}  # same-size integer views of the bits


def write_safetensors(path, tensors, metadata, dtype="F32"):
    """Write {name: tensor} rounded to `dtype` ("F32", "F16" or "BF16")."""
    tdtype, raw = DTYPES[dtype]
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", tdtype).contiguous()  # round to nearest even
        blob = t.view(RAW_TORCH[raw]).numpy().astype(raw).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)  # every blob is a whole number of elements: offsets stay aligned
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    """Return (metadata, {name: float32 tensor}); F16/BF16 are widened exactly.
    Raises ValueError naming the file and the first problem found."""
    with open(path, "rb") as f:
        data = f.read()

    def fail(msg):
        raise ValueError(f"{path}: {msg}")

    if len(data) < 8:
        fail("shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        fail(f"header length {n} runs past the end of the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"header is not valid JSON: {e}")
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        fail("__metadata__ must map strings to strings")
    body = memoryview(data)[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            fail(f"{name}: entry needs dtype, shape and two data_offsets")
        if dtype not in DTYPES:
            fail(f"{name}: unsupported dtype {dtype!r} (F32, F16, BF16)")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            fail(f"{name}: bad shape {shape}")
        raw = np.dtype(DTYPES[dtype][1])
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(body)):
            fail(f"{name}: data_offsets {[begin, end]} outside the data section "
                 f"({len(body)} bytes)")
        if end - begin != math.prod(shape) * raw.itemsize:
            fail(f"{name}: {end - begin} bytes for shape {shape} of {dtype}")
        bits = np.frombuffer(body[begin:end], dtype=raw)
        if dtype == "F32":
            values = bits.view("<f4")
        elif dtype == "F16":
            values = bits.view("<f2").astype(np.float32)
        else:  # bfloat16 is the top half of a float32
            values = (bits.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = torch.from_numpy(values.astype(np.float32).reshape(shape))
        spans.append((begin, end, name))
    spans.sort()
    for (_, end_a, a), (begin_b, _, b) in zip(spans, spans[1:]):
        if begin_b < end_a:
            fail(f"tensors {a} and {b} overlap")
    return metadata, tensors


def export(model, config, path, dtype="F32"):
    """Write `model` (a VMoE for `config`) as a routerscope checkpoint, weights rounded to dtype."""
    check_config(config)
    state = model.state_dict()
    check_state_dict(config, state)
    metadata = {"format": "routerscope-vmoe", "config": json.dumps(config)}
    write_safetensors(path, state, metadata, dtype)


def load(path):
    """Read a routerscope checkpoint: (config, state_dict of float32 tensors), validated."""
    metadata, state = read_safetensors(path)
    if metadata.get("format") != "routerscope-vmoe":
        raise ValueError(f"{path}: __metadata__.format is {metadata.get('format')!r}, "
                         "expected 'routerscope-vmoe'")
    try:
        config = json.loads(metadata["config"])
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: __metadata__.config missing or not JSON: {e}") from None
    try:
        check_config(config)
        check_state_dict(config, state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return config, state


def load_model(path):
    """The float32 VMoE stored at `path`, in eval mode."""
    config, state = load(path)
    model = VMoE(config)
    model.load_state_dict(state)
    return model.eval()


def make_model(config, seed, router_gain=3.0):
    """A randomly initialised VMoE for tests and benchmarks, deterministic in `seed`.

    Weights are N(0, 1/fan_in) so activations stay O(1) through the blocks; biases and
    LayerNorm affines are non-trivial so that every parameter matters. Router weights get
    std router_gain/sqrt(D): logits then have std ~router_gain, so router softmaxes are
    peaked and top-k choices well separated (not near-uniform as with a small init)."""
    gen = torch.Generator().manual_seed(seed)
    model = VMoE(config)
    d = config["hidden"]
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("moe.router.weight"):
                p.copy_(noise * router_gain / d ** 0.5)
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(1 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            elif name in ("cls_token", "pos_embed"):
                p.copy_(0.5 * noise)
            else:  # fan-in: last dim of a [E,out,in] expert weight, else all but the first dim
                fan_in = p.shape[-1] if p.dim() == 3 else p[0].numel()
                p.copy_(noise / fan_in ** 0.5)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description="Export a random routerscope V-MoE checkpoint.")
    parser.add_argument("--config", required=True, help="model config JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="F32")
    parser.add_argument("output", help="path of the .safetensors file to write")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with open(args.config) as f:
        config = json.load(f)
    export(make_model(config, args.seed), config, args.output, args.dtype)
    print(f"wrote {args.output} ({args.dtype}, seed {args.seed})")


if __name__ == "__main__":
    main()
