#pragma once
/// Vocabulary of the heads stage (heads/head_groups.hpp, signals/group_signals.hpp): head roles,
/// the group parameters, and the flat argument structs the backends receive.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "bits.hpp"
#include "checks.hpp"
#include "tensor.hpp"

namespace rhythm {

/// The groups a head belongs to, as bits: local (short span: feeds WAAD), global (long span:
/// feeds FAI), both (possible with f > 0.5 or few heads), or none. Stored as one byte; a view of
/// std::uint8_t is accepted wherever a view of head_role is.
enum class head_role : std::uint8_t { none = 0, local = 1, global = 2 };
template <>
inline constexpr bool enable_bit_operators<head_role> = true;

/// A role view's element: head_role or its byte.
template <class T>
concept role_element = std::is_same_v<std::remove_cv_t<T>, head_role> || std::is_same_v<std::remove_cv_t<T>, std::uint8_t>;

struct head_group_params {
  double fraction = 0.3;  ///< f: share of heads in each group, in (0, 1]
};

/// Size c of each group for H heads: max(1, round(f H)), at most H.
inline std::int64_t head_group_size(std::int64_t heads, double fraction) {
  return std::min<std::int64_t>(heads, std::max<std::int64_t>(1, std::llround(fraction * double(heads))));
}

namespace detail {
inline void check_head_group_params(const head_group_params& p, const char* name = "params.fraction") {
  expects(p.fraction > 0.0 && p.fraction <= 1.0, errc::bad_parameter, name, "a value in (0, 1]", p.fraction);
}
}  // namespace detail

/// head_groups: spans [B, H] -> roles [B, H] (per sequence), c heads per group.
template <class Space>
struct head_group_args {
  view<const float, 2, Space> spans;
  view<std::uint8_t, 2, Space> roles;
  std::int64_t group_size;
};

/// pooled_head_groups: spans [B, H] -> roles [H] (ranked by the span averaged over the batch).
template <class Space>
struct pooled_head_group_args {
  view<const float, 2, Space> spans;
  view<std::uint8_t, 1, Space> roles;
  std::int64_t group_size;
};

/// group_mean: out[b, t] = mean over heads h with roles[b, h] & group of per_head[b, h, t].
/// Pooled roles arrive as [B, H] with stride 0 on B.
template <class Space>
struct group_mean_args {
  view<const float, 3, Space> per_head;
  view<const std::uint8_t, 2, Space> roles;
  std::uint8_t group;
  view<float, 2, Space> out;
};

namespace detail {
/// A view of roles or flags (enum or byte) as a view of bytes, for the backends.
template <class T, std::size_t R, class S>
auto as_bytes(const view<T, R, S>& v) {
  using B = std::conditional_t<std::is_const_v<T>, const std::uint8_t, std::uint8_t>;
  std::array<std::int64_t, R> extents{}, strides{};
  for (std::size_t r = 0; r < R; ++r) extents[r] = v.extent(r), strides[r] = v.stride(r);
  return view<B, R, S>(reinterpret_cast<B*>(v.data_handle()), extents, strides);
}
}  // namespace detail

}  // namespace rhythm
