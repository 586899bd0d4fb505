#!/usr/bin/env python3
"""Pretrain the "big base" Llama (hidden 512, 8 layers) for fedlora on a GPU.

Invoked on the GPU machine (device `run` tool) from the repository root, with the inputs
prepared locally under .gpu/ (see bench/big_base/README.md):

    export PYTHONUNBUFFERED=1; set -o pipefail
    python3 bench/big_base/pretrain_gpu.py --data .gpu --out "$OUT" \
        --runs 2e-3:1500,2e-3:3000,1e-3:3000 --eval-every 100 --patience 6 --time-budget 400 \
        2>&1 | tee "$OUT/train.log"

Inputs (.gpu/):
  corpus_wiki.txt      WikiText-2 valid.txt from byte 200,000 to the end, one line per original
                       line, whitespace-only lines skipped (the tokenizer corpus too)
  plays_by_speaker.tsv Shakespeare (columns line_id, play, speaker, act.scene.line, text)
  dev_wiki.txt         valid.txt bytes 100,000-200,000, cut at line boundaries (complete lines
                       only), whitespace-only lines skipped: dev text for early stopping
  init/config.json     written by `fedlora pretrain ... --steps 1` (our Llama config)
  init/tokenizer.model the sentencepiece model it trained on corpus_wiki.txt (BOS=1, EOS=2)
  init/expected_tensors.json  name -> shape of every tensor in that run's model.safetensors

Protocol (keeps evaluation honest): valid.txt bytes 0-100,000 are the evaluation text and never
reach this script. Training text = corpus_wiki.txt lines + every `text` field of the TSV (one
line each; whitespace-only lines skipped as `fedlora pretrain` does). The token stream is built
exactly as the C++ `MakeWindows`: per line [BOS] + sentencepiece ids + [EOS], concatenated,
cut into windows of `max_position_embeddings` (128) tokens, the last window zero-padded (mask 0)
and dropped if it holds a single real token. Loss = mean next-token NLL over real targets.

Model: transformers LlamaForCausalLM built from init/config.json; the script asserts that the
HF config reproduces it (head_dim, rms eps, rope theta (default rope), no biases, silu, tied
embeddings as configured) and that the state dict's names/shapes equal expected_tensors.json.
Training: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices only), linear warmup + cosine to
10% of peak, bf16 autocast, batch 64 windows, grad clip 1.0. Dev loss (fp32) every --eval-every
steps; the best-dev weights are kept; a run stops after --patience evals without improvement, at its
planned steps, or when its share of --time-budget runs out. --runs LR:STEPS,... trains each
(peak lr, cosine length) in turn from the same init; the best-dev weights over all are saved.

Outputs ($OUT): model-0000K.safetensors shards (float16, HF names, each < 15 MiB; lm_head.weight
only if untied) and log.json (config, steps, train/dev losses, best dev loss/perplexity, the
C++-`perplexity`-style score of dev_wiki.txt with the fp16-rounded weights for cross-checking).
"""
import argparse
import inspect
import json
import math
import os
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

BOS, EOS = 1, 2


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l for l in f.read().split("\n") if l.strip()]


def read_tsv_texts(path):
    out = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        ti = header.index("text")
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) != len(header):
                raise ValueError(f"bad TSV row: {line!r}")
            if cols[ti].strip():
                out.append(cols[ti])
    return out


def make_windows(sp, lines, seq_len):
    """Mirror of device/src/trainer.cc MakeWindows: returns (ids, mask) int64 [n, seq_len]."""
    stream = []
    for ids in sp.encode(lines):
        stream.append(BOS)
        stream.extend(ids)
        stream.append(EOS)
    n = (len(stream) + seq_len - 1) // seq_len
    ids = np.zeros(n * seq_len, np.int64)
    mask = np.zeros(n * seq_len, np.int64)
    ids[: len(stream)] = stream
    mask[: len(stream)] = 1
    ids, mask = ids.reshape(n, seq_len), mask.reshape(n, seq_len)
    if n > 1 and len(stream) % seq_len == 1:
        ids, mask = ids[:-1], mask[:-1]
    return torch.from_numpy(ids), torch.from_numpy(mask)


def cpp_perplexity_windows(sp, text, w):
    """Mirror of `fedlora perplexity`: [BOS] + ids of the whole file, windows of w overlapping by 1."""
    ids = [BOS] + sp.encode(text)
    out, step, start = [], max(w - 1, 1), 0
    while start + 1 < len(ids):
        end = min(len(ids), start + w)
        out.append(ids[start:end])
        if end == len(ids):
            break
        start += step
    return out


