#pragma once
/// CUDA backend of the heads stage: head groups (Eq. 8), pooled head groups and group means of
/// per-head signals, bit-identical to the CPU backend (cpu/heads.hpp).
///
/// Ranking: a head's place in the CPU's stable sort is counted directly, one thread per head:
///   rank_up(h)   = #{j : d_j < d_h} + #{j < h : d_j == d_h}     local  iff rank_up(h)   < c
///   rank_down(h) = #{j : d_j > d_h} + #{j < h : d_j == d_h}     global iff rank_down(h) < c
/// (O(H) per head). Pooled spans are summed in double over b in order, as the CPU does.
/// Value errors (core/status.hpp): spans non-finite at (b, h), key b·H + h; group_mean's empty
/// group in sequence b, key b.
#include <cstdint>

#include "../core/dtypes.hpp"
#include "../core/head_types.hpp"
#include "../core/status.hpp"
#include "runtime.cuh"

namespace rhythm::cuda::detail::head_rows {

/// Staging of head_groups: the error slot and the roles [B·H] (row-major).
struct head_groups_layout {
  error_key* slot;
  std::uint8_t* roles;
};
inline head_groups_layout plan_head_groups(workspace_carver& c, std::int64_t B, std::int64_t H) {
  return {c.take<error_key>(1), c.take<std::uint8_t>(B * H)};
}

/// Staging of pooled_head_groups: the error slot, the span sums [H] and the roles [H].
struct pooled_head_groups_layout {
  error_key* slot;
  double* sums;
  std::uint8_t* roles;
};
inline pooled_head_groups_layout plan_pooled_head_groups(workspace_carver& c, std::int64_t H) {
  return {c.take<error_key>(1), c.take<double>(H), c.take<std::uint8_t>(H)};
}

/// group_mean computes in its commit kernel: only the error slot.
struct group_mean_layout {
  error_key* slot;
};
inline group_mean_layout plan_group_mean(workspace_carver& c) { return {c.take<error_key>(1)}; }

/// Role bits of head h among H heads with spans span[j · stride]: local if among the c lowest,
/// global if among the c highest, the lower index first among equals (the CPU's stable sorts).
template <class T>
RHYTHM_HOST_DEVICE std::uint8_t role_of(const T* span, std::int64_t stride, std::int64_t H, std::int64_t h,
                                        std::int64_t c) {
  const T x = span[h * stride];
  std::int64_t below = 0, above = 0;
  for (std::int64_t j = 0; j < H; ++j) {
    const T y = span[j * stride];
    const bool tie_first = y == x && j < h;
    below += y < x || tie_first;
    above += y > x || tie_first;
  }
  return static_cast<std::uint8_t>((below < c ? bits(head_role::local) : 0) | (above < c ? bits(head_role::global) : 0));
}

/// The value error of a spans key b·H + h.
struct spans_decoder {
  std::int64_t H;
  RHYTHM_HOST_DEVICE value_error operator()(error_key key) const {
    const auto i = static_cast<std::int64_t>(key);
    return non_finite_error(value_argument::spans, value_location::sequence_head, value_scope::all, i / H, i % H);
  }
};

/// The value error of a group_mean key b.
struct empty_group_decoder {
  RHYTHM_HOST_DEVICE value_error operator()(error_key key) const {
    value_error e;
    e.check = value_check::empty_head_group, e.at[0] = static_cast<std::int64_t>(key);
    return e;
  }
};

/// head_groups, item i = b·H + h of B·H: stages the role of (b, h); returns its check's key.
template <class S>
RHYTHM_HOST_DEVICE error_key head_groups_item(const head_group_args<S>& a, const head_groups_layout& w,
                                              std::int64_t i) {
  const std::int64_t H = a.spans.extent(1), b = i / H, h = i % H;
  w.roles[i] = role_of(&a.spans(b, 0), a.spans.stride(1), H, h, a.group_size);
  return is_finite_bits(a.spans(b, h)) ? no_error : static_cast<error_key>(i);
}

/// pooled_head_groups, item h of H: sums spans(., h) over b in double; returns the key of its
/// first non-finite span.
template <class S>
RHYTHM_HOST_DEVICE error_key pooled_sum_item(const pooled_head_group_args<S>& a, const pooled_head_groups_layout& w,
                                             std::int64_t h) {
  const std::int64_t B = a.spans.extent(0), H = a.spans.extent(1);
  error_key key = no_error;
  double sum = 0.0;
  for (std::int64_t b = 0; b < B; ++b) {
    const float x = a.spans(b, h);
    if (!is_finite_bits(x) && key == no_error) key = static_cast<error_key>(b * H + h);
    sum += x;
  }
  w.sums[h] = sum;
  return key;
}

/// pooled_head_groups, item h of H (after every sum): stages its role.
template <class S>
RHYTHM_HOST_DEVICE void pooled_role_item(const pooled_head_group_args<S>& a, const pooled_head_groups_layout& w,
                                         std::int64_t h) {
  w.roles[h] = role_of(w.sums, 1, a.spans.extent(1), h, a.group_size);
}

/// group_mean, item b of B: the key b if sequence b has no head in the group.
template <class S>
RHYTHM_HOST_DEVICE error_key group_check_item(const group_mean_args<S>& a, std::int64_t b) {
  for (std::int64_t h = 0; h < a.per_head.extent(1); ++h)
    if (a.roles(b, h) & a.group) return no_error;
  return static_cast<error_key>(b);
}

/// group_mean, item i = b·N + t of B·N: writes out(b, t), summing in head order as the CPU does
/// (0 + x_h1 + x_h2 + ...) * (1 / members).
template <class S>
RHYTHM_HOST_DEVICE void group_mean_item(const group_mean_args<S>& a, std::int64_t i) {
  const std::int64_t H = a.per_head.extent(1), N = a.per_head.extent(2), b = i / N, t = i % N;
  std::int64_t members = 0;
  float sum = 0.0f;
  for (std::int64_t h = 0; h < H; ++h) {
    if (!(a.roles(b, h) & a.group)) continue;
    ++members;
    sum += a.per_head(b, h, t);
  }
#if defined(__CUDA_ARCH__)
  const float inv = __fdiv_rn(1.0f, static_cast<float>(members));  // IEEE whatever the division flags
  a.out(b, t) = __fmul_rn(sum, inv);
#else
  const float inv = 1.0f / static_cast<float>(members);
  a.out(b, t) = sum * inv;
#endif
}

#if defined(__CUDACC__)
template <class S>
__global__ void head_groups_kernel(head_group_args<S> a, head_groups_layout w) {
  const std::int64_t n = a.spans.extent(0) * a.spans.extent(1);
  for (std::int64_t i = thread_index(); i < n; i += thread_count())
    if (const error_key key = head_groups_item(a, w, i); key != no_error) report(w.slot, key);
}

template <class S>
__global__ void head_groups_commit(head_group_args<S> a, head_groups_layout w, value_error* status) {
  const std::int64_t H = a.spans.extent(1), n = a.spans.extent(0) * H;
  if (call_failed(w.slot, status, spans_decoder{H})) return;
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) a.roles(i / H, i % H) = w.roles[i];
}

