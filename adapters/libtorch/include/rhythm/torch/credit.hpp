#pragma once
/// rhythm on the tensors a PyTorch-style trainer already holds.
///
///   rhythm::torch::credit_assigner credit(rhythm::shaping::coupled_rhythm{});   // once
///   auto out = credit({.q = q, .k = k, .response_mask = mask,                    // every step
///                      .rewards = rewards, .group_ids = group_ids});
///   auto loss = rhythm::torch::ppo_clip_loss(logp_new, logp_old, out.shaped, mask).loss;
///
/// credit_assigner runs the whole chain (signals, head groups, token sets, GRPO advantages, gamma,
/// shaped advantages: rhythm::credit_pipeline) and returns every result as a tensor on the
/// device of the inputs, the diagnostics included, so that reading them needs no host
/// synchronisation of its own. head_signals_from_maps / _from_qk give the per-head signals alone.
///
/// Devices: CUDA tensors are accepted. Until rhythm's CUDA backend is wired into this adapter they
/// are copied to the host, processed by the CPU backend, and the results copied back to the
/// inputs' device (one synchronising round trip per call).
///
/// Inputs (maps, q, k, entropies) may be float32, bfloat16 or float16 with any non-negative
/// strides; the core accumulates in float and every output is float32 (flags and roles uint8,
/// counts int64, shares float64). credit_assigner takes segments as an int64 tensor [B, 3] or as
/// masks (segments_from_masks); head_signals_from_* also take a std::vector / std::span of
/// rhythm::segment (segments_arg). ppo_clip_loss reads bool or uint8 masks. `threads` picks the CPU
/// parallelism: 0 (default) uses at::get_num_threads(); results do not depend on it.
///
/// Errors: the adapter's checks of the tensors (defined, layout, dtype, rank, strides, which fields
/// are given) throw c10::Error; the core's checks of shapes between arguments, segment and mask
/// ranges, params and NaN/Inf throw rhythm::error (errc codes). Nothing is returned on error.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <rhythm/core/execution.hpp>
#include <rhythm/cpu/backend.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/pipeline.hpp>
#include <rhythm/signals/head_signals.hpp>

#include "view.hpp"

namespace rhythm::torch {

/// Per-head signals, float32: span [B, H], waad [B, H, N], fai [B, H, N] (head_signals.hpp).
struct head_signal_tensors {
  ::at::Tensor span, waad, fai;
};

/// One step's inputs, by name (C++20 designated initialisers). Give q and k, or maps; give
/// response_mask (with attention_mask when prompts are left-padded), or segments.
struct credit_batch {
  ::at::Tensor q{};               ///< [B, Hq, N, d] post-RoPE queries of the chosen layers (heads stacked)
  ::at::Tensor k{};               ///< [B, Hkv, N, d] post-RoPE keys, Hq % Hkv == 0
  ::at::Tensor maps{};            ///< [B, H, N, N] attention maps, instead of q and k
  ::at::Tensor response_mask{};   ///< [B, N] bool or integer: nonzero at the response tokens (one run per row)
  ::at::Tensor attention_mask{};  ///< [B, N] bool or integer, optional: nonzero at the real tokens; default: from 0
  ::at::Tensor segments{};        ///< [B, 3] int64 {begin, response_begin, end}, instead of the masks
  ::at::Tensor rewards{};         ///< [B] float32
  ::at::Tensor group_ids{};       ///< [B] int64: equal ids form a GRPO group
  ::at::Tensor entropies{};       ///< [B, N] float32, bfloat16 or float16, optional: token entropies (entropy policy)
};

/// What the run found, as tensors on the inputs' device (0-d counts int64, shares float64).
struct credit_diagnostics {
  ::at::Tensor response_tokens, preplan, anchor, dominated, intro;  ///< |R|, |T_loc|, |T_glob|, |D|, |intro(D)|
  ::at::Tensor mean_gamma;       ///< mean gamma over response tokens (1 when there are none)
  ::at::Tensor amplified_share;  ///< share of response tokens with gamma > 1
  ::at::Tensor advantages;       ///< [B] float32: GRPO advantages A_b
  ::at::Tensor flags;            ///< [B, N] uint8: token_flag bits (preplan 1, anchor 2, dominated 4, intro 8)
  ::at::Tensor waad, fai;        ///< [B, N] float32: local-group WAAD and global-group FAI
  ::at::Tensor head_spans;       ///< [B, H] float32
  ::at::Tensor head_roles;       ///< [B, H] uint8: head_role bits (local 1, global 2)

