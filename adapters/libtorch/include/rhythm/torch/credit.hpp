#pragma once
/// Tensor-in, tensor-out wrappers of the signal primitives and of the one-call pipeline.
///
/// Inputs (maps, q, k, entropies where noted) may be float32, bfloat16 or float16 with any
/// non-negative strides; the core accumulates in float and every output is a new contiguous
/// float32 CPU tensor. Segments are an int64 tensor [B, 3] or a std::vector / std::span of
/// rhythm::segment (segments_arg). `threads` picks the CPU parallelism: 0 (default) uses
/// at::get_num_threads(), the intra-op thread count that torch's own CPU ops use; n > 0 uses n.
/// Results do not depend on it.
///
/// Errors: the adapter's checks of the tensors (defined, layout, device, dtype, rank, strides)
/// throw c10::Error; the core's checks of shapes between arguments, segment ranges, params and
/// NaN/Inf throw rhythm::error (errc codes). Nothing is returned on error.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <type_traits>

#include <rhythm/core/execution.hpp>
#include <rhythm/pipeline.hpp>
#include <rhythm/signals/head_signals.hpp>

#include "view.hpp"

namespace rhythm::torch {

/// Per-head signals, float32: span [B, H], waad [B, H, N], fai [B, H, N] (head_signals.hpp).
struct head_signal_tensors {
  ::at::Tensor span, waad, fai;
};

/// gamma [B, N] (1 outside responses), shaped advantages [B, N] (0 outside responses), float32,
/// and what the run found (pipeline.hpp).
struct credit_tensors {
  ::at::Tensor gamma, shaped;
  ::rhythm::pipeline_diagnostics diagnostics;
};

namespace detail {

inline ::rhythm::exec::par host_policy(int threads) {
  TORCH_CHECK(threads >= 0, "rhythm::torch: argument 'threads': expected >= 0 (0: at::get_num_threads()), got ",
              threads);
  return {threads > 0 ? threads : ::at::get_num_threads()};
}

inline ::at::Tensor float_tensor(std::initializer_list<std::int64_t> sizes) {
  return ::at::empty(sizes, ::at::TensorOptions().dtype(::at::kFloat));
}

template <std::size_t Rank>
::rhythm::view<float, Rank> out_view(const ::at::Tensor& t) {  // contiguous, freshly allocated
  std::array<std::int64_t, Rank> extents{};
  for (std::size_t r = 0; r < Rank; ++r) extents[r] = t.size(static_cast<std::int64_t>(r));
  return ::rhythm::view<float, Rank>(t.data_ptr<float>(), extents);
}

inline head_signal_tensors allocate_signals(std::int64_t B, std::int64_t H, std::int64_t N) {
  return {float_tensor({B, H}), float_tensor({B, H, N}), float_tensor({B, H, N})};
}

/// Calls f(std::type_identity<E>{}) for the input element type E shared by q and k.
template <class F>
decltype(auto) dispatch_qk(const ::at::Tensor& q, const ::at::Tensor& k, F&& f) {
  check_strided_cpu(q, "q", 4);
  check_strided_cpu(k, "k", 4);
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), "rhythm::torch: argument 'k': expected the dtype of q (",
              ::c10::toString(q.scalar_type()), "), got dtype ", ::c10::toString(k.scalar_type()));
  return dispatch_input_dtype(q, "q", f);
}

template <class Shaping>
constexpr void forbid_entropy_policy() {
  static_assert(!::rhythm::detail::policy_needs_entropies<Shaping>(),
                "rhythm::torch: this shaping policy reads token entropies: call the overload that takes an "
                "entropies tensor [B, N] after group_ids");
}

/// Allocates gamma and shaped, checks rewards and group ids, runs `run(rewards, group_ids, gamma, shaped)`.
template <class Run>
credit_tensors run_credit(std::int64_t B, std::int64_t N, const ::at::Tensor& rewards, const ::at::Tensor& group_ids,
                          Run&& run) {
  const auto r = view<const float, 1>(rewards, "rewards");
  const auto g = view<const std::int64_t, 1>(group_ids, "group_ids");
  credit_tensors out{float_tensor({B, N}), float_tensor({B, N}), {}};
  out.diagnostics = run(r, g, out_view<2>(out.gamma), out_view<2>(out.shaped));
  return out;
}