template <class S>
__global__ void pooled_sum_kernel(pooled_head_group_args<S> a, pooled_head_groups_layout w) {
  for (std::int64_t h = thread_index(); h < a.spans.extent(1); h += thread_count())
    if (const error_key key = pooled_sum_item(a, w, h); key != no_error) report(w.slot, key);
}

template <class S>
__global__ void pooled_role_kernel(pooled_head_group_args<S> a, pooled_head_groups_layout w) {
  for (std::int64_t h = thread_index(); h < a.spans.extent(1); h += thread_count()) pooled_role_item(a, w, h);
}

template <class S>
__global__ void pooled_head_groups_commit(pooled_head_group_args<S> a, pooled_head_groups_layout w,
                                          value_error* status) {
  if (call_failed(w.slot, status, spans_decoder{a.spans.extent(1)})) return;
  for (std::int64_t h = thread_index(); h < a.spans.extent(1); h += thread_count()) a.roles(h) = w.roles[h];
}

template <class S>
__global__ void group_check_kernel(group_mean_args<S> a, group_mean_layout w) {
  for (std::int64_t b = thread_index(); b < a.per_head.extent(0); b += thread_count())
    if (const error_key key = group_check_item(a, b); key != no_error) report(w.slot, key);
}

template <class S>
__global__ void group_mean_commit(group_mean_args<S> a, group_mean_layout w, value_error* status) {
  if (call_failed(w.slot, status, empty_group_decoder{})) return;
  const std::int64_t n = a.per_head.extent(0) * a.per_head.extent(2);
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) group_mean_item(a, i);
}
#endif

}  // namespace rhythm::cuda::detail::head_rows