def build_model(cfg_json):
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
            "max_position_embeddings", "initializer_range", "rms_norm_eps", "bos_token_id",
            "eos_token_id", "tie_word_embeddings", "attention_bias", "mlp_bias", "rope_theta"]
    kw = {k: cfg_json[k] for k in keys if k in cfg_json}
    kw.update(attention_dropout=0.0, use_cache=False, pad_token_id=None)
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:  # transformers >= 5
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": kw.pop("rope_theta")}
    cfg = LlamaConfig(**kw)
    model = LlamaForCausalLM(cfg)
    # The HF config must reproduce ours exactly.
    a = model.model.layers[0].self_attn
    assert cfg.head_dim == cfg_json["head_dim"] == cfg_json["hidden_size"] // cfg_json["num_attention_heads"]
    assert a.q_proj.bias is None and a.o_proj.bias is None
    assert model.model.layers[0].mlp.gate_proj.bias is None
    assert cfg.hidden_act == "silu" and cfg_json["hidden_act"] == "silu"
    assert abs(model.model.norm.variance_epsilon - cfg_json["rms_norm_eps"]) < 1e-12
    assert abs(model.model.layers[0].input_layernorm.variance_epsilon - cfg_json["rms_norm_eps"]) < 1e-12
    hd = cfg_json["head_dim"]
    want_inv = 1.0 / (cfg_json["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    rot = model.model.rotary_emb
    assert torch.allclose(rot.inv_freq.float().cpu(), want_inv, rtol=1e-6), "rope mismatch"
    assert getattr(rot, "attention_scaling", 1.0) == 1.0
    assert abs(a.scaling - hd ** -0.5) < 1e-9
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied == bool(cfg_json["tie_word_embeddings"]), "tie_word_embeddings mismatch"
    return model, cfg


def export_state(model, tied):
    sd = {}
    for k, v in model.state_dict().items():
        if tied and k == "lm_head.weight":
            continue
        if "rotary_emb" in k:
            continue
        sd[k] = v.detach().float().cpu().clone()
    return sd


def lm_loss(model, ids, mask):
    logits = model(input_ids=ids).logits
    tgt = ids[:, 1:]
    m = mask[:, 1:].bool()
    nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), tgt.reshape(-1),
                          reduction="none").view_as(tgt)
    return (nll * m).sum(), m.sum()


@torch.no_grad()
def dev_loss(model, ids, mask, bs=256):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, ids.size(0), bs):
        s, c = lm_loss(model, ids[i:i + bs], mask[i:i + bs])
        tot += s.item()
        n += c.item()
    model.train()
    return tot / n


