#pragma once
/// Local and global head groups (paper Eq. 8) from head spans (Eq. 7).
///
/// Heads are ranked by span d_h; the lowest c = max(1, round(f H)) form the local group (they look
/// near, and feed WAAD) and the highest c the global group (they look far, and feed FAI). Ties
/// prefer the lower head index in both groups. With f > 0.5, or few heads, a head can be in both.
/// Roles are rhythm::head_role bits (head_role::local | head_role::global); role views may hold
/// head_role or std::uint8_t.
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/execution.hpp"
#include "../core/head_types.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"

namespace rhythm {

/// Head groups per sequence.
///   spans [B, H] float (head_signals_* output); roles [B, H] head_role out.
/// Throws (writing nothing) on f outside (0, 1], mismatched extents, a broadcast or overlapping
/// output, or NaN/Inf in spans. O(B H log H).
template <class Policy, strided_tensor Spans, strided_tensor Roles>
void head_groups(const Policy& policy, const Spans& spans, const Roles& roles, const head_group_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Spans, Roles>()) {
    static_assert(Spans::rank() == 2 && Roles::rank() == 2, "rhythm: spans and roles must have rank 2: [B, H]");
    static_assert(std::is_same_v<typename Spans::value_type, float>, "rhythm: spans must be a view of float");
    static_assert(role_element<element_of<Roles>>, "rhythm: roles must be a writable view of rhythm::head_role");
    detail::check_head_group_params(params);
    const std::int64_t B = spans.extent(0), H = spans.extent(1);
    detail::check_extents(roles, "roles", "[B, H]", B, H);
    detail::check_output(roles, "roles");
    detail::check_disjoint(roles, "roles", spans);
    backend<Policy>::head_groups(policy, head_group_args<memory_space_of<Spans>>{
        as_const_view(spans), detail::as_bytes(as_view(roles)), head_group_size(H, params.fraction)});
  }
}

/// Head groups pooled over a batch: heads ranked by their span averaged over the B sequences.
///   spans [B, H] float; roles [H] head_role out. Otherwise as head_groups.
template <class Policy, strided_tensor Spans, strided_tensor Roles>
void pooled_head_groups(const Policy& policy, const Spans& spans, const Roles& roles,
                        const head_group_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Spans, Roles>()) {
    static_assert(Spans::rank() == 2 && Roles::rank() == 1, "rhythm: spans must be [B, H] and roles [H]");
    static_assert(std::is_same_v<typename Spans::value_type, float>, "rhythm: spans must be a view of float");
    static_assert(role_element<element_of<Roles>>, "rhythm: roles must be a writable view of rhythm::head_role");
    detail::check_head_group_params(params);
    const std::int64_t H = spans.extent(1);
    detail::check_extents(roles, "roles", "[H]", H);
    detail::check_output(roles, "roles");
    detail::check_disjoint(roles, "roles", spans);
    backend<Policy>::pooled_head_groups(policy, pooled_head_group_args<memory_space_of<Spans>>{
        as_const_view(spans), detail::as_bytes(as_view(roles)), head_group_size(H, params.fraction)});
  }
}

}  // namespace rhythm