  /// The counts and shares as numbers (reads the tensors: synchronises on a device).
  ::rhythm::pipeline_diagnostics values() const {
    return {response_tokens.item<std::int64_t>(), preplan.item<std::int64_t>(), anchor.item<std::int64_t>(),
            dominated.item<std::int64_t>(), intro.item<std::int64_t>(), mean_gamma.item<double>(),
            amplified_share.item<double>()};
  }
};

/// gamma [B, N] float32 (1 outside responses), shaped advantages [B, N] float32 (0 outside
/// responses), and the diagnostics.
struct credit_result {
  ::at::Tensor gamma, shaped;
  credit_diagnostics diagnostics;
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

/// A contiguous host tensor's view, after all checks (for outputs the adapter allocated).
template <class T, std::size_t Rank>
::rhythm::view<T, Rank> out_view(const ::at::Tensor& t) {
  return ::rhythm::torch::view<T, Rank>(t, "output");
}

/// Calls f(std::type_identity<E>{}) for the input element type E shared by q and k.
template <class F>
decltype(auto) dispatch_qk(const ::at::Tensor& q, const ::at::Tensor& k, F&& f) {
  check_strided(q, "q", 4);
  check_strided(k, "k", 4);
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), "rhythm::torch: argument 'k': expected the dtype of q (",
              ::c10::toString(q.scalar_type()), "), got dtype ", ::c10::toString(k.scalar_type()));
  return dispatch_input_dtype(q, "q", f);
}

/// Runs `signals(span, waad, fai)` on host outputs and returns them on `device`.
template <class Signals>
head_signal_tensors head_signals(std::int64_t B, std::int64_t H, std::int64_t N, const ::c10::Device& device,
                                 Signals&& signals) {
  head_signal_tensors out{float_tensor({B, H}), float_tensor({B, H, N}), float_tensor({B, H, N})};
  signals(out_view<float, 2>(out.span), out_view<float, 3>(out.waad), out_view<float, 3>(out.fai));
  if (!device.is_cpu()) out = {out.span.to(device), out.waad.to(device), out.fai.to(device)};
  return out;
}

/// Token entropies on the host as float32 (float32, bfloat16 or float16 accepted: the conversion
/// is exact); undefined stays undefined.
inline ::at::Tensor entropies_as_float(const ::at::Tensor& entropies) {
  if (!entropies.defined()) return entropies;
  const auto type = entropies.scalar_type();
  TORCH_CHECK(type == ::at::kFloat || type == ::at::kBFloat16 || type == ::at::kHalf,
              "rhythm::torch: argument 'entropies': expected dtype float32, bfloat16 or float16, got dtype ",
              ::c10::toString(type));
  const ::at::Tensor host = on_host(entropies);
  return type == ::at::kFloat ? host : host.to(::at::kFloat);
}

/// The diagnostics of `pipeline`'s last run as host tensors (counts, shares and copies of its
/// intermediates).
inline credit_diagnostics diagnostics_of(const ::rhythm::credit_pipeline& pipeline,
                                         const ::rhythm::pipeline_diagnostics& d) {
  const auto count = [](std::int64_t n) { return ::at::scalar_tensor(n, ::at::kLong); };
  const auto share = [](double x) { return ::at::scalar_tensor(x, ::at::kDouble); };
  const auto copy = [](const auto& v, ::at::ScalarType type) {
    std::vector<std::int64_t> sizes;
    for (std::size_t r = 0; r < std::remove_cvref_t<decltype(v)>::rank(); ++r) sizes.push_back(v.extent(r));
    ::at::Tensor t = ::at::empty(sizes, type);
    const auto* src = reinterpret_cast<const unsigned char*>(v.data_handle());
    std::copy(src, src + t.nbytes(), static_cast<unsigned char*>(t.data_ptr()));  // contiguous buffers
    return t;
  };
  const auto roles = pipeline.head_roles();
  return {count(d.response_tokens), count(d.preplan), count(d.anchor), count(d.dominated), count(d.intro),
          share(d.mean_gamma), share(d.amplified_share), copy(pipeline.advantages(), ::at::kFloat),
          copy(pipeline.flags(), ::at::kByte), copy(pipeline.waad(), ::at::kFloat),
          copy(pipeline.fai(), ::at::kFloat), copy(pipeline.head_spans(), ::at::kFloat),
          roles.stride(0) == 0 ? copy(::rhythm::view<const head_role, 1>(roles.data_handle(), {roles.extent(1)}),
                                      ::at::kByte).expand({roles.extent(0), roles.extent(1)}).contiguous()
                               : copy(roles, ::at::kByte)};
}

}  // namespace detail

