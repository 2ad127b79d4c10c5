"""Shared test vectors for the patch-correspondence rule (docs/views.md).

PyTorch training (train.py's patch_correspondence) and the C replay (analyze/input/view.c's
rs_view_match) must map patches identically; this script writes cases computed by the
PyTorch side to tests/golden/correspondence.json, and tests/test_view.c checks that C
gives the same matches. Views are crop boxes (x0, y0, w, h in source pixels) resized to
the input, then optionally flipped, as in PRC training.

    /usr/bin/python3 pytorch/correspondence.py
"""
import json
import random
from pathlib import Path

import torch

from train import patch_correspondence

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "correspondence.json"


def view(x0, y0, w, h, flip):
    return {"x0": x0, "y0": y0, "w": w, "h": h, "flip": flip}


def batch(views):
    return {k: torch.tensor([v[k] for v in views], dtype=torch.bool if k == "flip" else torch.float64)
            for k in ("x0", "y0", "w", "h", "flip")}


def main():
    rng = random.Random(2026)
    cases = []
    # Hand-picked: identity, flip, quarter crop at 2x (both ways), half-patch shift,
    # boxes whose centres land exactly on patch boundaries and on the right edge.
    hand = [((28, 28), 4, view(0, 0, 28, 28, False), view(0, 0, 28, 28, False)),
            ((28, 28), 4, view(0, 0, 28, 28, False), view(0, 0, 28, 28, True)),
            ((32, 32), 4, view(0, 0, 32, 32, False), view(0, 0, 16, 16, False)),
            ((32, 32), 4, view(0, 0, 16, 16, False), view(0, 0, 32, 32, False)),
            ((28, 28), 4, view(0, 0, 28, 28, False), view(2, 0, 28, 28, False)),
            ((28, 28), 4, view(4, 4, 14, 14, True), view(0, 0, 28, 28, False)),
            ((24, 16), 4, view(0, 0, 8, 12, False), view(4, 6, 8, 12, True))]
    for size, patch, a, b in hand:
        cases.append((size, patch, a, b))
    # Random inception-style boxes (whole pixels) with random flips.
    for _ in range(200):
        H, W = rng.choice([(28, 28), (32, 32), (24, 16), (224, 224)])
        patch = 4 if H < 100 else 32

        def box():
            w, h = rng.randint(1, W), rng.randint(1, H)
            return view(rng.randint(0, W - w), rng.randint(0, H - h), w, h, rng.random() < 0.5)
        cases.append(((H, W), patch, box(), box()))
    out = []
    for (H, W), patch, a, b in cases:
        match = patch_correspondence(batch([a]), batch([b]), (H, W), patch)[0].tolist()
        out.append({"size": [H, W], "patch": patch, "a": a, "b": b, "match": match})
    OUT.write_text(json.dumps({"about": __doc__.splitlines()[0], "cases": out}, indent=None) + "\n")
    print(f"wrote {len(out)} cases to {OUT}")


if __name__ == "__main__":
    main()