template <class Shaping>
credit_tensors credit_from_qk(::rhythm::credit_pipeline& pipeline, const ::at::Tensor& q, const ::at::Tensor& k,
                              const segments_arg& segments, const ::at::Tensor& rewards, const ::at::Tensor& group_ids,
                              const ::at::Tensor* entropies, const Shaping& shaping,
                              const ::rhythm::pipeline_params& params, int threads) {
  const auto policy = host_policy(threads);
  return dispatch_qk(q, k, [&]<class E>(std::type_identity<E>) {
    const auto qv = view<const E, 4>(q, "q");
    const auto kv = view<const E, 4>(k, "k");
    return run_credit(qv.extent(0), qv.extent(2), rewards, group_ids, [&](auto r, auto g, auto gamma, auto shaped) {
      if (entropies)
        return pipeline.run_from_qk(policy, qv, kv, segments.view(), r, g, view<const float, 2>(*entropies, "entropies"),
                                    shaping, gamma, shaped, params);
      if constexpr (!::rhythm::detail::policy_needs_entropies<Shaping>())
        return pipeline.run_from_qk(policy, qv, kv, segments.view(), r, g, shaping, gamma, shaped, params);
      else
        return ::rhythm::pipeline_diagnostics{};  // unreachable: forbid_entropy_policy
    });
  });
}

template <class Shaping>
credit_tensors credit_from_maps(::rhythm::credit_pipeline& pipeline, const ::at::Tensor& maps,
                                const segments_arg& segments, const ::at::Tensor& rewards,
                                const ::at::Tensor& group_ids, const ::at::Tensor* entropies, const Shaping& shaping,
                                const ::rhythm::pipeline_params& params, int threads) {
  const auto policy = host_policy(threads);
  check_strided_cpu(maps, "maps", 4);
  return dispatch_input_dtype(maps, "maps", [&]<class E>(std::type_identity<E>) {
    const auto mv = view<const E, 4>(maps, "maps");
    return run_credit(mv.extent(0), mv.extent(2), rewards, group_ids, [&](auto r, auto g, auto gamma, auto shaped) {
      if (entropies)
        return pipeline.run_from_maps(policy, mv, segments.view(), r, g, view<const float, 2>(*entropies, "entropies"),
                                      shaping, gamma, shaped, params);
      if constexpr (!::rhythm::detail::policy_needs_entropies<Shaping>())
        return pipeline.run_from_maps(policy, mv, segments.view(), r, g, shaping, gamma, shaped, params);
      else
        return ::rhythm::pipeline_diagnostics{};  // unreachable: forbid_entropy_policy
    });
  });
}

}  // namespace detail

/// Span, WAAD and FAI of every head from attention maps [B, H, N, N] (float32, bfloat16 or float16;
/// query t on dim 2, key s on dim 3). See rhythm::head_signals_from_maps.
inline head_signal_tensors head_signals_from_maps(const ::at::Tensor& maps, const segments_arg& segments,
                                                  const ::rhythm::signal_params& params = {}, int threads = 0) {
  const auto policy = detail::host_policy(threads);
  detail::check_strided_cpu(maps, "maps", 4);
  return dispatch_input_dtype(maps, "maps", [&]<class E>(std::type_identity<E>) {
    const auto m = view<const E, 4>(maps, "maps");
    head_signal_tensors out = detail::allocate_signals(m.extent(0), m.extent(1), m.extent(2));
    ::rhythm::head_signals_from_maps(policy, m, segments.view(), detail::out_view<2>(out.span),
                                     detail::out_view<3>(out.waad), detail::out_view<3>(out.fai), params);
    return out;
  });
}

/// Span, WAAD and FAI of every query head from post-RoPE q [B, Hq, N, d] and k [B, Hkv, N, d]
/// (the same dtype: float32, bfloat16 or float16; Hq % Hkv == 0), without an N x N map.
/// See rhythm::head_signals_from_qk.
inline head_signal_tensors head_signals_from_qk(const ::at::Tensor& q, const ::at::Tensor& k,
                                                const segments_arg& segments,
                                                const ::rhythm::signal_params& params = {}, int threads = 0) {
  const auto policy = detail::host_policy(threads);
  return detail::dispatch_qk(q, k, [&]<class E>(std::type_identity<E>) {
    const auto qv = view<const E, 4>(q, "q");
    const auto kv = view<const E, 4>(k, "k");
    head_signal_tensors out = detail::allocate_signals(qv.extent(0), qv.extent(1), qv.extent(2));
    ::rhythm::head_signals_from_qk(policy, qv, kv, segments.view(), detail::out_view<2>(out.span),
                                   detail::out_view<3>(out.waad), detail::out_view<3>(out.fai), params);
    return out;
  });
}

