#pragma once
/// The built-in shaping policies of DESIGN §3 (paper Eq. 15, 17, 19 and two controls), in
/// namespace rhythm::shaping. Each writes gamma_t for the response tokens of one sequence, with
/// b = gamma_amp - 1 (gamma_amp = 1.5 by default):
///
///   uniform         1                                                           (plain GRPO)
///   local_chunk     1 + b [t in T_loc]                                          (Eq. 15)
///   global_anchor   1 + b [t in T_glob]                                         (Eq. 17)
///   coupled_rhythm  1 + b [t in T_glob \ D] + (1 - a) b [t in D] + a b [t in intro(D)]  (Eq. 19)
///   random          1 + b on ceil(q n) tokens drawn uniformly without replacement (control)
///   entropy         1 + b [t in top-q(token entropy)]                           (control)
///
/// T_loc, T_glob, D and intro(D) are the token_flag bits the tokens stage wrote (preplan, anchor,
/// dominated, intro). In coupled_rhythm the terms add: a dominated anchor that is also an intro
/// token gets 1 + (1 - a) b + a b = 1 + b. Factors are computed in double and rounded to float
/// once, so a token outside every set gets exactly 1.0f. Every policy is O(n) per response.
#include <cstdint>
#include <span>
#include <vector>

#include "../tokens/token_flags.hpp"
#include "common.hpp"
#include "shaping_policy.hpp"

namespace rhythm::detail::credit {
/// gamma_i = 1 + b [selected(i)], b = gamma_amp - 1, rounded once to float.
template <class Selected>
void amplify(std::span<float> gamma, double gamma_amp, Selected selected) {
  const double b = gamma_amp - 1.0;
  for (std::size_t i = 0; i < gamma.size(); ++i) gamma[i] = static_cast<float>(1.0 + (selected(i) ? b : 0.0));
}
}  // namespace rhythm::detail::credit

namespace rhythm::shaping {

/// gamma = 1 everywhere: plain GRPO. Shaped advantages equal A bit for bit.
struct uniform {
  void shape(const shaping_context&, std::span<float> gamma) const {
    for (float& g : gamma) g = 1.0f;
  }
};

/// Eq. 15: amplify the preplan tokens T_loc (token_flag::preplan).
struct local_chunk {
  double gamma_amp = 1.5;  ///< gamma on T_loc; >= 1
  void validate() const { rhythm::detail::credit::check_gamma_amp(gamma_amp); }
  void shape(const shaping_context& ctx, std::span<float> gamma) const {
    rhythm::detail::credit::amplify(gamma, gamma_amp, [&](std::size_t i) { return ctx.flags[i] & token_flag::preplan; });
  }
};

/// Eq. 17: amplify the anchor tokens T_glob (token_flag::anchor).
struct global_anchor {
  double gamma_amp = 1.5;  ///< gamma on T_glob; >= 1
  void validate() const { rhythm::detail::credit::check_gamma_amp(gamma_amp); }
  void shape(const shaping_context& ctx, std::span<float> gamma) const {
    rhythm::detail::credit::amplify(gamma, gamma_amp, [&](std::size_t i) { return ctx.flags[i] & token_flag::anchor; });
  }
};

/// Eq. 19: anchors keep their full amplification unless dominated by a preceding preplan jump;
/// a dominated anchor keeps (1 - alpha) of it and hands alpha of it to its intro token.
///   gamma = 1 + b [anchor and not dominated] + (1 - alpha) b [dominated] + alpha b [intro]
/// The bits are read as given (a dominated bit counts even without the anchor bit).
struct coupled_rhythm {
  double gamma_amp = 1.5;  ///< gamma on undominated anchors; >= 1
  double alpha = 0.5;      ///< share of a dominated anchor's amplification moved to its intro token; [0, 1]
  void validate() const {
    rhythm::detail::credit::check_gamma_amp(gamma_amp);
    rhythm::detail::credit::check_alpha(alpha);
  }
  void shape(const shaping_context& ctx, std::span<float> gamma) const {
    const double b = gamma_amp - 1.0;
    for (std::size_t i = 0; i < gamma.size(); ++i) {
      const std::uint8_t f = ctx.flags[i];
      const bool anchor = f & token_flag::anchor, dominated = f & token_flag::dominated, intro = f & token_flag::intro;
      double g = 1.0;
      if (anchor && !dominated) g += b;
      if (dominated) g += (1.0 - alpha) * b;
      if (intro) g += alpha * b;
      gamma[i] = static_cast<float>(g);
    }
  }
};

/// Control: amplify k = ceil(q n) of the n response tokens, drawn uniformly without replacement.
/// The draw depends only on (seed, sequence index b, n): it is the same for exec::seq and
/// exec::par and on every platform (splitmix64, not <random>), and changes with the seed (pass
/// e.g. the training step as the seed for fresh draws each step). Ignores shaping_options::bottom.
struct random {
  double gamma_amp = 1.5;  ///< gamma on the drawn tokens; >= 1
  double q = 0.4;          ///< share of tokens drawn; (0, 1]
  std::uint64_t seed = 0;
  void validate() const {
    rhythm::detail::credit::check_gamma_amp(gamma_amp);
    rhythm::detail::credit::check_q(q);
  }
  void shape(const shaping_context& ctx, std::span<float> gamma) const {
    namespace dc = rhythm::detail::credit;
    const auto n = static_cast<std::int64_t>(gamma.size());
    std::vector<std::uint8_t> selected(gamma.size());
    std::vector<std::int64_t> scratch;
    auto gen = dc::sequence_generator(seed, ctx.sequence);
    dc::draw_without_replacement(gen, dc::top_q_count(q, n), selected, scratch);
    dc::amplify(gamma, gamma_amp, [&](std::size_t i) { return selected[i] != 0; });
  }
};

/// Control: amplify the top-q of the response tokens by token entropy (DESIGN §3 top-q over all
/// n response tokens: k = ceil(q n), threshold = k-th largest entropy, every token >= it; ties
/// inclusive). With shaping_options::bottom: the k-th smallest and every token <= it.
/// Needs an entropies view [B, N] (e.g. the entropy of the sampling distribution per token).
struct entropy {
  static constexpr bool needs_entropies = true;
  double gamma_amp = 1.5;  ///< gamma on the selected tokens; >= 1
  double q = 0.4;          ///< share of tokens selected; (0, 1]
  void validate() const {
    rhythm::detail::credit::check_gamma_amp(gamma_amp);
    rhythm::detail::credit::check_q(q);
  }
  void shape(const shaping_context& ctx, std::span<float> gamma) const {
    std::vector<std::uint8_t> selected(gamma.size());
    std::vector<float> scratch;
    rhythm::detail::credit::select_top_q(ctx.entropies, q, ctx.bottom, selected, scratch);
    rhythm::detail::credit::amplify(gamma, gamma_amp, [&](std::size_t i) { return selected[i] != 0; });
  }
};

static_assert(shaping_policy<uniform> && shaping_policy<local_chunk> && shaping_policy<global_anchor> &&
              shaping_policy<coupled_rhythm> && shaping_policy<random> && shaping_policy<entropy>);

}  // namespace rhythm::shaping
