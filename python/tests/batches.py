"""Batches built from a seed, for the tests (plain module: test_cuda.py also runs without pytest)."""
import torch


def make_batch(B=8, Hq=8, Hkv=4, N=96, d=32, group=4, seed=0, dtype=torch.float32, layout="contiguous"):
    """q [B, Hq, N, d], k [B, Hkv, N, d] (contiguous, or the permuted views of [B, N, H, d] a model's
    projections give), a response mask with varying prompt and padding, binary rewards, group ids."""
    g = torch.Generator().manual_seed(seed)
    if layout == "permuted":
        q = torch.randn(B, N, Hq, d, generator=g).to(dtype).permute(0, 2, 1, 3)
        k = torch.randn(B, N, Hkv, d, generator=g).to(dtype).permute(0, 2, 1, 3)
    else:
        q = torch.randn(B, Hq, N, d, generator=g).to(dtype)
        k = torch.randn(B, Hkv, N, d, generator=g).to(dtype)
    position, b = torch.arange(N)[None, :], torch.arange(B)[:, None]
    response_mask = (position >= 12 + 2 * b) & (position < N - 3 * b)
    rewards = torch.randint(0, 2, (B,), generator=g).float()
    group_ids = torch.arange(B) // group
    return dict(q=q, k=k, response_mask=response_mask, rewards=rewards, group_ids=group_ids)


def softmax_maps(q, k):
    """Causal attention maps [B, Hq, N, N] of q and k (GQA), float32."""
    group = q.shape[1] // k.shape[1]
    scores = q.float() @ k.float().repeat_interleave(group, dim=1).transpose(-1, -2) / q.shape[-1] ** 0.5
    N = q.shape[2]
    return scores.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
