#pragma once
/// Local and global head groups (paper Eq. 8) from head spans (Eq. 7).
///
/// Heads are ranked by span d_h; the lowest c = max(1, round(f H)) form the local group (they look
/// near, and feed WAAD) and the highest c the global group (they look far, and feed FAI). Ties
/// prefer the lower head index in both groups. With f > 0.5, or few heads, a head can be in both.
/// Roles are bit masks: head_role::local | head_role::global.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../core/execution.hpp"
#include "../core/tensor.hpp"

namespace rhythm {

/// Bit mask of the groups a head belongs to.
struct head_role {
  static constexpr std::uint8_t none = 0, local = 1, global = 2;
};

struct head_group_params {
  double fraction = 0.3;  ///< f: share of heads in each group, in (0, 1]
};

/// Size c of each group for H heads: max(1, round(f H)), at most H.
inline std::int64_t head_group_size(std::int64_t heads, double fraction) {
  return std::min<std::int64_t>(heads, std::max<std::int64_t>(1, std::llround(fraction * double(heads))));
}

namespace detail {
inline void check_head_group_params(const head_group_params& p) {
  require(p.fraction > 0.0 && p.fraction <= 1.0, errc::bad_parameter, "params.fraction", "a value in (0, 1]",
          p.fraction);
}

/// Writes the roles of H heads with spans span(h) through role(h) = ...
template <class SpanAt, class RoleAt>
void assign_roles(std::int64_t H, std::int64_t c, SpanAt span, RoleAt role) {
  std::vector<std::int64_t> order(H);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return span(a) < span(b); });
  std::vector<std::uint8_t> r(H, head_role::none);
  for (std::int64_t i = 0; i < c; ++i) r[order[i]] |= head_role::local;
  // highest spans, lower index first among equals: sort descending stably
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return span(a) > span(b); });
  for (std::int64_t i = 0; i < c; ++i) r[order[i]] |= head_role::global;
  for (std::int64_t h = 0; h < H; ++h) role(h) = r[h];
}

template <strided_tensor V>
void check_spans_finite(const V& spans) {
  for (std::int64_t b = 0; b < spans.extent(0); ++b)
    for (std::int64_t h = 0; h < spans.extent(1); ++h) {
      const double v = spans.data_handle()[b * spans.stride(0) + h * spans.stride(1)];
      if (!std::isfinite(v))
        fail(errc::non_finite, "spans", "finite values",
             "NaN or Inf at sequence " + std::to_string(b) + ", head " + std::to_string(h));
    }
}
}  // namespace detail

/// Head groups per sequence.
///   spans [B, H] float (head_signals_* output), roles [B, H] std::uint8_t out (head_role bits).
/// O(B H log H); host only (the CUDA backend copies spans back: they are B H floats).
template <class Policy, strided_tensor Spans, strided_tensor Roles>
void head_groups(Policy, const Spans& spans, const Roles& roles, const head_group_params& params = {}) {
  detail::check_policy<Policy, Spans, Roles>();
  static_assert(Spans::rank() == 2 && Roles::rank() == 2, "rhythm: spans and roles must have rank 2: [B, H]");
  static_assert(std::is_same_v<element_of<Roles>, std::uint8_t>, "rhythm: roles must be a writable view of std::uint8_t");
  detail::check_head_group_params(params);
  const std::int64_t B = spans.extent(0), H = spans.extent(1);
  detail::require(roles.extent(0) == B && roles.extent(1) == H, errc::shape_mismatch, "roles",
                  "[B, H] = " + detail::shape_string(spans), detail::shape_string(roles));
  detail::check_spans_finite(spans);
  const std::int64_t c = head_group_size(H, params.fraction);
  for (std::int64_t b = 0; b < B; ++b)
    detail::assign_roles(
        H, c, [&](std::int64_t h) { return spans.data_handle()[b * spans.stride(0) + h * spans.stride(1)]; },
        [&](std::int64_t h) -> std::uint8_t& { return roles.data_handle()[b * roles.stride(0) + h * roles.stride(1)]; });
}

/// Head groups pooled over a batch: heads ranked by their span averaged over the B sequences.
///   spans [B, H] float, roles [H] std::uint8_t out.
template <class Policy, strided_tensor Spans, strided_tensor Roles>
void pooled_head_groups(Policy, const Spans& spans, const Roles& roles, const head_group_params& params = {}) {
  detail::check_policy<Policy, Spans, Roles>();
  static_assert(Spans::rank() == 2 && Roles::rank() == 1, "rhythm: spans must be [B, H] and roles [H]");
  static_assert(std::is_same_v<element_of<Roles>, std::uint8_t>, "rhythm: roles must be a writable view of std::uint8_t");
  detail::check_head_group_params(params);
  const std::int64_t B = spans.extent(0), H = spans.extent(1);
  detail::require(roles.extent(0) == H, errc::shape_mismatch, "roles", "[H] = [" + std::to_string(H) + "]",
                  detail::shape_string(roles));
  detail::check_spans_finite(spans);
  std::vector<double> mean(H, 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) mean[h] += spans.data_handle()[b * spans.stride(0) + h * spans.stride(1)];
  detail::assign_roles(
      H, head_group_size(H, params.fraction), [&](std::int64_t h) { return mean[h]; },
      [&](std::int64_t h) -> std::uint8_t& { return roles.data_handle()[h * roles.stride(0)]; });
}

}  // namespace rhythm
