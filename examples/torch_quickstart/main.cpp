// rhythm::torch quick start: post-RoPE Q and K of a GRPO batch as LibTorch tensors -> per-token
// credit gamma and shaped advantages -> PPO-clip loss -> backward. Random tensors stand in for a model;
// the same code takes CUDA tensors.
#include <rhythm/torch.hpp>

#include <cstdio>

int main() {
  const std::int64_t group = 4, prompts = 2, B = group * prompts;   // GRPO: 4 samples for each of 2 prompts
  const std::int64_t H = 8, Hkv = 4, N = 160, d = 64;               // heads of the chosen layers, stacked
  at::manual_seed(0);

  // A model's projections emit [B, N, H, d]; the permuted view [B, H, N, d] is read in place (no copy).
  const at::Tensor q = at::randn({B, N, H, d}).permute({0, 2, 1, 3});
  const at::Tensor k = at::randn({B, N, Hkv, d}).permute({0, 2, 1, 3});  // GQA: query head h reads kv head h / 2

  // The response mask a trainer holds: the response of sample b is [24 + 2b, N - 9b), right padding after.
  const at::Tensor position = at::arange(N).unsqueeze(0), b = at::arange(B).unsqueeze(1);
  const at::Tensor mask = (position >= 24 + 2 * b) & (position < N - 9 * b);
  const at::Tensor rewards = at::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 1.f, 0.f, 1.f});  // verifier scores [B]
  const at::Tensor group_ids = at::arange(B, at::kLong).div(group, "floor");         // prompt of each sample

  // Configured once, called every step: signals from Q/K (no N x N map), head groups, token sets,
  // GRPO advantages, gamma and shaped advantages, with the diagnostics, as tensors.
  rhythm::torch::credit_assigner credit(rhythm::shaping::coupled_rhythm{.gamma_amp = 1.5, .alpha = 0.5});
  const auto out = credit({.q = q, .k = k, .response_mask = mask, .rewards = rewards, .group_ids = group_ids});
  const at::Tensor gamma = out.gamma.masked_select(mask);
  const auto diag = out.diagnostics.values();
  std::printf("response tokens %lld: preplan %lld, anchors %lld (dominated %lld, intro %lld)\n",
              static_cast<long long>(diag.response_tokens), static_cast<long long>(diag.preplan),
              static_cast<long long>(diag.anchor), static_cast<long long>(diag.dominated),
              static_cast<long long>(diag.intro));
  std::printf("gamma over responses: mean %.4f, min %.3f, max %.3f, amplified %.1f%%\n", gamma.mean().item<double>(),
              gamma.min().item<double>(), gamma.max().item<double>(), 100.0 * diag.amplified_share);

  // PPO-clip on the shaped advantages; autograd flows into the new log-probabilities only.
  const at::Tensor logp_old = -3.0 * at::rand({B, N});
  const at::Tensor logp_new = (logp_old + 0.2 * at::randn({B, N})).detach().requires_grad_();
  const auto ppo = rhythm::torch::ppo_clip_loss(logp_new, logp_old, out.shaped, mask);
  ppo.loss.backward();
  std::printf("PPO-clip loss %.6f (clip fraction %.3f, mean ratio %.4f over %lld tokens); |grad| %.6f\n",
              ppo.loss.item<double>(), ppo.clip_fraction, ppo.mean_ratio, static_cast<long long>(ppo.tokens),
              logp_new.grad().norm().item<double>());
}