/// Segments from masks [B, N] (bool or integer, nonzero = set; any device): row b's response is
/// its one run of nonzero response_mask positions [response_begin, end); its first real token
/// `begin` is the first nonzero attention_mask position (0 without an attention mask), and
/// [begin, end) must all be real. A row without response positions gets an empty response at the
/// end of its real tokens (at N without an attention mask). Throws rhythm::error (bad_segment)
/// naming the mask, the row and the position where a row breaks these rules.
inline std::vector<::rhythm::segment> segments_from_masks(const ::at::Tensor& response_mask,
                                                          const ::at::Tensor& attention_mask = {}) {
  const auto as_bytes = [](const ::at::Tensor& m, const char* name) {
    detail::check_strided(m, name, 2);
    const auto type = m.scalar_type();
    TORCH_CHECK(type == ::at::kBool || ::c10::isIntegralType(type, /*includeBool=*/false), "rhythm::torch: argument '",
                name, "': expected a bool or integer mask, got dtype ", ::c10::toString(type));
    return (detail::on_host(m) != 0).to(::at::kByte).contiguous();
  };
  const ::at::Tensor response = as_bytes(response_mask, "response_mask");
  const std::int64_t B = response.size(0), N = response.size(1);
  ::at::Tensor real;
  if (attention_mask.defined()) {
    real = as_bytes(attention_mask, "attention_mask");
    TORCH_CHECK(real.sizes() == response.sizes(), "rhythm::torch: argument 'attention_mask': expected the sizes of "
                "response_mask ", detail::sizes_string(response.sizes()), ", got sizes ", detail::sizes_string(real.sizes()));
  }
  const auto fail = [](const char* name, const std::string& expected, std::int64_t b, std::int64_t t) {
    ::rhythm::detail::fail(errc::bad_segment, name, expected,
                           "row " + std::to_string(b) + " at position " + std::to_string(t));
  };
  std::vector<::rhythm::segment> segments(static_cast<std::size_t>(B));
  const auto* r = response.data_ptr<std::uint8_t>();
  const auto* a = real.defined() ? real.data_ptr<std::uint8_t>() : nullptr;
  for (std::int64_t b = 0; b < B; ++b) {
    const std::uint8_t* row = r + b * N;
    std::int64_t rb = 0;
    while (rb < N && !row[rb]) ++rb;
    std::int64_t end = rb;
    while (end < N && row[end]) ++end;
    for (std::int64_t t = end; t < N; ++t)
      if (row[t]) fail("response_mask", "one contiguous run of response positions per row", b, t);
    std::int64_t begin = 0;
    if (a) {
      const std::uint8_t* att = a + b * N;
      while (begin < N && !att[begin]) ++begin;
      std::int64_t last = N;  // one past the last real token
      while (last > begin && !att[last - 1]) --last;
      if (rb == end) rb = end = last;  // no response: an empty one after the real tokens
      if (begin > rb) fail("attention_mask", "real tokens at every response position", b, rb);
      for (std::int64_t t = begin; t < end; ++t)
        if (!att[t]) fail("attention_mask", "real tokens from the first real token to the end of the response", b, t);
    } else if (rb == end) {
      rb = end = N;
    }
    segments[static_cast<std::size_t>(b)] = {begin, rb, end};
  }
  return segments;
}

