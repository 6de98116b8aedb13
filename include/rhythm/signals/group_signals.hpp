#pragma once
/// Group signals: the mean of per-head signals over a head group. Since WAAD and FAI are linear
/// in the map, the mean of per-head WAAD over the local group is exactly WAAD of the local-group
/// averaged map (and FAI likewise for the global group); no averaged map is built.
#include <cstdint>
#include <string>

#include "../core/execution.hpp"
#include "../core/tensor.hpp"
#include "../heads/head_groups.hpp"
#include "../cpu/parallel.hpp"

namespace rhythm {

/// out[b, t] = mean over heads h with (role(b, h) & group) != 0 of per_head[b, h, t].
///
/// per_head [B, H, N] float; roles [B, H] (per sequence) or [H] (pooled) std::uint8_t head_role
/// bits; group head_role::local or head_role::global; out [B, N] float. Every sequence needs at
/// least one head in the group. O(B H N).
template <class Policy, strided_tensor PerHead, strided_tensor Roles, strided_tensor Out>
void group_mean(Policy policy, const PerHead& per_head, const Roles& roles, std::uint8_t group, const Out& out) {
  detail::check_policy<Policy, PerHead, Roles, Out>();
  static_assert(PerHead::rank() == 3 && Out::rank() == 2, "rhythm: per_head must be [B, H, N] and out [B, N]");
  static_assert(Roles::rank() == 1 || Roles::rank() == 2, "rhythm: roles must be [B, H] or [H]");
  static_assert(std::is_same_v<element_of<Out>, float>, "rhythm: out must be a writable view of float");
  const std::int64_t B = per_head.extent(0), H = per_head.extent(1), N = per_head.extent(2);
  auto role = [&](std::int64_t b, std::int64_t h) -> std::uint8_t {
    if constexpr (Roles::rank() == 2) return roles.data_handle()[b * roles.stride(0) + h * roles.stride(1)];
    else return roles.data_handle()[h * roles.stride(0)];
  };
  detail::require(group == head_role::local || group == head_role::global, errc::bad_parameter, "group",
                  "head_role::local (1) or head_role::global (2)", int(group));
  if constexpr (Roles::rank() == 2)
    detail::require(roles.extent(0) == B && roles.extent(1) == H, errc::shape_mismatch, "roles",
                    "[B, H] = [" + std::to_string(B) + ", " + std::to_string(H) + "]", detail::shape_string(roles));
  else
    detail::require(roles.extent(0) == H, errc::shape_mismatch, "roles", "[H] = [" + std::to_string(H) + "]",
                    detail::shape_string(roles));
  detail::require(out.extent(0) == B && out.extent(1) == N, errc::shape_mismatch, "out",
                  "[B, N] = [" + std::to_string(B) + ", " + std::to_string(N) + "]", detail::shape_string(out));
  detail::require(!detail::may_overlap(per_head, out), errc::aliasing, "out", "memory disjoint from per_head",
                  "overlapping memory");
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t members = 0;
    for (std::int64_t h = 0; h < H; ++h) members += (role(b, h) & group) != 0;
    if (members == 0)
      detail::fail(errc::bad_parameter, "roles", "at least one head in the group for every sequence",
                   "none in sequence " + std::to_string(b));
  }
  cpu::parallel_for(cpu::thread_count(policy), B, [&](std::int64_t b, int) {
    std::int64_t members = 0;
    float* o = out.data_handle() + b * out.stride(0);
    for (std::int64_t t = 0; t < N; ++t) o[t * out.stride(1)] = 0.0f;
    for (std::int64_t h = 0; h < H; ++h) {
      if (!(role(b, h) & group)) continue;
      ++members;
      const auto* x = per_head.data_handle() + b * per_head.stride(0) + h * per_head.stride(1);
      for (std::int64_t t = 0; t < N; ++t) o[t * out.stride(1)] += x[t * per_head.stride(2)];
    }
    const float inv = 1.0f / static_cast<float>(members);
    for (std::int64_t t = 0; t < N; ++t) o[t * out.stride(1)] *= inv;
  });
}

}  // namespace rhythm
