"""Reference vectors for a model2vec or sentence-transformers static model
directory, in plain numpy, for TestStaticLayoutsMatchReference.

    python3 static_ref.py DIR KIND TOKENIZE_ARGV_JSON < texts.json > vectors.json

KIND is query or passage. TOKENIZE_ARGV_JSON is the command line of
HuggingFace's tokenizers (internal/hftokenizers' ref.js), which tokenises
without special tokens. The rest follows model2vec's StaticModel.encode and
sentence-transformers' StaticEmbedding + Normalize as their sources read,
written here again without importing either.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I8": np.int8,
          "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def tokenize(argv, tokenizer_json, texts):
    p = subprocess.run(argv + ["encode", tokenizer_json, "0", "plain"], input=json.dumps(texts).encode(),
                       stdout=subprocess.PIPE, check=True)
    return json.loads(p.stdout)


def vocab_of(tokenizer_json):
    """Tokenizer.get_vocab(): the model's vocabulary and the added tokens."""
    with open(tokenizer_json, encoding="utf-8") as f:
        doc = json.load(f)
    model = doc["model"]
    if model["type"] == "Unigram":
        vocab = {piece: i for i, (piece, _) in enumerate(model["vocab"])}
        unk = None  # the Python binding's Unigram has no unk_token
    else:
        vocab = dict(model["vocab"])
        unk = model.get("unk_token")
    for a in doc.get("added_tokens", []):
        vocab[a["content"]] = a["id"]
    return vocab, unk


def prompts(d):
    path = os.path.join(d, "config_sentence_transformers.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f).get("prompts") or {}


def main():
    d, kind, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    texts = json.load(sys.stdin)
    p = prompts(d)
    prefix = p.get("query", "") if kind == "query" else p.get("document", p.get("passage", ""))
    texts = [prefix + t for t in texts]
    cfg_path = os.path.join(d, "config.json")
    cfg = json.load(open(cfg_path)) if os.path.exists(cfg_path) else {}
    if cfg.get("model_type") == "model2vec":
        # model2vec: StaticModel.tokenize and _encode_batch, max_length 512.
        tok = os.path.join(d, "tokenizer.json")
        vocab, unk = vocab_of(tok)
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda x: x[1])]
        median = int(np.median([len(t) for t in tokens]))
        texts = [t[:512 * median] for t in texts]
        ids = tokenize(argv, tok, texts)
        if unk is not None:
            ids = [[i for i in row if i != vocab[unk]] for row in ids]
        ids = [row[:512] for row in ids]
        st = read_safetensors(os.path.join(d, "model.safetensors"))
        # model2vec averages in the file's dtype, so a float16 file gives
        # float16 vectors; xling (and this reference) average in float32.
        emb, weights, mapping = st["embeddings"].astype(np.float32), st.get("weights"), st.get("mapping")
        out = []
        for row in ids:
            if not row:
                out.append(np.zeros(emb.shape[1]))
                continue
            e = emb[row if mapping is None else mapping[row]]
            if weights is not None:
                e = e * weights[row][:, None]
            out.append(e.mean(axis=0))
        out = np.stack(out)
        if cfg.get("normalize", False):
            out = out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-32)
    else:
        # sentence-transformers: modules.json, StaticEmbedding's EmbeddingBag
        # (mode mean: an empty bag is zeros), then Normalize if listed.
        modules = json.load(open(os.path.join(d, "modules.json")))
        sub = os.path.join(d, modules[0]["path"])
        ids = tokenize(argv, os.path.join(sub, "tokenizer.json"), texts)
        st = read_safetensors(os.path.join(sub, "model.safetensors"))
        emb = st["embedding.weight"] if "embedding.weight" in st else st["embeddings"]
        emb = emb.astype(np.float32)
        out = np.stack([emb[row].mean(axis=0) if row else np.zeros(emb.shape[1], np.float32) for row in ids])
        if any(m["type"] == "sentence_transformers.models.Normalize" for m in modules[1:]):
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    json.dump(out.astype(np.float64).tolist(), sys.stdout)


main()
