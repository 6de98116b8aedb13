#pragma once
/// The built-in shaping policies of DESIGN §3 (paper Eq. 15, 17, 19 and two controls), in
/// namespace rhythm::shaping. Each gives gamma_t for the response tokens of one sequence, with
/// b = gamma_amp - 1 (gamma_amp = 1.5 by default):
///
///   uniform         1                                                           (plain GRPO)
///   local_chunk     1 + b [t in T_loc]                                          (Eq. 15)
///   global_anchor   1 + b [t in T_glob]                                         (Eq. 17)
///   coupled_rhythm  1 + b [t in T_glob \ D] + (1 - a) b [t in D] + a b [t in intro(D)]  (Eq. 19)
///   random          1 + b on ceil(q n) tokens drawn without replacement         (control)
///   entropy         1 + b [t in top-q(token entropy)]                           (control)
///
/// T_loc, T_glob, D and intro(D) are the token_flag bits the tokens stage wrote (preplan, anchor,
/// dominated, intro). In coupled_rhythm the terms add: a dominated anchor that is also an intro
/// token gets 1 + (1 - a) b + a b = 1 + b. Factors are computed in double and rounded to float
/// once, so a token outside every set gets exactly 1.0f.
///
/// Each policy's rule() validates its fields and returns the rhythm::shaping_rule the backends
/// run: a 16-entry gamma table over the four flag bits for the first four, a per-token rule for
/// the controls. shaping::any holds any of them, chosen at run time (e.g. from a flag):
///
///   auto policy = rhythm::shaping::any::parse("coupled_rhythm");  // the policy's defaults
///   policy.gamma_amp = 1.3;
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "../core/checks.hpp"
#include "../core/credit_types.hpp"
#include "../core/token_types.hpp"

namespace rhythm::detail {
inline void check_gamma_amp(double gamma_amp) {
  expects(gamma_amp >= 1.0 && gamma_amp <= std::numeric_limits<float>::max(), errc::bad_parameter, "params.gamma_amp",
          "a finite value >= 1", gamma_amp);
}

/// The rule whose gamma is 1 + b on the tokens whose flags have any of `bits` set.
inline shaping_rule flag_rule(double gamma_amp, token_flag selected) {
  check_gamma_amp(gamma_amp);
  const double b = gamma_amp - 1.0;
  shaping_rule r;
  for (int f = 0; f < 16; ++f)
    r.by_flags[f] = static_cast<float>(1.0 + (any(static_cast<token_flag>(f) & selected) ? b : 0.0));
  return r;
}

/// The rule of a per-token selection (random, entropy) with gamma_amp on the selected tokens.
inline shaping_rule selection_rule(shaping_rule::selector kind, double gamma_amp, top_q_params selection,
                                   std::uint64_t seed) {
  check_gamma_amp(gamma_amp);
  shaping_rule r;
  r.kind = kind;
  r.amplified = static_cast<float>(1.0 + (gamma_amp - 1.0));
  r.selection = selection;
  r.seed = seed;
  return r;
}
}  // namespace rhythm::detail

