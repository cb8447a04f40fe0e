#!/usr/bin/python3
"""Baseline for bench/generation_bench: batched KV-cache decoding written the way a PyTorch user
writes it (nn.Module Llama, per-layer cache grown with torch.cat, repeat_interleave for GQA,
torch.multinomial sampling), run with Debian's python3-torch. Prints one JSON line.

Usage: python_generate.py --dim 64 --hidden 172 --layers 5 --heads 8 --kv-heads 4 --vocab 512
         --batch 64 --prompt-len 16 --new-tokens 240 --threads 2 [--repeats 1]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(self, x, cos, sin, mask, cache):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        new_cache = (k, v)
        rep = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + mask
        out = F.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), new_cache


class Block(nn.Module):
    def __init__(self, dim, hidden, n_heads, n_kv_heads):
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, n_heads, n_kv_heads)
        self.ffn_norm = RMSNorm(dim)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, cos, sin, mask, cache):
        h, cache = self.attn(self.attn_norm(x), cos, sin, mask, cache)
        x = x + h
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), cache


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(Block(a.dim, a.hidden, a.heads, a.kv_heads)
                                    for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.lm_head = nn.Linear(a.dim, a.vocab, bias=False)
        hd = a.dim // a.heads
        inv = 10000.0 ** (-torch.arange(0, hd, 2).float() / hd)
        ang = torch.outer(torch.arange(4096).float(), inv)
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos(), ang.sin()

    def forward(self, tokens, positions, mask, caches):
        x = self.embed(tokens)
        cos = self.cos[positions].unsqueeze(1)
        sin = self.sin[positions].unsqueeze(1)
        new = []
        for layer, cache in zip(self.layers, caches):
            x, c = layer(x, cos, sin, mask, cache)
            new.append(c)
        return self.lm_head(self.norm(x[:, -1])), new


@torch.no_grad()
def generate(model, prompts, new_tokens, temperature=1.0):
    b, t = prompts.shape
    positions = torch.arange(t).expand(b, t)
    mask = torch.full((t, t), float("-inf")).triu(1)
    logits, caches = model(prompts, positions, mask, [None] * len(model.layers))
    out = []
    for i in range(new_tokens):
        probs = F.softmax(logits / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1)
        out.append(nxt)
        if i + 1 == new_tokens:
            break
        pos = torch.full((b, 1), t + i)
        logits, caches = model(nxt, pos, torch.zeros(1, 1), caches)
    return torch.cat(out, dim=1)


def main():
    p = argparse.ArgumentParser()
    for name in ["dim", "hidden", "layers", "heads", "kv-heads", "vocab", "batch", "prompt-len",
                 "new-tokens", "threads"]:
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a).eval()
    prompts = torch.randint(3, a.vocab, (a.batch, a.prompt_len))
    generate(model, prompts, 4)  # warm-up
    best = float("inf")
    for _ in range(a.repeats):
        start = time.perf_counter()
        out = generate(model, prompts, a.new_tokens)
        best = min(best, time.perf_counter() - start)
    assert out.shape == (a.batch, a.new_tokens)
    print(json.dumps({"impl": "python", "torch": torch.__version__, "batch": a.batch,
                      "seconds": best, "tokens_per_s": a.batch * a.new_tokens / best}))


if __name__ == "__main__":
    main()