/// gamma and shaped advantages from q [B, Hq, N, d], k [B, Hkv, N, d] (as head_signals_from_qk),
/// segments, rewards [B] float32 and GRPO group ids [B] int64, with a shaping policy
/// (rhythm::shaping::coupled_rhythm by default). Runs rhythm::credit_pipeline::run_from_qk on
/// `pipeline`, whose buffers are reused across calls and whose intermediates (head spans, roles,
/// group WAAD and FAI, token flags, advantages) stay readable until the next run.
template <::rhythm::shaping_policy Shaping = ::rhythm::shaping::coupled_rhythm>
credit_tensors credit_from_qk(::rhythm::credit_pipeline& pipeline, const ::at::Tensor& q, const ::at::Tensor& k,
                              const segments_arg& segments, const ::at::Tensor& rewards, const ::at::Tensor& group_ids,
                              const Shaping& shaping = {}, const ::rhythm::pipeline_params& params = {},
                              int threads = 0) {
  detail::forbid_entropy_policy<Shaping>();
  return detail::credit_from_qk(pipeline, q, k, segments, rewards, group_ids, nullptr, shaping, params, threads);
}

/// As above with token entropies [B, N] float32 (for rhythm::shaping::entropy).
template <::rhythm::shaping_policy Shaping>
credit_tensors credit_from_qk(::rhythm::credit_pipeline& pipeline, const ::at::Tensor& q, const ::at::Tensor& k,
                              const segments_arg& segments, const ::at::Tensor& rewards, const ::at::Tensor& group_ids,
                              const ::at::Tensor& entropies, const Shaping& shaping,
                              const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  return detail::credit_from_qk(pipeline, q, k, segments, rewards, group_ids, &entropies, shaping, params, threads);
}

/// credit_from_qk with a pipeline of its own (its buffers are freed on return).
template <::rhythm::shaping_policy Shaping = ::rhythm::shaping::coupled_rhythm>
credit_tensors credit_from_qk(const ::at::Tensor& q, const ::at::Tensor& k, const segments_arg& segments,
                              const ::at::Tensor& rewards, const ::at::Tensor& group_ids, const Shaping& shaping = {},
                              const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  ::rhythm::credit_pipeline pipeline;
  return credit_from_qk(pipeline, q, k, segments, rewards, group_ids, shaping, params, threads);
}

template <::rhythm::shaping_policy Shaping>
credit_tensors credit_from_qk(const ::at::Tensor& q, const ::at::Tensor& k, const segments_arg& segments,
                              const ::at::Tensor& rewards, const ::at::Tensor& group_ids,
                              const ::at::Tensor& entropies, const Shaping& shaping,
                              const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  ::rhythm::credit_pipeline pipeline;
  return credit_from_qk(pipeline, q, k, segments, rewards, group_ids, entropies, shaping, params, threads);
}

/// gamma and shaped advantages from attention maps [B, H, N, N] (as head_signals_from_maps); the
/// rest as credit_from_qk. Runs rhythm::credit_pipeline::run_from_maps.
template <::rhythm::shaping_policy Shaping = ::rhythm::shaping::coupled_rhythm>
credit_tensors credit_from_maps(::rhythm::credit_pipeline& pipeline, const ::at::Tensor& maps,
                                const segments_arg& segments, const ::at::Tensor& rewards,
                                const ::at::Tensor& group_ids, const Shaping& shaping = {},
                                const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  detail::forbid_entropy_policy<Shaping>();
  return detail::credit_from_maps(pipeline, maps, segments, rewards, group_ids, nullptr, shaping, params, threads);
}

template <::rhythm::shaping_policy Shaping>
credit_tensors credit_from_maps(::rhythm::credit_pipeline& pipeline, const ::at::Tensor& maps,
                                const segments_arg& segments, const ::at::Tensor& rewards,
                                const ::at::Tensor& group_ids, const ::at::Tensor& entropies, const Shaping& shaping,
                                const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  return detail::credit_from_maps(pipeline, maps, segments, rewards, group_ids, &entropies, shaping, params, threads);
}

template <::rhythm::shaping_policy Shaping = ::rhythm::shaping::coupled_rhythm>
credit_tensors credit_from_maps(const ::at::Tensor& maps, const segments_arg& segments, const ::at::Tensor& rewards,
                                const ::at::Tensor& group_ids, const Shaping& shaping = {},
                                const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  ::rhythm::credit_pipeline pipeline;
  return credit_from_maps(pipeline, maps, segments, rewards, group_ids, shaping, params, threads);
}

template <::rhythm::shaping_policy Shaping>
credit_tensors credit_from_maps(const ::at::Tensor& maps, const segments_arg& segments, const ::at::Tensor& rewards,
                                const ::at::Tensor& group_ids, const ::at::Tensor& entropies, const Shaping& shaping,
                                const ::rhythm::pipeline_params& params = {}, int threads = 0) {
  ::rhythm::credit_pipeline pipeline;
  return credit_from_maps(pipeline, maps, segments, rewards, group_ids, entropies, shaping, params, threads);
}

}  // namespace rhythm::torch