namespace rhythm::shaping {

/// gamma = 1 everywhere: plain GRPO. Shaped advantages equal A bit for bit.
struct uniform {
  shaping_rule rule() const { return {}; }
};

/// Eq. 15: amplify the preplan tokens T_loc (token_flag::preplan).
struct local_chunk {
  double gamma_amp = 1.5;  ///< gamma on T_loc; >= 1
  shaping_rule rule() const { return detail::flag_rule(gamma_amp, token_flag::preplan); }
};

/// Eq. 17: amplify the anchor tokens T_glob (token_flag::anchor).
struct global_anchor {
  double gamma_amp = 1.5;  ///< gamma on T_glob; >= 1
  shaping_rule rule() const { return detail::flag_rule(gamma_amp, token_flag::anchor); }
};

/// Eq. 19: anchors keep their full amplification unless dominated by a preceding preplan jump;
/// a dominated anchor keeps (1 - alpha) of it and hands alpha of it to its intro token.
///   gamma = 1 + b [anchor and not dominated] + (1 - alpha) b [dominated] + alpha b [intro]
/// The bits are read as given (a dominated bit counts even without the anchor bit).
struct coupled_rhythm {
  double gamma_amp = 1.5;  ///< gamma on undominated anchors; >= 1
  double alpha = 0.5;      ///< share of a dominated anchor's amplification moved to its intro token; [0, 1]
  shaping_rule rule() const {
    detail::check_gamma_amp(gamma_amp);
    detail::expects(alpha >= 0.0 && alpha <= 1.0, errc::bad_parameter, "params.alpha", "a value in [0, 1]", alpha);
    const double b = gamma_amp - 1.0;
    shaping_rule r;
    for (int f = 0; f < 16; ++f) {
      const auto flags = static_cast<token_flag>(f);
      const bool anchor = any(flags & token_flag::anchor), dominated = any(flags & token_flag::dominated),
                 intro = any(flags & token_flag::intro);
      double g = 1.0;
      if (anchor && !dominated) g += b;
      if (dominated) g += (1.0 - alpha) * b;
      if (intro) g += alpha * b;
      r.by_flags[f] = static_cast<float>(g);
    }
    return r;
  }
};

/// Control: amplify k = ceil(q n) of the n response tokens, drawn without replacement by
/// rhythm::random_rank (a pseudo-random permutation keyed by the seed and the sequence index).
/// The draw depends only on (seed, sequence index b, n): it is the same for every backend and
/// thread count and on every platform, and changes with the seed (pass e.g. the training step as
/// the seed for fresh draws each step).
struct random {
  double gamma_amp = 1.5;  ///< gamma on the drawn tokens; >= 1
  double q = 0.4;          ///< share of tokens drawn; (0, 1]
  std::uint64_t seed = 0;
  shaping_rule rule() const {
    detail::check_share(q, "params.q");
    return detail::selection_rule(shaping_rule::selector::random, gamma_amp, {q, false}, seed);
  }
};

/// Control: amplify the top-q of the response tokens by token entropy (DESIGN §3 top-q over all
/// n response tokens: k = ceil(q n), threshold = k-th largest entropy, every token >= it; ties
/// inclusive). With selection.bottom: the k-th smallest and every token <= it.
/// Needs an entropies view [B, N] (e.g. the entropy of the sampling distribution per token).
struct entropy {
  double gamma_amp = 1.5;     ///< gamma on the selected tokens; >= 1
  top_q_params selection{};   ///< q in (0, 1]; bottom: the lowest-entropy tokens instead
  shaping_rule rule() const {
    detail::check_top_q_params(selection, "params.selection");
    return detail::selection_rule(shaping_rule::selector::entropy, gamma_amp, selection, 0);
  }
};

/// The built-in policies by name.
enum class kind : std::uint8_t { uniform, local_chunk, global_anchor, coupled_rhythm, random, entropy };

/// Any built-in policy, chosen at run time: the kind plus every field a built-in reads (each
/// kind reads its own: gamma_amp all but uniform, alpha coupled_rhythm, selection.q random and
/// entropy, selection.bottom entropy, seed random). Converts from each built-in.
struct any {
  kind which = kind::coupled_rhythm;
  double gamma_amp = 1.5;
  double alpha = 0.5;
  top_q_params selection{};
  std::uint64_t seed = 0;

  any() = default;
  any(uniform) : which(kind::uniform) {}
  any(local_chunk p) : which(kind::local_chunk), gamma_amp(p.gamma_amp) {}
  any(global_anchor p) : which(kind::global_anchor), gamma_amp(p.gamma_amp) {}
  any(coupled_rhythm p) : which(kind::coupled_rhythm), gamma_amp(p.gamma_amp), alpha(p.alpha) {}
  any(random p) : which(kind::random), gamma_amp(p.gamma_amp), selection{p.q, false}, seed(p.seed) {}
  any(entropy p) : which(kind::entropy), gamma_amp(p.gamma_amp), selection(p.selection) {}

  static constexpr std::string_view names[] = {"uniform", "local_chunk", "global_anchor",
                                               "coupled_rhythm", "random", "entropy"};

  /// The policy named `name` (one of `names`) with its default fields; errc::bad_parameter otherwise.
  static any parse(std::string_view name) {
    for (std::size_t i = 0; i < std::size(names); ++i)
      if (name == names[i]) {
        any p;
        p.which = static_cast<kind>(i);
        return p;
      }
    detail::fail(errc::bad_parameter, "policy",
                 "uniform, local_chunk, global_anchor, coupled_rhythm, random or entropy", "'" + std::string(name) + "'");
  }

  std::string_view name() const { return names[static_cast<int>(which)]; }

  shaping_rule rule() const {
    switch (which) {
      case kind::uniform: return uniform{}.rule();
      case kind::local_chunk: return local_chunk{gamma_amp}.rule();
      case kind::global_anchor: return global_anchor{gamma_amp}.rule();
      case kind::coupled_rhythm: return coupled_rhythm{gamma_amp, alpha}.rule();
      case kind::random: return random{gamma_amp, selection.q, seed}.rule();
      case kind::entropy: return entropy{gamma_amp, selection}.rule();
    }
    detail::fail(errc::bad_parameter, "policy.which", "a shaping::kind", std::to_string(int(which)));
  }
};

}  // namespace rhythm::shaping
