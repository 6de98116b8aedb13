#pragma once
/// Group signals: the mean of per-head signals over a head group. Since WAAD and FAI are linear
/// in the map, the mean of per-head WAAD over the local group is exactly WAAD of the local-group
/// averaged map (and FAI likewise for the global group); no averaged map is built.
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/execution.hpp"
#include "../core/head_types.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"

namespace rhythm {

/// out[b, t] = mean over heads h with (role(b, h) & group) != none of per_head[b, h, t].
///
/// per_head [B, H, N] float; roles [B, H] (per sequence) or [H] (pooled) head_role bits; group
/// head_role::local or head_role::global; out [B, N] float. Every sequence needs at least one
/// head in the group (else errc::bad_parameter naming 'roles', from the backend). O(B H N).
template <class Policy, strided_tensor PerHead, strided_tensor Roles, strided_tensor Out>
void group_mean(const Policy& policy, const PerHead& per_head, const Roles& roles, head_role group, const Out& out) {
  if constexpr (detail::check_policy<Policy, PerHead, Roles, Out>()) {
    static_assert(PerHead::rank() == 3 && Out::rank() == 2, "rhythm: per_head must be [B, H, N] and out [B, N]");
    static_assert(Roles::rank() == 1 || Roles::rank() == 2, "rhythm: roles must be [B, H] or [H]");
    static_assert(std::is_same_v<typename PerHead::value_type, float>, "rhythm: per_head must be a view of float");
    static_assert(role_element<typename Roles::value_type>, "rhythm: roles must be a view of rhythm::head_role");
    static_assert(std::is_same_v<element_of<Out>, float>, "rhythm: out must be a writable view of float");
    const std::int64_t B = per_head.extent(0), H = per_head.extent(1), N = per_head.extent(2);
    detail::expects(group == head_role::local || group == head_role::global, errc::bad_parameter, "group",
                    "head_role::local (1) or head_role::global (2)", int(bits(group)));
    using space = memory_space_of<PerHead>;
    view<const std::uint8_t, 2, space> roles2;
    if constexpr (Roles::rank() == 2) {
      detail::check_extents(roles, "roles", "[B, H]", B, H);
      roles2 = detail::as_bytes(as_const_view(roles));
    } else {
      detail::check_extents(roles, "roles", "[H]", H);
      const auto r = detail::as_bytes(as_const_view(roles));
      roles2 = view<const std::uint8_t, 2, space>(r.data_handle(), {B, H}, {0, r.stride(0)});  // one row for all
    }
    detail::check_extents(out, "out", "[B, N]", B, N);
    detail::check_output(out, "out");
    detail::check_disjoint(out, "out", per_head, roles);
    backend<Policy>::group_mean(policy, group_mean_args<space>{as_const_view(per_head), roles2, bits(group), as_view(out)});
  }
}

}  // namespace rhythm
