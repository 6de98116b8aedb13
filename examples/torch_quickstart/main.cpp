// rhythm::torch quick start: post-RoPE Q and K of a GRPO batch as LibTorch tensors -> per-token
// credit gamma and shaped advantages -> PPO-clip loss -> backward. Random tensors stand in for a model.
#include <rhythm/torch.hpp>

#include <cstdio>
#include <vector>

int main() {
  const std::int64_t group = 4, prompts = 2, B = group * prompts;   // GRPO: 4 samples for each of 2 prompts
  const std::int64_t H = 8, Hkv = 4, N = 160, d = 64;               // heads of the chosen layers, stacked
  at::manual_seed(0);

  // A model's projections emit [B, N, H, d]; the permuted view [B, H, N, d] is read in place (no copy).
  const at::Tensor q = at::randn({B, N, H, d}).permute({0, 2, 1, 3});
  const at::Tensor k = at::randn({B, N, Hkv, d}).permute({0, 2, 1, 3});  // GQA: query head h reads kv head h / 2

  // Each sequence: prompt [begin, response_begin), response [response_begin, end), right padding after.
  std::vector<rhythm::segment> segments;
  for (std::int64_t b = 0; b < B; ++b) segments.push_back({0, 24 + 2 * b, N - 9 * b});
  const at::Tensor rewards = at::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 1.f, 0.f, 1.f});  // verifier scores [B]
  const at::Tensor group_ids = at::arange(B, at::kLong).div(group, "floor");         // prompt of each sample

  // One call: signals from Q/K (no N x N map), head groups, token sets, GRPO advantages, gamma.
  rhythm::credit_pipeline pipeline;  // keep it across training steps: its buffers are reused
  const auto credit = rhythm::torch::credit_from_qk(pipeline, q, k, segments, rewards, group_ids,
                                                    rhythm::shaping::coupled_rhythm{.gamma_amp = 1.5, .alpha = 0.5});
  const at::Tensor mask = rhythm::torch::response_mask(segments, N);
  const at::Tensor gamma = credit.gamma.masked_select(mask);
  const auto& diag = credit.diagnostics;
  std::printf("response tokens %lld: preplan %lld, anchors %lld (dominated %lld, intro %lld)\n",
              static_cast<long long>(diag.response_tokens), static_cast<long long>(diag.preplan),
              static_cast<long long>(diag.anchor), static_cast<long long>(diag.dominated),
              static_cast<long long>(diag.intro));
  std::printf("gamma over responses: mean %.4f, min %.3f, max %.3f, amplified %.1f%%\n", gamma.mean().item<double>(),
              gamma.min().item<double>(), gamma.max().item<double>(), 100.0 * diag.amplified_share);

  // PPO-clip on the shaped advantages; autograd flows into the new log-probabilities only.
  const at::Tensor logp_old = -3.0 * at::rand({B, N});
  const at::Tensor logp_new = (logp_old + 0.2 * at::randn({B, N})).detach().requires_grad_();
  const auto ppo = rhythm::torch::ppo_clip_loss(logp_new, logp_old, credit.shaped, segments);
  ppo.loss.backward();
  std::printf("PPO-clip loss %.6f (clip fraction %.3f, mean ratio %.4f over %lld tokens); |grad| %.6f\n",
              ppo.loss.item<double>(), ppo.clip_fraction, ppo.mean_ratio, static_cast<long long>(ppo.tokens),
              logp_new.grad().norm().item<double>());
}
