#!/usr/bin/env python3
"""Merge the float16 safetensors shards written by pretrain_gpu.py into ONE float32
model.safetensors laid out like `fedlora pretrain`'s own output.

    python3 bench/big_base/merge_shards.py --shards DIR_WITH_SHARDS \
        --reference INIT_DIR/model.safetensors --out MODEL_DIR/model.safetensors

Only numpy is needed (the safetensors format is parsed by hand: 8-byte little-endian header
length, JSON header, raw little-endian data). Checks: the set of tensor names and every shape
equal the reference file's (the 1-step `fedlora pretrain` output), every shard tensor is F16 or
F32, values are finite. Output: every tensor F32, the header written exactly like the
reference's (compact JSON, `__metadata__` {"format": "pt"} first, names sorted, data in header
order, header padded with spaces to a multiple of 8 bytes).
"""
import argparse
import glob
import json
import os
import struct

import numpy as np

DTYPES = {"F16": np.float16, "F32": np.float32, "BF16": None}


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return n, header


def read_tensors(path):
    n, header = read_header(path)
    out = {}
    with open(path, "rb") as f:
        f.seek(8 + n)
        data = f.read()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in ("F16", "F32"):
            raise SystemExit(f"{path}: {name} has dtype {dt}, expected F16 or F32")
        b, e = info["data_offsets"]
        a = np.frombuffer(data[b:e], dtype=np.dtype(DTYPES[dt]).newbyteorder("<"))
        a = a.reshape(info["shape"]).astype(np.float32)
        if name in out:
            raise SystemExit(f"tensor {name} appears in two shards")
        out[name] = a
    return out


def write_safetensors(path, tensors, order):
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name in order:
        nb = tensors[name].nbytes
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + nb]}
        off += nb
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name in order:
            f.write(np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", required=True, help="folder holding model-*.safetensors shards")
    ap.add_argument("--reference", required=True, help="model.safetensors of the 1-step pretrain")
    ap.add_argument("--out", required=True, help="merged model.safetensors to write")
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.shards, "model-*.safetensors")))
    if not files:
        raise SystemExit(f"no model-*.safetensors shards in {args.shards}")
    tensors = {}
    for p in files:
        for k, v in read_tensors(p).items():
            if k in tensors:
                raise SystemExit(f"tensor {k} appears in two shards")
            tensors[k] = v
    ref_n, ref = read_header(args.reference)
    ref_meta = ref.pop("__metadata__", None)
    ref_order = sorted(ref, key=lambda k: ref[k]["data_offsets"][0])
    if set(tensors) != set(ref):
        raise SystemExit(f"name mismatch: missing {sorted(set(ref) - set(tensors))}, "
                         f"extra {sorted(set(tensors) - set(ref))}")
    for k in ref_order:
        if list(tensors[k].shape) != ref[k]["shape"]:
            raise SystemExit(f"{k}: shape {list(tensors[k].shape)} != reference {ref[k]['shape']}")
        if ref[k]["dtype"] != "F32":
            raise SystemExit(f"reference {k} is {ref[k]['dtype']}, expected F32")
        if not np.isfinite(tensors[k]).all():
            raise SystemExit(f"{k} has non-finite values")
    write_safetensors(args.out, tensors, ref_order)

    # Verify the written file against the reference header.
    n, out = read_header(args.out)
    meta = out.pop("__metadata__", None)
    assert meta == ref_meta, (meta, ref_meta)
    assert n == ref_n, f"header length {n} != reference {ref_n}"
    for k in ref:
        assert out[k] == ref[k], (k, out[k], ref[k])
    assert os.path.getsize(args.out) == os.path.getsize(args.reference)
    back = read_tensors(args.out)
    assert all(np.array_equal(back[k], tensors[k]) for k in tensors)
    total = sum(v.size for v in tensors.values())
    print(f"merged {len(files)} shards -> {args.out}: {len(tensors)} tensors, {total} parameters, "
          f"F32, header identical in layout to {args.reference}")


if __name__ == "__main__":
    main()
