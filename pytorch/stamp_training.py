"""Add how a checkpoint was trained to its config: the "method" and "train_seed" keys that
train.py writes, for files that predate them (the issue-7 seed-0 pair).

    /usr/bin/python3 pytorch/stamp_training.py FILE --method vmoe --train-seed 0

Only the header changes: the tensor bytes are checked to be identical before the file is
replaced, so forward passes, predictions and goldens stay the same; the sha256 changes.
"""
import argparse
import json
import os
import struct
import sys

from export import export, load
from vmoe import VMoE

METHODS = ("vmoe", "prc", "jsd", "adv", "none")


def data_section(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--train-seed", required=True, type=int)
    args = ap.parse_args()
    if args.train_seed < 0:
        sys.exit(f"{args.file}: --train-seed must be >= 0")
    try:
        config, state = load(args.file)
    except (OSError, ValueError) as e:
        sys.exit(str(e))
    for key, value in (("method", args.method), ("train_seed", args.train_seed)):
        if key in config and config[key] != value:
            sys.exit(f"{args.file}: config already says {key} = {config[key]!r}")
        config[key] = value
    model = VMoE(config)
    model.load_state_dict(state)
    tmp = args.file + ".tmp"
    export(model, config, tmp)
    if data_section(tmp) != data_section(args.file):
        os.unlink(tmp)
        sys.exit(f"{args.file}: the tensors would change; left as it was")
    os.replace(tmp, args.file)


if __name__ == "__main__":
    main()
