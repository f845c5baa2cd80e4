"""An independent BERT / XLM-R encoder in plain PyTorch, for parity tests
and benchmarks of xling's gotch encoder, and a static-embedding encoder
(nn.EmbeddingBag) for xling's Go one. It reads the same model directory
(config.json, model.safetensors, xling.json) and shares no code with xling.

  encode: stdin {"ids": [[...], ...]} -> stdout {"vectors": [[...], ...]}
          (--int8: the linear layers through quantize_dynamic)
  bench:  --batch N --seq L --seconds S -> stdout {"sentences_per_second": x}
  train:  --batch N --seq L --seconds S -> stdout {"pairs_per_second": x}
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise SystemExit(f"{name}: dtype {entry['dtype']} not supported here")
        start, end = entry["data_offsets"]
        arr = np.frombuffer(data[base + start:base + end], dtype="<f4").copy()
        out[name] = torch.from_numpy(arr).reshape(entry["shape"])
    return out


class Encoder(torch.nn.Module):
    def __init__(self, model_dir):
        super().__init__()
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        opts = {"pooling": "masked_mean", "normalize": True}
        p = os.path.join(model_dir, "xling.json")
        if os.path.exists(p):
            with open(p) as f:
                opts.update(json.load(f))
        self.opts = opts
        weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.w = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v) for k, v in weights.items()})
        self.qlin = None

    def p(self, name):
        return self.w[name.replace(".", "__")]

    def forward(self, ids, mask, train=False):
        cfg = self.cfg
        hidden = cfg["hidden_size"]
        heads = cfg["num_attention_heads"]
        dh = hidden // heads
        eps = cfg["layer_norm_eps"]
        b, t = ids.shape
        if cfg["model_type"] == "xlm-roberta":
            pos = torch.cumsum(mask, dim=1) * mask + cfg["pad_token_id"]
        else:
            pos = torch.arange(t).unsqueeze(0).expand(b, t)
        x = F.embedding(ids, self.p("embeddings.word_embeddings.weight"))
        x = x + F.embedding(pos, self.p("embeddings.position_embeddings.weight"))
        x = x + self.p("embeddings.token_type_embeddings.weight")[0]
        x = F.layer_norm(x, (hidden,), self.p("embeddings.LayerNorm.weight"), self.p("embeddings.LayerNorm.bias"), eps)
        drop = cfg.get("hidden_dropout_prob", 0.1)
        x = F.dropout(x, drop, train)
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9
        act = "none" if cfg["hidden_act"] == "gelu" else "tanh"
        for i in range(cfg["num_hidden_layers"]):
            pre = f"encoder.layer.{i}."
            lin = lambda z, n: self.linear(pre + n, z)
            split = lambda z: z.view(b, t, heads, dh).transpose(1, 2)
            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            s = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
            a = F.dropout(torch.softmax(s, dim=-1), cfg.get("attention_probs_dropout_prob", 0.1), train)
            ctx = (a @ v).transpose(1, 2).reshape(b, t, hidden)
            h = F.dropout(lin(ctx, "attention.output.dense"), drop, train)
            x = F.layer_norm(h + x, (hidden,), self.p(pre + "attention.output.LayerNorm.weight"), self.p(pre + "attention.output.LayerNorm.bias"), eps)
            h = F.gelu(lin(x, "intermediate.dense"), approximate=act)
            h = F.dropout(lin(h, "output.dense"), drop, train)
            x = F.layer_norm(h + x, (hidden,), self.p(pre + "output.LayerNorm.weight"), self.p(pre + "output.LayerNorm.bias"), eps)
        return x

    def linear(self, name, z):
        if self.qlin is not None:
            return self.qlin[name.replace(".", "__")](z)
        return F.linear(z, self.p(name + ".weight"), self.p(name + ".bias"))

    def quantize(self):
        """torch.ao.quantization.quantize_dynamic over the encoder's linear
        layers, on the oneDNN engine (Debian's torch has no FBGEMM)."""
        torch.backends.quantized.engine = "onednn"
        mods = torch.nn.ModuleDict()
        for i in range(self.cfg["num_hidden_layers"]):
            for n in ["attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense", "intermediate.dense", "output.dense"]:
                name = f"encoder.layer.{i}.{n}"
                w, b = self.p(name + ".weight"), self.p(name + ".bias")
                lin = torch.nn.Linear(w.shape[1], w.shape[0])
                with torch.no_grad():
                    lin.weight.copy_(w)
                    lin.bias.copy_(b)
                mods[name.replace(".", "__")] = lin
        self.qlin = torch.ao.quantization.quantize_dynamic(mods, {torch.nn.Linear}, dtype=torch.qint8)

    def pool(self, h, mask):
        if self.opts["pooling"] == "cls":
            v = h[:, 0]
        else:
            m = mask.unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        if self.opts["normalize"]:
            v = F.normalize(v, dim=-1)
        return v


class StaticEncoder(torch.nn.Module):
    """model_type static: token vectors averaged by nn.EmbeddingBag (pad
    excluded), an optional linear projection, L2 normalisation."""

    def __init__(self, model_dir, sparse=False):
        super().__init__()
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        emb = w["embeddings.weight"]
        self.bag = torch.nn.EmbeddingBag(emb.shape[0], emb.shape[1], mode="mean", sparse=sparse,
                                         padding_idx=self.cfg.get("pad_token_id", 0))
        with torch.no_grad():
            self.bag.weight.copy_(emb)
        self.proj = None
        if "projection.weight" in w:
            self.proj = torch.nn.Linear(emb.shape[1], w["projection.weight"].shape[0])
            with torch.no_grad():
                self.proj.weight.copy_(w["projection.weight"])
                self.proj.bias.copy_(w["projection.bias"])

    def encode(self, ids):
        v = self.bag(ids)
        if self.proj is not None:
            v = self.proj(v)
        return F.normalize(v, dim=-1)


def static_main(args):
    enc = StaticEncoder(args.model, sparse=args.mode == "train")
    pad_id = enc.cfg.get("pad_token_id", 0)
    if args.mode == "encode":
        req = json.load(sys.stdin)
        ids, _ = pad(req["ids"], pad_id)
        with torch.no_grad():
            vecs = enc.encode(ids)
        json.dump({"vectors": vecs.tolist()}, sys.stdout)
        return
    gen = torch.Generator().manual_seed(1)
    vocab = enc.cfg["vocab_size"]
    ids = torch.randint(5, vocab, (args.batch, args.seq), generator=gen)
    if args.mode == "bench":
        with torch.no_grad():
            rate = best_rate(args, lambda: enc.encode(ids), args.batch)
        json.dump({"sentences_per_second": rate}, sys.stdout)
        return
    # train: InfoNCE over in-batch negatives, sparse gradients for the table
    # (SparseAdam), clipped to a global norm of 1, as the Go side does.
    passages = torch.randint(5, vocab, (args.batch, args.seq), generator=gen)
    opts = [torch.optim.SparseAdam([enc.bag.weight], lr=0.05)]
    if enc.proj is not None:
        opts.append(torch.optim.AdamW(enc.proj.parameters(), lr=0.05, weight_decay=0.01))

    def step():
        for o in opts:
            o.zero_grad()
        logits = enc.encode(ids) @ enc.encode(passages).T / args.temperature
        F.cross_entropy(logits, torch.arange(args.batch)).backward()
        g = enc.bag.weight.grad.coalesce()
        enc.bag.weight.grad = g
        sq = g._values().pow(2).sum()
        if enc.proj is not None:
            sq = sq + sum(p.grad.pow(2).sum() for p in enc.proj.parameters())
        norm = sq.sqrt()
        if norm > 1:
            enc.bag.weight.grad = g * (1 / (norm + 1e-6))
            if enc.proj is not None:
                for p in enc.proj.parameters():
                    p.grad.mul_(1 / (norm + 1e-6))
        for o in opts:
            o.step()

    json.dump({"pairs_per_second": best_rate(args, step, args.batch)}, sys.stdout)


def best_rate(args, fn, per_call):
    """The best of three rounds: on a shared machine the fastest round is the
    one least disturbed by other work. The Go side does the same."""
    fn()  # warm-up
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds / 3:
            fn()
            n += per_call
        best = max(best, n / (time.perf_counter() - start))
    return best


def set_blas_threads(n):
    """OpenBLAS keeps its own pool, which torch.set_num_threads leaves alone;
    xling's Go side limits it the same way."""
    import ctypes
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name, mode=getattr(os, "RTLD_NOLOAD", 4) | os.RTLD_NOW)
        except OSError:
            continue
        if hasattr(lib, "openblas_set_num_threads"):
            lib.openblas_set_num_threads(n)
            return