namespace rhythm::cuda {

/// Workspace bytes of head_groups for spans [B, H]: the error slot and B·H staged role bytes,
/// each piece 256-byte aligned (8 + B·H bytes after alignment).
inline std::size_t head_groups_workspace_size(std::int64_t B, std::int64_t H) {
  detail::workspace_carver c;
  detail::head_rows::plan_head_groups(c, B, H);
  return c.used();
}

/// Workspace bytes of pooled_head_groups for spans [B, H]: the error slot, H double sums and H
/// staged role bytes, each piece 256-byte aligned.
inline std::size_t pooled_head_groups_workspace_size(std::int64_t /*B*/, std::int64_t H) {
  detail::workspace_carver c;
  detail::head_rows::plan_pooled_head_groups(c, H);
  return c.used();
}

/// Workspace bytes of group_mean for per_head [B, H, N]: the error slot only (8 bytes); the
/// means are computed by the commit kernel.
inline std::size_t group_mean_workspace_size(std::int64_t /*B*/, std::int64_t /*H*/, std::int64_t /*N*/) {
  detail::workspace_carver c;
  detail::head_rows::plan_group_mean(c);
  return c.used();
}

}  // namespace rhythm::cuda

#if defined(__CUDACC__)
namespace rhythm::cuda::detail {

/// Head groups per sequence: spans [B, H] -> roles [B, H]. One thread per (b, h), O(H) each.
inline void head_groups(const exec::cuda& p, const head_group_args<device_space>& a) {
  const std::int64_t B = a.spans.extent(0), H = a.spans.extent(1);
  check_cuda_policy(p, head_groups_workspace_size(B, H), "head_groups_workspace_size");
  if (B * H == 0) return;  // nothing to check or write
  workspace_carver c = carver_of(p);
  const auto w = head_rows::plan_head_groups(c, B, H);
  reset_slot(w.slot, p.stream);
  head_rows::head_groups_kernel<<<blocks_for(B * H), 256, 0, p.stream>>>(a, w);
  check_launch("head_groups_kernel");
  head_rows::head_groups_commit<<<blocks_for(B * H), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("head_groups_commit");
}

/// Head groups pooled over the batch: spans [B, H] -> roles [H]. One thread per head.
inline void pooled_head_groups(const exec::cuda& p, const pooled_head_group_args<device_space>& a) {
  const std::int64_t B = a.spans.extent(0), H = a.spans.extent(1);
  check_cuda_policy(p, pooled_head_groups_workspace_size(B, H), "pooled_head_groups_workspace_size");
  if (H == 0) return;  // no head: nothing to check or write (B == 0 still ranks H zero sums)
  workspace_carver c = carver_of(p);
  const auto w = head_rows::plan_pooled_head_groups(c, H);
  reset_slot(w.slot, p.stream);
  head_rows::pooled_sum_kernel<<<blocks_for(H, 128), 128, 0, p.stream>>>(a, w);
  check_launch("pooled_sum_kernel");
  head_rows::pooled_role_kernel<<<blocks_for(H, 128), 128, 0, p.stream>>>(a, w);
  check_launch("pooled_role_kernel");
  head_rows::pooled_head_groups_commit<<<blocks_for(H), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("pooled_head_groups_commit");
}

/// Group means: per_head [B, H, N], roles [B, H] -> out [B, N]. One thread per (b, t), O(H) each.
inline void group_mean(const exec::cuda& p, const group_mean_args<device_space>& a) {
  const std::int64_t B = a.per_head.extent(0), H = a.per_head.extent(1), N = a.per_head.extent(2);
  check_cuda_policy(p, group_mean_workspace_size(B, H, N), "group_mean_workspace_size");
  if (B == 0) return;  // nothing to check or write (N == 0 still checks every group)
  workspace_carver c = carver_of(p);
  const auto w = head_rows::plan_group_mean(c);
  reset_slot(w.slot, p.stream);
  head_rows::group_check_kernel<<<blocks_for(B, 128), 128, 0, p.stream>>>(a, w);
  check_launch("group_check_kernel");
  head_rows::group_mean_commit<<<blocks_for(B * N), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("group_mean_commit");
}

}  // namespace rhythm::cuda::detail
#endif
