"""Time the candidate attention kernels of the packed engine on real length mixes (SST-2 dev, IMDB test).

    python utils/measure_attention_kernels.py [--data ../shared/data] [--device cpu]

Prints milliseconds per call for each kernel at batch 1, 8 and 32 (MiniLM shapes: 12 heads x 32). The
figures behind `token_engine.default_attention_backend` are in docs/engine.md.
"""

import argparse
import gzip
import json
import os
import random
import time

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from transformers_prune.resources import default_model_dir
from transformers_prune.models.token_engine import PackedBatch, packed_attention

HEADS, HEAD_SIZE = 12, 32


def nested_jagged(query, key, value, batch, scale):
    offsets = batch.cu_seqlens.long()
    q, k, v = (torch.nested.nested_tensor_from_jagged(t, offsets).transpose(1, 2) for t in (query, key, value))
    return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).values()


def milliseconds(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - start) / repeats


def packed_batch(lengths: list[int], device) -> PackedBatch:
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    seq_len = max(lengths)
    indices = torch.cat([torch.arange(n) + i * seq_len for i, n in enumerate(lengths)]).to(device)
    hidden = torch.empty(sum(lengths), HEADS * HEAD_SIZE, device=device)
    return PackedBatch(hidden, indices, cu_seqlens, tuple(cu_seqlens.tolist()), seq_len, len(lengths), seq_len)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    with open(os.path.join(args.data, "glue/sst2/dev.jsonl"), encoding="utf-8") as f:
        sst2 = [json.loads(line)["sentence"] for line in f]
    with gzip.open(os.path.join(args.data, "imdb/test.jsonl.gz"), "rt", encoding="utf-8") as f:
        imdb = [json.loads(line)["text"] for line in f]
    random.Random(0).shuffle(imdb)
    kernels = {
        "sdpa_per_example": lambda q, k, v, b: packed_attention(q, k, v, b, HEAD_SIZE**-0.5, "sdpa_per_example"),
        "sdpa_padded": lambda q, k, v, b: packed_attention(q, k, v, b, HEAD_SIZE**-0.5, "sdpa_padded"),
        "nested_jagged": lambda q, k, v, b: nested_jagged(q, k, v, b, HEAD_SIZE**-0.5),
    }
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    for name, texts in (("sst2-dev", sst2), ("imdb-test", imdb)):
        for batch_size in (1, 8, 32):
            lengths = [len(ids) for ids in tokenizer(texts[:batch_size], truncation=True, max_length=512)["input_ids"]]
            batch = packed_batch(lengths, device)
            q, k, v = (torch.randn(batch.num_tokens, HEADS, HEAD_SIZE, device=device) for _ in range(3))
            reference = kernels["sdpa_per_example"](q, k, v, batch)
            cells = []
            for kernel, fn in kernels.items():
                torch.testing.assert_close(fn(q, k, v, batch), reference, atol=1e-4, rtol=1e-4)
                cells.append(f"{kernel}={milliseconds(lambda: fn(q, k, v, batch), args.repeats):.2f}ms")
            print(f"{name} bs={batch_size} tokens={batch.num_tokens} max_len={batch.max_seqlen}: " + " ".join(cells))


if __name__ == "__main__":
    main()
