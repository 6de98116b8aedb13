#pragma once
/// CPU backend of the heads stage: head groups (Eq. 8) and group means of per-head signals.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../core/head_types.hpp"
#include "../core/status.hpp"
#include "parallel.hpp"
#include "values.hpp"

namespace rhythm::cpu {
namespace detail {

/// Roles of H heads with spans span(h): the c lowest spans local, the c highest global, lower
/// index first among equals; written through role(h).
template <class SpanAt, class RoleAt>
void assign_roles(std::int64_t H, std::int64_t c, SpanAt span, RoleAt role) {
  std::vector<std::int64_t> order(H);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return span(a) < span(b); });
  std::vector<head_role> r(H, head_role::none);
  for (std::int64_t i = 0; i < c; ++i) r[order[i]] |= head_role::local;
  // highest spans, lower index first among equals: sort descending stably
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return span(a) > span(b); });
  for (std::int64_t i = 0; i < c; ++i) r[order[i]] |= head_role::global;
  for (std::int64_t h = 0; h < H; ++h) role(h) = bits(r[h]);
}

inline value_error first_non_finite_span(const view<const float, 2>& spans) {
  for (std::int64_t b = 0; b < spans.extent(0); ++b)
    for (std::int64_t h = 0; h < spans.extent(1); ++h)
      if (!is_finite(spans(b, h)))
        return non_finite_error(value_argument::spans, value_location::sequence_head, value_scope::all, b, h);
  return {};
}

}  // namespace detail

inline void head_groups(int, const head_group_args<host_space>& a) {
  raise(detail::first_non_finite_span(a.spans));
  for (std::int64_t b = 0; b < a.spans.extent(0); ++b)
    detail::assign_roles(
        a.spans.extent(1), a.group_size, [&](std::int64_t h) { return a.spans(b, h); },
        [&](std::int64_t h) -> std::uint8_t& { return a.roles(b, h); });
}

inline void pooled_head_groups(int, const pooled_head_group_args<host_space>& a) {
  raise(detail::first_non_finite_span(a.spans));
  const std::int64_t B = a.spans.extent(0), H = a.spans.extent(1);
  std::vector<double> mean(H, 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) mean[h] += a.spans(b, h);
  detail::assign_roles(
      H, a.group_size, [&](std::int64_t h) { return mean[h]; },
      [&](std::int64_t h) -> std::uint8_t& { return a.roles(h); });
}

inline void group_mean(int threads, const group_mean_args<host_space>& a) {
  const std::int64_t B = a.per_head.extent(0), H = a.per_head.extent(1), N = a.per_head.extent(2);
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t members = 0;
    for (std::int64_t h = 0; h < H; ++h) members += (a.roles(b, h) & a.group) != 0;
    if (members == 0) {
      value_error e;
      e.check = value_check::empty_head_group, e.at[0] = b;
      raise(e);
    }
  }
  if (N == 0) return;  // nothing to write (and no element to take an address of)
  parallel_for(threads, B, [&](std::int64_t b, int) {
    std::int64_t members = 0;
    float* o = &a.out(b, 0);
    const std::int64_t os = a.out.stride(1), xs = a.per_head.stride(2);
    for (std::int64_t t = 0; t < N; ++t) o[t * os] = 0.0f;
    for (std::int64_t h = 0; h < H; ++h) {
      if (!(a.roles(b, h) & a.group)) continue;
      ++members;
      const float* x = &a.per_head(b, h, 0);
      for (std::int64_t t = 0; t < N; ++t) o[t * os] += x[t * xs];
    }
    const float inv = 1.0f / static_cast<float>(members);
    for (std::int64_t t = 0; t < N; ++t) o[t * os] *= inv;
  });
}

}  // namespace rhythm::cpu
