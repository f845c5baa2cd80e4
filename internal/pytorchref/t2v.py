"""An inference server built the way weaviate/t2v-transformers-models builds
its image: FastAPI on uvicorn with one worker, each POST /vectors answered by
one PyTorch forward pass in a thread of a ThreadPoolExecutor (vectorizer.py's
Vectorizer), masked-mean pooling. The encoder is bert.py's, over the same
model directory xling serves. Tokens are pre-computed: --tokens names a JSON
file {"query": {text: ids}, "passage": {text: ids}} written by the benchmark
with xling's tokenizer (which gives HuggingFace's ids), so that the Python
side pays no tokenisation.

  t2v.py --model DIR --tokens FILE --port N --threads T
"""
import argparse
import asyncio
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert import Encoder, set_blas_threads  # noqa: E402


class VectorInputConfig(BaseModel):
    pooling_strategy: Optional[str] = None
    task_type: Optional[str] = None


class VectorInput(BaseModel):
    text: str
    config: Optional[VectorInputConfig] = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    enc = Encoder(args.model).eval()
    with open(args.tokens) as f:
        tokens = json.load(f)
    executor = ThreadPoolExecutor()
    app = FastAPI()

    def vectorize(ids):
        with torch.no_grad():
            t = torch.tensor([ids], dtype=torch.long)
            mask = torch.ones_like(t)
            return enc.pool(enc(t, mask), mask)[0].tolist()

    @app.get("/.well-known/live", response_class=Response)
    @app.get("/.well-known/ready", response_class=Response)
    def ready(response: Response):
        response.status_code = 204

    @app.get("/meta")
    def meta():
        return {"model": enc.cfg}

    @app.post("/vectors")
    @app.post("/vectors/")
    async def vectors(item: VectorInput):
        kind = "query" if item.config is not None and item.config.task_type == "query" else "passage"
        ids = tokens[kind].get(item.text)
        if ids is None:
            raise HTTPException(status_code=500, detail="text not pre-tokenised")
        vector = await asyncio.wrap_future(executor.submit(vectorize, ids))
        return {"text": item.text, "vector": vector, "dim": len(vector)}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