def pad(batch, pad_id):
    t = max(len(x) for x in batch)
    ids = torch.full((len(batch), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), t), dtype=torch.long)
    for i, x in enumerate(batch):
        ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    return ids, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["encode", "bench", "train"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--int8", action="store_true", help="dynamic int8 linear layers (quantize_dynamic)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    with open(os.path.join(args.model, "config.json")) as f:
        if json.load(f).get("model_type") == "static":
            static_main(args)
            return
    enc = Encoder(args.model)
    if args.int8:
        enc.quantize()
    pad_id = enc.cfg.get("pad_token_id", 0)
    vocab = enc.cfg["vocab_size"]

    if args.mode == "encode":
        req = json.load(sys.stdin)
        with torch.no_grad():
            ids, mask = pad(req["ids"], pad_id)
            vecs = enc.pool(enc(ids, mask), mask)
        json.dump({"vectors": vecs.tolist()}, sys.stdout)
        return

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (args.batch, args.seq), generator=gen)
    mask = torch.ones_like(ids)

    if args.mode == "bench":
        with torch.no_grad():
            rate = best_rate(args, lambda: enc.pool(enc(ids, mask), mask), args.batch)
        json.dump({"sentences_per_second": rate}, sys.stdout)
        return

    # train: one InfoNCE step over in-batch negatives per iteration, AdamW.
    opt = torch.optim.AdamW(enc.parameters(), lr=3e-5, weight_decay=0.01)
    passages = torch.randint(5, vocab, (args.batch, args.seq), generator=gen)

    def step():
        q = enc.pool(enc(ids, mask, train=True), mask)
        p = enc.pool(enc(passages, mask, train=True), mask)
        logits = q @ p.T / args.temperature  # 0.05, as the Go side
        loss = F.cross_entropy(logits, torch.arange(args.batch))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()

    json.dump({"pairs_per_second": best_rate(args, step, args.batch)}, sys.stdout)


if __name__ == "__main__":
    main()