@torch.no_grad()
def cpp_style_nll(model, windows, dev):
    model.eval()
    tot, n = 0.0, 0
    for w in windows:
        x = torch.tensor([w], device=dev)
        s, c = lm_loss(model, x, torch.ones_like(x))
        tot += s.item()
        n += c.item()
    return tot / n, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".gpu")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--runs", default="2e-3:3000",
                    help="comma-separated LR:STEPS runs (peak lr, cosine length); best dev kept")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--time-budget", type=float, default=420.0, help="seconds for all training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-mib", type=float, default=14.0)
    args = ap.parse_args()
    t_start = time.time()
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    cfg_json = json.load(open(os.path.join(args.data, "init/config.json")))
    expected = json.load(open(os.path.join(args.data, "init/expected_tensors.json")))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.data, "init/tokenizer.model"))
    assert sp.bos_id() == BOS and sp.eos_id() == EOS and sp.get_piece_size() == cfg_json["vocab_size"]
    seq = cfg_json["max_position_embeddings"]

    wiki = read_lines(os.path.join(args.data, "corpus_wiki.txt"))
    shk = read_tsv_texts(os.path.join(args.data, "plays_by_speaker.tsv"))
    dev_lines = read_lines(os.path.join(args.data, "dev_wiki.txt"))
    tr_ids, tr_mask = make_windows(sp, wiki + shk, seq)
    dv_ids, dv_mask = make_windows(sp, dev_lines, seq)
    with open(os.path.join(args.data, "dev_wiki.txt"), encoding="utf-8") as f:
        cpp_windows = cpp_perplexity_windows(sp, f.read(), seq)
    log = {"wiki_lines": len(wiki), "shakespeare_lines": len(shk), "dev_lines": len(dev_lines),
           "train_windows": tr_ids.size(0), "train_tokens": int(tr_mask.sum()),
           "dev_windows": dv_ids.size(0), "dev_tokens": int(dv_mask.sum()), "runs": [],
           "args": vars(args), "config": cfg_json,
           "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    print({k: v for k, v in log.items() if k not in ("config", "runs")}, flush=True)
    tr_ids, tr_mask = tr_ids.to(dev), tr_mask.to(dev)
    dv_ids, dv_mask = dv_ids.to(dev), dv_mask.to(dev)

    runs = [(float(r.split(":")[0]), int(r.split(":")[1])) for r in args.runs.split(",")]
    best = None  # (dev_loss, state, run_idx, step)
    for ri, (peak, total) in enumerate(runs):
        torch.manual_seed(args.seed)
        model, cfg = build_model(cfg_json)
        tied = bool(cfg_json["tie_word_embeddings"])
        model.to(dev).train()
        names = export_state(model, tied)
        assert {k: list(v.shape) for k, v in names.items()} == expected, "tensor names/shapes differ"
        nparams = sum(p.numel() for p in model.parameters())
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=peak, betas=(0.9, 0.95), eps=1e-8, fused=True)

        def lr_at(s):
            if s < args.warmup:
                return peak * (s + 1) / args.warmup
            p = min(1.0, (s - args.warmup) / max(1, total - args.warmup))
            return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

        run = {"lr": peak, "planned_steps": total, "parameters": nparams, "evals": []}
        now = time.time()
        budget_end = now + (t_start + args.time_budget - now) / (len(runs) - ri)
        g = torch.Generator(device="cpu").manual_seed(args.seed + ri)
        perm, pi = torch.randperm(tr_ids.size(0), generator=g), 0
        run_best, bad, t0, acc_s, acc_n = float("inf"), 0, time.time(), 0.0, 0
        step = 0
        for step in range(1, total + 1):
            if pi + args.batch > perm.numel():
                perm, pi = torch.randperm(tr_ids.size(0), generator=g), 0
            idx = perm[pi:pi + args.batch].to(dev)
            pi += args.batch
            for gr in opt.param_groups:
                gr["lr"] = lr_at(step - 1)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                s, c = lm_loss(model, tr_ids[idx], tr_mask[idx])
            loss = s / c
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            acc_s += loss.item() if step % 10 == 0 else 0.0
            acc_n += 1 if step % 10 == 0 else 0
            if step % args.eval_every == 0 or step == total:
                dl = dev_loss(model, dv_ids, dv_mask)
                tl = acc_s / max(acc_n, 1)
                acc_s, acc_n = 0.0, 0
                el = time.time() - t0
                run["evals"].append({"step": step, "train_loss": tl, "dev_loss": dl,
                                     "dev_ppl": math.exp(dl), "lr": lr_at(step - 1), "seconds": el})
                mark = ""
                if dl < run_best - 1e-4:
                    run_best, bad, mark = dl, 0, " *"
                    if best is None or dl < best[0]:
                        best = (dl, export_state(model, tied), ri, step)
                else:
                    bad += 1
                print(f"run {ri} lr {peak:g}/{total} step {step} train {tl:.4f} dev {dl:.4f} ppl {math.exp(dl):.2f} "
                      f"{el:.0f}s{mark}", flush=True)
                if bad >= args.patience or time.time() > budget_end:
                    break
        run["steps"] = step
        run["best_dev_loss"] = run_best
        run["best_dev_ppl"] = math.exp(run_best)
        run["seconds"] = time.time() - t0
        log["runs"].append(run)
        del model, opt
        torch.cuda.empty_cache()

    dl, state, ri, bstep = best
    log.update(best_run=ri, best_lr=runs[ri][0], best_planned_steps=runs[ri][1], best_step=bstep, best_dev_loss=dl, best_dev_ppl=math.exp(dl))
    # Cross-check with the fp16-rounded weights, as the C++ side will see them (fp32 compute).
    model, _ = build_model(cfg_json)
    res = model.load_state_dict({k: v.half().float() for k, v in state.items()}, strict=False)
    assert not res.unexpected_keys and set(res.missing_keys) <= {"lm_head.weight"}, res
    if cfg_json["tie_word_embeddings"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.to(dev)
    torch.backends.cuda.matmul.allow_tf32 = False
    fp16_dev = dev_loss(model, dv_ids, dv_mask)
    cnll, ctok = cpp_style_nll(model, cpp_windows, dev)
    log.update(fp16_dev_loss=fp16_dev, fp16_dev_ppl=math.exp(fp16_dev),
               cpp_style_dev_file_nll=cnll, cpp_style_dev_file_ppl=math.exp(cnll),
               cpp_style_dev_file_tokens=ctok)
    print(f"best run {ri} lr {runs[ri][0]:g}/{runs[ri][1]} step {bstep} dev {dl:.4f} ppl {math.exp(dl):.2f}; fp16 dev {fp16_dev:.4f}; "
          f"cpp-style dev_wiki.txt nll {cnll:.4f} ppl {math.exp(cnll):.2f} ({ctok} tokens)", flush=True)

    # Float16 shards, each under --shard-mib.
    os.makedirs(args.out, exist_ok=True)
    limit = int(args.shard_mib * 1024 * 1024)
    shards, cur, cur_bytes = [], {}, 0
    for k in sorted(state):
        t = state[k].half().contiguous()
        nb = t.numel() * 2
        if cur and cur_bytes + nb > limit:
            shards.append(cur)
            cur, cur_bytes = {}, 0
        cur[k] = t
        cur_bytes += nb
    if cur:
        shards.append(cur)
    files = []
    for i, sh in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(sh, os.path.join(args.out, name), metadata={"format": "pt"})
        files.append(name)
    log["shards"] = files
    log["total_seconds"] = time.time() - t_start
    with open(os.path.join(args.out, "log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print("wrote", files, f"total {time.time() - t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
