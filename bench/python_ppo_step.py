#!/usr/bin/python3
"""Baseline for bench/ppo_step_bench: the learner's PPO step (services/learner/ppo_trainer.cc with
the common/rl math) written in PyTorch and run with Debian's python3-torch. Same architecture,
batch shapes and algorithm as the C++ step, so the same FLOPs:

  1. no_grad: policy log-probs (and entropy) of the response tokens, the logits taken only at the
     positions that predict them; critic values at the same positions.
  2. Missing-EOS penalty, k1 KL-penalised rewards with the score at the last response token,
     GAE (gamma 1, lambda 0.95, padded values zeroed), whitened advantages.
  3. `epochs` passes over shuffled minibatches: clipped policy loss + vf_coef * clipped value
     loss, backward, grad-norm clip 1.0 of policy and critic separately, one Adam step each.
  4. The adaptive KL controller and the explained variance.

Weights are random (normal(0, 0.02), norms 1; the critic copies the policy's trunk and has a
zero value head). Prints one JSON line.

Usage: python_ppo_step.py --dim 288 --hidden 768 --layers 6 --heads 6 --kv-heads 6 --vocab 32000
         --max-seq-len 256 --tie 1 --batch 16 --minibatch 8 --epochs 2 --prompt-len 32
         --response-len 64 --steps 3 --threads 2 [--profile 0]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CLIP, VALUE_CLIP, VF_COEF, GAMMA, LAM = 0.2, 0.2, 0.1, 1.0, 0.95
EOS_PENALTY, WHITEN_EPS, LR, MAX_GRAD_NORM = 1.0, 1e-8, 1e-4, 1.0
KL_INIT, KL_TARGET, KL_HORIZON = 0.2, 6.0, 10000.0


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

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.n_heads // self.n_kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        out = F.softmax(scores + mask, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm = RMSNorm(a.dim)
        self.self_attn = Attention(a.dim, a.heads, a.kv_heads)
        self.post_attention_layernorm = RMSNorm(a.dim)
        self.gate_proj = nn.Linear(a.dim, a.hidden, bias=False)
        self.up_proj = nn.Linear(a.dim, a.hidden, bias=False)
        self.down_proj = nn.Linear(a.hidden, a.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    """The policy (LM head, tied or not) or the critic (scalar head, no LM head)."""

    def __init__(self, a, critic):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.lm_head = None if critic or a.tie else nn.Linear(a.dim, a.vocab, bias=False)
        self.score = nn.Linear(a.dim, 1, bias=False) if critic else None
        hd = a.dim // a.heads
        inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.outer(torch.arange(a.max_seq_len, dtype=torch.float64), inv)
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos().float(), ang.sin().float()

    def trunk(self, tokens):
        t = tokens.shape[1]
        x = self.embed_tokens(tokens)
        mask = torch.full((t, t), float("-inf")).triu(1)
        cos, sin = self.cos[:t], self.sin[:t]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)

    def logits(self, hidden):
        w = self.lm_head.weight if self.lm_head is not None else self.embed_tokens.weight
        return F.linear(hidden, w)


def init_weights(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if "norm" in name else p.normal_(0.0, 0.02)


def policy_forward(policy, tokens, positions, targets):
    """Log-probs [B, R] of the targets and entropies [B, R]; logits only at `positions`."""
    hidden = policy.trunk(tokens)
    hidden = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    logp = F.log_softmax(policy.logits(hidden), dim=-1)
    return logp.gather(2, targets.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


def critic_forward(critic, tokens, positions):
    return critic.score(critic.trunk(tokens)).squeeze(-1).gather(1, positions)


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_var(x, m):
    n = m.sum()
    return masked_mean((x - masked_mean(x, m)).square(), m) * n / (n - 1)


def targets(old_lp, old_v, ref, scores, eos, mask, kl_coef):
    """Rewards, GAE and whitening, as common/rl ComputePpoTargets."""
    scores = torch.where(eos, scores, scores - EOS_PENALTY)
    kl = (old_lp - ref) * mask
    last = torch.where(mask != 0, torch.arange(mask.shape[1]).expand_as(mask),
                       torch.zeros_like(mask, dtype=torch.long)).amax(1)
    rewards = (-kl_coef * kl).scatter_add(1, last.unsqueeze(1), scores.unsqueeze(1))
    v, r = old_v * mask, rewards * mask
    delta = r + GAMMA * F.pad(v[:, 1:], (0, 1)) - v
    acc, nxt = [None] * delta.shape[1], torch.zeros(delta.shape[0])
    for t in reversed(range(delta.shape[1])):
        nxt = delta[:, t] + GAMMA * LAM * nxt
        acc[t] = nxt
    adv = torch.stack(acc, 1) * mask
    returns = (adv + v) * mask
    white = (adv - masked_mean(adv, mask)) * torch.rsqrt(masked_var(adv, mask) + WHITEN_EPS) * mask
    return white, returns, (kl * mask).sum(1).mean()


def ppo_step(policy, critic, popt, copt, batch, kl_coef, gen, a):
    tokens, positions, tgt, ref, scores, eos, mask = batch
    with torch.no_grad():
        old_lp = policy_forward(policy, tokens, positions, tgt)[0] * mask
        old_v = critic_forward(critic, tokens, positions) * mask
        adv, returns, kl_obs = targets(old_lp, old_v, ref, scores, eos, mask, kl_coef)
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "approx_kl": 0.0, "entropy": 0.0}
    updates = 0
    for _ in range(a.epochs):
        order = torch.randperm(a.batch, generator=gen)
        for begin in range(0, a.batch, a.minibatch):
            idx = order[begin:begin + a.minibatch]
            m = mask[idx]
            lp, ent = policy_forward(policy, tokens[idx], positions[idx], tgt[idx])
            values = critic_forward(critic, tokens[idx], positions[idx])
            log_ratio = lp - old_lp[idx]
            ratio = log_ratio.exp()
            a_w = adv[idx]
            pg = torch.max(-a_w * ratio, -a_w * ratio.clamp(1 - CLIP, 1 + CLIP))
            policy_loss = masked_mean(pg * m, m)
            v_old, ret = old_v[idx], returns[idx]
            v_clip = v_old + (values - v_old).clamp(-VALUE_CLIP, VALUE_CLIP)
            value_loss = 0.5 * masked_mean(
                torch.max((values - ret).square(), (v_clip - ret).square()), m)
            total = policy_loss + VF_COEF * value_loss
            popt.zero_grad()
            copt.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), MAX_GRAD_NORM)
            nn.utils.clip_grad_norm_(critic.parameters(), MAX_GRAD_NORM)
            popt.step()
            copt.step()
            with torch.no_grad():
                stats["policy_loss"] += policy_loss.item()
                stats["value_loss"] += value_loss.item()
                stats["approx_kl"] += 0.5 * masked_mean(log_ratio.square(), m).item()
                stats["entropy"] += masked_mean(ent, m).item()
            updates += 1
    stats = {k: v / updates for k, v in stats.items()}
    with torch.no_grad():
        var_ret = masked_var(returns, mask).item()
        stats["explained_variance"] = (
            1 - masked_var(returns - old_v, mask).item() / var_ret if var_ret > 0 else 0.0)
    kl = kl_obs.item()
    err = min(max(kl / KL_TARGET - 1, -0.2), 0.2)
    stats["kl_mean"] = kl
    return stats, kl_coef * (1 + err * a.batch / KL_HORIZON)


def make_batch(a):
    torch.manual_seed(1)
    length = a.prompt_len + a.response_len
    tokens = torch.randint(3, a.vocab, (a.batch, length))
    tokens[:, 0] = 1
    positions = (a.prompt_len - 1 + torch.arange(a.response_len)).expand(a.batch, -1).contiguous()
    tgt = tokens[:, a.prompt_len:].contiguous()
    ref = -math.log(a.vocab) + 0.1 * torch.randn(a.batch, a.response_len)
    return (tokens, positions, tgt, ref, torch.randn(a.batch), torch.ones(a.batch, dtype=torch.bool),
            torch.ones(a.batch, a.response_len))


def main():
    p = argparse.ArgumentParser()
    for name in ["dim", "hidden", "layers", "heads", "kv-heads", "vocab", "max-seq-len", "tie",
                 "batch", "minibatch", "epochs", "prompt-len", "response-len", "steps", "threads"]:
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--profile", type=int, default=0, help="print the top N ops of one step")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    policy, critic = Llama(a, critic=False), Llama(a, critic=True)
    init_weights(policy)
    critic.load_state_dict(policy.state_dict(), strict=False)
    nn.init.zeros_(critic.score.weight)
    popt = torch.optim.Adam(policy.parameters(), lr=LR)
    copt = torch.optim.Adam(critic.parameters(), lr=LR)
    batch = make_batch(a)
    gen = torch.Generator().manual_seed(1)
    kl_coef = KL_INIT
    _, kl_coef = ppo_step(policy, critic, popt, copt, batch, kl_coef, gen, a)  # warm-up
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        stats, kl_coef = ppo_step(policy, critic, popt, copt, batch, kl_coef, gen, a)
        times.append(time.perf_counter() - start)
    tokens = a.batch * a.response_len
    out = {"bench": "ppo_step", "impl": "python", "torch": torch.__version__,
           "threads": torch.get_num_threads(), "tokens": tokens, "step_seconds": times,
           "seconds_best": min(times), "tokens_per_s": tokens / min(times),
           "tokens_per_s_mean": tokens * len(times) / sum(times)}
    out.update(stats)
    if a.profile > 0:
        with torch.autograd.profiler.profile() as prof:
            ppo_step(policy, critic, popt, copt, batch, kl_coef, gen, a)
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:a.profile]
        out["profile_self_ms"] = {e.key: round(e.self_cpu_time_total / 1e3, 2) for e in ops}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