/// Span, WAAD and FAI of every head from attention maps [B, H, N, N] (float32, bfloat16 or float16;
/// query t on dim 2, key s on dim 3; any device). See rhythm::head_signals_from_maps.
inline head_signal_tensors head_signals_from_maps(const ::at::Tensor& maps, const segments_arg& segments,
                                                  const ::rhythm::signal_params& params = {}, int threads = 0) {
  const auto policy = detail::host_policy(threads);
  detail::check_strided(maps, "maps", 4);
  const ::at::Tensor host = detail::on_host(maps);
  return dispatch_input_dtype(host, "maps", [&]<class E>(std::type_identity<E>) {
    const auto m = view<const E, 4>(host, "maps");
    return detail::head_signals(m.extent(0), m.extent(1), m.extent(2), maps.device(), [&](auto span, auto waad, auto fai) {
      ::rhythm::head_signals_from_maps(policy, m, segments.view(), span, waad, fai, params);
    });
  });
}

/// Span, WAAD and FAI of every query head from post-RoPE q [B, Hq, N, d] and k [B, Hkv, N, d]
/// (the same dtype: float32, bfloat16 or float16; Hq % Hkv == 0; any device), without an N x N map.
/// See rhythm::head_signals_from_qk.
inline head_signal_tensors head_signals_from_qk(const ::at::Tensor& q, const ::at::Tensor& k,
                                                const segments_arg& segments,
                                                const ::rhythm::signal_params& params = {}, int threads = 0) {
  const auto policy = detail::host_policy(threads);
  const ::at::Tensor hq = detail::on_host(q), hk = detail::on_host(k);
  return detail::dispatch_qk(hq, hk, [&]<class E>(std::type_identity<E>) {
    const auto qv = view<const E, 4>(hq, "q");
    const auto kv = view<const E, 4>(hk, "k");
    return detail::head_signals(qv.extent(0), qv.extent(1), qv.extent(2), q.device(), [&](auto span, auto waad, auto fai) {
      ::rhythm::head_signals_from_qk(policy, qv, kv, segments.view(), span, waad, fai, params);
    });
  });
}

/// The Torch-first entry point: configured once, called every step (see the file comment).
///
/// policy   any built-in shaping policy (rhythm::shaping::any converts from each; parse one from
///          a string with rhythm::shaping::any::parse("coupled_rhythm"))
/// params   rhythm::pipeline_params: W, horizons, head fraction, q, dominance, advantages, options
/// threads  CPU threads (0: at::get_num_threads())
///
/// The policy, params and threads are public: a trainer may change them between calls (e.g. the
/// seed of the random control every step). The pipeline's buffers are reused across calls.
class credit_assigner {
 public:
  explicit credit_assigner(::rhythm::shaping::any policy = {}, const ::rhythm::pipeline_params& params = {},
                           int threads = 0)
      : policy(policy), params(params), threads(threads) {}

  ::rhythm::shaping::any policy;
  ::rhythm::pipeline_params params;
  int threads = 0;

