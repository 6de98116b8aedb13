#pragma once
/// Vocabulary of the tokens stage (DESIGN §3): token flags, the top-q selection (the one owner of
/// q and bottom), the dominance rule, the parameters of every token primitive, and the flat
/// argument structs the backends receive.
#include <cstdint>
#include <limits>
#include <string>

#include "../config.hpp"
#include "bits.hpp"
#include "checks.hpp"
#include "segments.hpp"
#include "signal_types.hpp"
#include "tensor.hpp"

namespace rhythm {

/// The sets the token detectors find, as bits of one byte per position; only response positions
/// are ever set. A view of std::uint8_t is accepted wherever a view of token_flag is.
enum class token_flag : std::uint8_t {
  none = 0,
  preplan = 1,    ///< t in T_loc: top-q of the WAAD jump (DESIGN §3)
  anchor = 2,     ///< t in T_glob: top-q of FAI over eligible tokens
  dominated = 4,  ///< t in D: an anchor dominated by a preceding preplan jump
  intro = 8,      ///< t = intro(u) for some dominated anchor u
  any = 0xff,     ///< every bit: as a selector (peak_params), "any bit set"
};
template <>
inline constexpr bool enable_bit_operators<token_flag> = true;

/// A flag or mask view's element: token_flag or its byte.
template <class T>
concept flag_element = std::is_same_v<std::remove_cv_t<T>, token_flag> || std::is_same_v<std::remove_cv_t<T>, std::uint8_t>;

/// A per-response top-q selection (DESIGN §3). The only declaration of q and bottom: every
/// selection of the library (T_loc, T_glob, the entropy control) embeds one.
struct top_q_params {
  double q = 0.4;       ///< share of the eligible response tokens to select, in (0, 1]
  bool bottom = false;  ///< ablation: select the k smallest (every value <= the k-th smallest) instead
};

/// Size k of a top-q selection over n tokens: ceil(q n), clamped to [1, n]; 0 when n == 0.
/// The ceiling forgives 1e-9 of rounding so that decimal shares count as written
/// (q = 0.07, n = 100 gives 7, although 0.07 * 100 is 7.000000000000001 in binary).
RHYTHM_HOST_DEVICE inline std::int64_t top_q_count(double q, std::int64_t n) {
  if (n <= 0) return 0;
#if defined(__CUDA_ARCH__)
  const double x = __dmul_rn(q, double(n)) - 1e-9;  // rounded product, as on the host: no fused multiply-add
#else
  const double x = q * double(n) - 1e-9;
#endif
  if (!(x < double(n))) return n;  // also q > 1 or NaN: everything
  std::int64_t k = static_cast<std::int64_t>(x);  // x in (-1e-9, n): truncation, then round up
  if (double(k) < x) ++k;
  return k < 1 ? 1 : k;
}

/// Which jump threshold tau_Delta the window before a dominated anchor must reach.
enum class dominance_threshold_mode : std::uint8_t {
  loc_threshold = 0,  ///< tau_Delta = the T_loc (preplan) threshold of the same response
  median_delta = 1,   ///< tau_Delta = the median jump Delta over the response tokens
};

/// The dominance rule of D (DESIGN §3).
struct dominance_params {
  std::int64_t window = 3;  ///< k: an anchor looks back at the jumps of [t - k, t - 1]; k >= 1
  dominance_threshold_mode threshold = dominance_threshold_mode::loc_threshold;  ///< tau_Delta
};

/// Parameters of token_sets.
struct token_params {
  top_q_params selection{};       ///< q and bottom of T_loc and T_glob
  dominance_params dominance{};   ///< k and tau_Delta of D
  fai_horizon horizon{};          ///< the horizons FAI was computed with (anchor eligibility, fai_eligible)
};

/// Columns of the optional per-sequence thresholds output [B, token_threshold::count] of token_sets.
/// A threshold is NaN when its sequence has no token to take it from (empty response, no eligible token).
struct token_threshold {
  static constexpr std::int64_t preplan = 0;      ///< T_loc threshold: k-th largest Delta (bottom: smallest)
  static constexpr std::int64_t anchor = 1;       ///< T_glob threshold: k-th largest eligible FAI (bottom: smallest)
  static constexpr std::int64_t waad_median = 2;  ///< tau_waad
  static constexpr std::int64_t jump = 3;         ///< tau_Delta (rounded to float; comparisons use the exact value)
  static constexpr std::int64_t count = 4;
};

struct peak_params {
  /// Which bits of `selected` put a token in the set: with top_q's 0/1 masks the default (any
  /// bit) is right; with token_sets' flags pass e.g. token_flag::preplan. Must be nonzero.
  token_flag select_bits = token_flag::any;
};

struct rhythm_stats_params {
  top_q_params selection{};        ///< q and bottom of the sets the peaks live in
  fai_horizon horizon{};           ///< the horizons FAI was computed with
  std::int64_t follow_window = 3;  ///< k_follow >= 0: a WAAD peak up to k_follow tokens before a FAI peak counts
  std::int64_t shuffles = 100;     ///< draws of the shuffled baseline, >= 1
  std::uint64_t seed = 0;          ///< seed of the shuffled baseline
};

/// The result of rhythm_statistics: counts over the batch and pooled shares.
struct rhythm_stats {
  std::int64_t response_tokens = 0;      ///< response tokens of the batch
  std::int64_t waad_peaks = 0;           ///< WAAD peaks (peaks of Delta inside T_loc)
  std::int64_t fai_peaks = 0;            ///< FAI peaks (peaks of FAI inside T_glob)
  std::int64_t fai_peaks_following = 0;  ///< FAI peaks with a WAAD peak in [t - k_follow, t]
  double share = std::numeric_limits<double>::quiet_NaN();     ///< fai_peaks_following / fai_peaks
  double baseline = std::numeric_limits<double>::quiet_NaN();  ///< mean share with WAAD peaks at random positions
  double lift = std::numeric_limits<double>::quiet_NaN();      ///< share / baseline
  double entropy_at_waad_peaks = std::numeric_limits<double>::quiet_NaN();  ///< mean token entropy at WAAD peaks
  double entropy_mean = std::numeric_limits<double>::quiet_NaN();           ///< mean over response tokens
  double entropy_ratio = std::numeric_limits<double>::quiet_NaN();          ///< entropy_at_waad_peaks / entropy_mean
};

namespace detail {
/// `prefix` names the struct in messages (e.g. "params.selection").
inline void check_top_q_params(const top_q_params& p, const std::string& prefix) { check_share(p.q, prefix + ".q"); }

inline void check_dominance_params(const dominance_params& p, const std::string& prefix) {
  expects(p.window >= 1, errc::bad_parameter, text(prefix, ".window"), ">= 1", p.window);
  expects(p.threshold == dominance_threshold_mode::loc_threshold || p.threshold == dominance_threshold_mode::median_delta,
          errc::bad_parameter, text(prefix, ".threshold"),
          "dominance_threshold_mode::loc_threshold (0) or dominance_threshold_mode::median_delta (1)",
          int(p.threshold));
}

inline void check_token_params(const token_params& p) {
  check_top_q_params(p.selection, "params.selection");
  check_dominance_params(p.dominance, "params.dominance");
  check_horizon(p.horizon, "params.horizon");
}
}  // namespace detail

/// waad_jumps: waad [B, N] -> delta [B, N].
template <class T, class Space>
struct waad_jumps_args {
  view<const T, 2, Space> waad;
  view<const segment, 1, Space> segments;
  view<float, 2, Space> delta;
};

/// top_q: values [B, N] (eligible [B, N] bytes, or a null view for "every response token") ->
/// selected [B, N] (0/1), threshold [B].
template <class T, class Space>
struct top_q_args {
  view<const T, 2, Space> values;
  view<const std::uint8_t, 2, Space> eligible;  ///< data_handle() == nullptr: every response token
  view<const segment, 1, Space> segments;
  view<std::uint8_t, 2, Space> selected;
  view<float, 1, Space> threshold;
  top_q_params params;
};

/// token_sets: waad [B, N], fai [B, N] -> flags [B, N] (token_flag bits), thresholds [B, 4] (optional).
template <class W, class F, class Space>
struct token_sets_args {
  view<const W, 2, Space> waad;
  view<const F, 2, Space> fai;
  view<const segment, 1, Space> segments;
  view<std::uint8_t, 2, Space> flags;
  view<float, 2, Space> thresholds;  ///< data_handle() == nullptr: not wanted
  token_params params;
};

/// local_peaks: values [B, N], selected [B, N] (bits) -> peaks [B, N] (0/1).
template <class T, class Space>
struct local_peaks_args {
  view<const T, 2, Space> values;
  view<const std::uint8_t, 2, Space> selected;
  view<const segment, 1, Space> segments;
  view<std::uint8_t, 2, Space> peaks;
  std::uint8_t select_bits;
};

/// rhythm_statistics: waad, fai [B, N], entropy [B, N] (optional) -> rhythm_stats.
template <class W, class F, class E, class Space>
struct rhythm_stats_args {
  view<const W, 2, Space> waad;
  view<const F, 2, Space> fai;
  view<const E, 2, Space> entropy;  ///< data_handle() == nullptr: none
  view<const segment, 1, Space> segments;
  rhythm_stats_params params;
};

}  // namespace rhythm
