"""One GRPO step with rhythm in plain PyTorch, on a tiny randomly initialised decoder built here.

    python3 examples/python/grpo_step.py      (after `pip install ./python`)

sample G responses per prompt -> reward them -> one teacher-forced pass that records post-RoPE Q/K of
the middle layers (rhythm.qk_hook) and the old log-probabilities -> rhythm.CreditAssigner (gamma and
shaped advantages per token) -> PPO-clip loss (rhythm.ppo_clip_loss) -> backward -> AdamW step.

The decoder is Llama-shaped on purpose (q_proj/k_proj/v_proj/o_proj, a rotary_emb with inv_freq,
RMSNorm, SwiGLU, grouped-query attention), so that the hook finds what it finds in Hugging Face models.
The task is a toy: the prompt is "a+b=" over digits, the reward is 1 when the last digit of a + b is
among the first three response tokens. An untrained model gets it right by chance (about one sample
in five), which is enough for groups with differing rewards.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

import rhythm

VOCAB = list("0123456789+=;. ")


class RMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = torch.nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class RotaryEmbedding(torch.nn.Module):
    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim))

    def forward(self, x, positions):  # cos, sin [N, d] in x's dtype
        angles = positions.float()[:, None] * self.inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(torch.nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q_proj = torch.nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k_proj = torch.nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = torch.nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o_proj = torch.nn.Linear(heads * self.head_dim, dim, bias=False)
        self.rotary_emb = RotaryEmbedding(self.head_dim)
        self.last_qk = None  # set to () to keep the post-RoPE q, k of the next forward (the hook test)

    def forward(self, x):
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, N, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(x, torch.arange(N, device=x.device))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if self.last_qk is not None:
            self.last_qk = (q.detach(), k.detach())
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / self.head_dim ** 0.5
        causal = torch.ones(N, N, dtype=torch.bool, device=x.device).triu(1)
        y = scores.masked_fill(causal, float("-inf")).softmax(-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(B, N, -1))


class DecoderLayer(torch.nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(dim), RMSNorm(dim)
        self.self_attn = Attention(dim, heads, kv_heads)
        self.gate_proj = torch.nn.Linear(dim, 4 * dim, bias=False)
        self.up_proj = torch.nn.Linear(dim, 4 * dim, bias=False)
        self.down_proj = torch.nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class TinyDecoder(torch.nn.Module):
    def __init__(self, vocab: int = len(VOCAB), dim: int = 64, layers: int = 6, heads: int = 4, kv_heads: int = 2):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(vocab, dim)
        self.layers = torch.nn.ModuleList(DecoderLayer(dim, heads, kv_heads) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.lm_head = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):  # logits [B, N, vocab]
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def token_logprobs(model, tokens):
    """log p(tokens[t] | tokens[:t]) at every position t >= 1 ([B, N]; position 0 is 0). The forward runs
    over all N tokens, so that hooks see the whole sequences."""
    logp = model(tokens)[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return F.pad(logp, (1, 0))


@torch.no_grad()
def sample(model, prompts, length: int, temperature: float = 1.0):
    tokens = prompts
    for _ in range(length):  # no KV cache: the model is tiny
        logits = model(tokens)[:, -1] / temperature
        tokens = torch.cat((tokens, torch.multinomial(logits.softmax(-1), 1)), dim=1)
    return tokens


def main(seed: int = 0, prompts: int = 4, group: int = 8, response_length: int = 48, verbose: bool = True) -> dict:
    torch.manual_seed(seed)
    model = TinyDecoder()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    credit = rhythm.CreditAssigner(window=10, horizon=(10, 100), q=0.4, policy="coupled_rhythm")
    layers = list(range(len(model.layers) // 3, 2 * len(model.layers) // 3))  # the middle third
    started = time.perf_counter()

    # 1. prompts "a+b=" and G samples of each
    a, b = torch.randint(0, 10, (prompts,)), torch.randint(0, 10, (prompts,))
    prompt_tokens = torch.stack([a, torch.full_like(a, 10), b, torch.full_like(a, 11)], dim=1)
    tokens = sample(model, prompt_tokens.repeat_interleave(group, dim=0), response_length)
    B, N = tokens.shape
    response_mask = torch.zeros(B, N, dtype=torch.bool)
    response_mask[:, prompt_tokens.shape[1]:] = True
    group_ids = torch.arange(prompts).repeat_interleave(group)

    # 2. rewards from a verifier
    answer = ((a + b) % 10).repeat_interleave(group)
    first = tokens[:, prompt_tokens.shape[1]:prompt_tokens.shape[1] + 3]
    rewards = (first == answer[:, None]).any(dim=1).float()

    # 3. one teacher-forced pass: the old log-probabilities and post-RoPE Q/K of the middle layers
    with torch.no_grad(), rhythm.qk_hook(model, layers) as capture:
        logp_old = token_logprobs(model, tokens)

    # 4. credit: gamma and shaped advantages per token
    out = credit(q=capture.q, k=capture.k, response_mask=response_mask, rewards=rewards, group_ids=group_ids)

    # 5. PPO-clip on the shaped advantages, backward, step
    logp_new = token_logprobs(model, tokens)
    ppo = rhythm.ppo_clip_loss(logp_new, logp_old, out.shaped_advantages, response_mask)
    optimizer.zero_grad()
    ppo.loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    optimizer.step()

    d = out.diagnostics
    result = dict(reward=float(rewards.mean()), loss=float(ppo.loss), grad_norm=grad_norm,
                  preplan=int(d["preplan"]), anchor=int(d["anchor"]), response_tokens=int(d["response_tokens"]),
                  mean_gamma=float(d["mean_gamma"]), amplified_share=float(d["amplified_share"]),
                  q_shape=tuple(capture.q.shape), k_shape=tuple(capture.k.shape),
                  seconds=time.perf_counter() - started)
    if verbose:
        print(f"B {B} (prompts {prompts} x group {group}), N {N}, Q/K of layers {layers}: q {result['q_shape']}, "
              f"k {result['k_shape']}")
        print(f"reward {result['reward']:.3f}; preplan {result['preplan']}, anchors {result['anchor']} of "
              f"{result['response_tokens']} response tokens; mean gamma {result['mean_gamma']:.4f}, "
              f"amplified {100 * result['amplified_share']:.1f}%")
        print(f"PPO-clip loss {result['loss']:.6f}, grad norm {grad_norm:.4f}, step {result['seconds']:.2f} s")
    return result


if __name__ == "__main__":
    main()