  /// gamma, shaped advantages and diagnostics of one batch, on the device of q (or maps).
  credit_result operator()(const credit_batch& batch) {
    const bool from_qk = batch.q.defined() || batch.k.defined();
    TORCH_CHECK(from_qk != batch.maps.defined(),
                "rhythm::torch: credit_assigner: expected either q and k or maps, got ",
                from_qk ? "both q/k and maps" : "neither");
    TORCH_CHECK(batch.response_mask.defined() != batch.segments.defined(),
                "rhythm::torch: credit_assigner: expected either response_mask or segments, got ",
                batch.segments.defined() ? "both" : "neither");
    TORCH_CHECK(!batch.attention_mask.defined() || batch.response_mask.defined(),
                "rhythm::torch: credit_assigner: attention_mask goes with response_mask, not with segments");
    TORCH_CHECK(!policy.rule().needs_entropies() || batch.entropies.defined(),
                "rhythm::torch: credit_assigner: the entropy policy needs token entropies: pass "
                "credit_batch.entropies [B, N]");
    const ::at::Tensor& lead = from_qk ? batch.q : batch.maps;
    detail::check_strided(lead, from_qk ? "q" : "maps", 4);
    const ::c10::Device device = lead.device();
    for (const auto& [mask, name] : {std::pair{&batch.response_mask, "response_mask"},
                                     std::pair{&batch.attention_mask, "attention_mask"}})
      TORCH_CHECK(!mask->defined() || (mask->dim() == 2 && mask->size(0) == lead.size(0) && mask->size(1) == lead.size(2)),
                  "rhythm::torch: argument '", name, "': expected [B, N] = [", lead.size(0), ", ", lead.size(2),
                  "], got sizes ", detail::sizes_string(mask->sizes()));
    const segments_arg segments = batch.segments.defined()
                                      ? segments_arg(detail::on_host(batch.segments))
                                      : segments_arg(segments_from_masks(batch.response_mask, batch.attention_mask));
    const ::at::Tensor rewards = detail::on_host(batch.rewards), group_ids = detail::on_host(batch.group_ids);
    const ::at::Tensor entropies = detail::entropies_as_float(batch.entropies);
    const auto r = view<const float, 1>(rewards, "rewards");
    const auto g = view<const std::int64_t, 1>(group_ids, "group_ids");
    const auto host = detail::host_policy(threads);
    const std::int64_t B = lead.size(0), N = lead.size(2);
    credit_result out{detail::float_tensor({B, N}), detail::float_tensor({B, N}), {}};
    const auto gamma = detail::out_view<float, 2>(out.gamma), shaped = detail::out_view<float, 2>(out.shaped);
    // run(entropies view or nullptr) with the pipeline overload that matches
    const auto with_entropies = [&](auto&& run) {
      return entropies.defined() ? run(view<const float, 2>(entropies, "entropies")) : run(nullptr);
    };
    ::rhythm::pipeline_diagnostics d;
    if (from_qk) {
      const ::at::Tensor hq = detail::on_host(batch.q), hk = detail::on_host(batch.k);
      d = detail::dispatch_qk(hq, hk, [&]<class E>(std::type_identity<E>) {
        const auto qv = view<const E, 4>(hq, "q"), kv = view<const E, 4>(hk, "k");
        return with_entropies([&](const auto& ent) {
          if constexpr (std::is_null_pointer_v<std::remove_cvref_t<decltype(ent)>>)
            return pipeline_.run_from_qk(host, qv, kv, segments.view(), r, g, policy, gamma, shaped, params);
          else
            return pipeline_.run_from_qk(host, qv, kv, segments.view(), r, g, ent, policy, gamma, shaped, params);
        });
      });
    } else {
      const ::at::Tensor hm = detail::on_host(batch.maps);
      d = dispatch_input_dtype(hm, "maps", [&]<class E>(std::type_identity<E>) {
        const auto mv = view<const E, 4>(hm, "maps");
        return with_entropies([&](const auto& ent) {
          if constexpr (std::is_null_pointer_v<std::remove_cvref_t<decltype(ent)>>)
            return pipeline_.run_from_maps(host, mv, segments.view(), r, g, policy, gamma, shaped, params);
          else
            return pipeline_.run_from_maps(host, mv, segments.view(), r, g, ent, policy, gamma, shaped, params);
        });
      });
    }
    out.diagnostics = detail::diagnostics_of(pipeline_, d);
    if (!device.is_cpu()) to_device(out, device);
    return out;
  }

  /// The pipeline of the last call, for its intermediates (host views; valid until the next call).
  const ::rhythm::credit_pipeline& pipeline() const noexcept { return pipeline_; }

 private:
  static void to_device(credit_result& out, const ::c10::Device& device) {
    for (::at::Tensor* t : {&out.gamma, &out.shaped, &out.diagnostics.response_tokens, &out.diagnostics.preplan,
                            &out.diagnostics.anchor, &out.diagnostics.dominated, &out.diagnostics.intro,
                            &out.diagnostics.mean_gamma, &out.diagnostics.amplified_share, &out.diagnostics.advantages,
                            &out.diagnostics.flags, &out.diagnostics.waad, &out.diagnostics.fai,
                            &out.diagnostics.head_spans, &out.diagnostics.head_roles})
      *t = t->to(device);
  }

  ::rhythm::credit_pipeline pipeline_;
};

}  // namespace rhythm::torch
