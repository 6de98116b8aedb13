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
/// Devices: CUDA tensors are accepted. When the adapter was built with rhythm's CUDA backend
/// (RHYTHM_TORCH_CUDA=1: LibTorch with CUDA and RHYTHM_WITH_CUDA, which links rhythm_torch_cuda)
/// a CUDA lead tensor (q or maps) runs on its device (see "On the device" below); otherwise CUDA
/// tensors are copied to the host, processed by the CPU backend, and the results copied back to the
/// inputs' device (one synchronising round trip per call).
///
/// On the device (RHYTHM_TORCH_CUDA): every kernel and copy goes to c10::cuda::getCurrentCUDAStream()
/// of the lead tensor's device (made current for the call); the workspace and the error status are
/// one byte tensor from LibTorch's caching allocator, released when the call returns. Inputs on the
/// lead's device are read where they are, with any strides; the others (k, rewards, group ids,
/// segments, masks, entropies) are copied to it first; entropies in 16 bits are converted to
/// float32 there (exactly). Segments from masks are computed on the device
/// by tensor ops; only an invalid mask is re-read on the host, for the exact error. Results and
/// diagnostics are CUDA tensors (the counts and shares 0-d views of two small device tensors, copied
/// there from the device pipeline's diagnostics). Each call waits once for its stream (to read the
/// error status, and the masks' validity), then throws the same rhythm::error as the CPU for a value
/// error. With several errors at once, the device path reports the tensor checks and the core's
/// metadata checks before the contents of masks (the host path reads masks first).
/// credit_assigner::pipeline() reflects host runs only.
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
#include <utility>
#include <vector>

#include <rhythm/core/execution.hpp>
#include <rhythm/cpu/backend.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/pipeline.hpp>
#include <rhythm/signals/head_signals.hpp>

#include "view.hpp"

#if defined(RHYTHM_TORCH_CUDA) && RHYTHM_TORCH_CUDA
#include <c10/core/DeviceGuard.h>

#include <array>
#include <cstddef>
#include <tuple>

#include "cuda_launch.hpp"
#define RHYTHM_TORCH_ON_DEVICE 1
#else
#define RHYTHM_TORCH_ON_DEVICE 0
#endif

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

/// Token entropies must be float32, bfloat16 or float16.
inline void check_entropies_dtype(const ::at::Tensor& entropies) {
  const auto type = entropies.scalar_type();
  TORCH_CHECK(type == ::at::kFloat || type == ::at::kBFloat16 || type == ::at::kHalf,
              "rhythm::torch: argument 'entropies': expected dtype float32, bfloat16 or float16, got dtype ",
              ::c10::toString(type));
}
/// Token entropies on the host as float32 (the conversion is exact); undefined stays undefined.
inline ::at::Tensor entropies_as_float(const ::at::Tensor& entropies) {
  if (!entropies.defined()) return entropies;
  check_entropies_dtype(entropies);
  const ::at::Tensor host = on_host(entropies);
  return entropies.scalar_type() == ::at::kFloat ? host : host.to(::at::kFloat);
}

/// A mask's checks (defined, strided, [.., ..], bool or integer) and its nonzero positions as a
/// bool tensor on the mask's device.
inline ::at::Tensor mask_bits(const ::at::Tensor& m, const char* name) {
  check_strided(m, name, 2);
  const auto type = m.scalar_type();
  TORCH_CHECK(type == ::at::kBool || ::c10::isIntegralType(type, /*includeBool=*/false), "rhythm::torch: argument '",
              name, "': expected a bool or integer mask, got dtype ", ::c10::toString(type));
  return m != 0;
}

/// The segments of segments_from_masks as an int64 tensor [B, 3] on `device` (contiguous), by
/// tensor ops there (no host round trip), and `ok`, a 0-d bool tensor: false where
/// segments_from_masks would throw (the segments are then unspecified; call it for the error).
/// The mask checks of segments_from_masks come first (c10::Error). O(B N) work, a few small kernels.
inline std::pair<::at::Tensor, ::at::Tensor> segments_tensor_from_masks(const ::at::Tensor& response_mask,
                                                                        const ::at::Tensor& attention_mask,
                                                                        const ::c10::Device& device) {
  const ::at::Tensor response = mask_bits(response_mask, "response_mask").to(device);
  const std::int64_t B = response.size(0), N = response.size(1);
  ::at::Tensor real;
  if (attention_mask.defined()) {
    real = mask_bits(attention_mask, "attention_mask").to(device);
    TORCH_CHECK(real.sizes() == response.sizes(), "rhythm::torch: argument 'attention_mask': expected the sizes of "
                "response_mask ", sizes_string(response.sizes()), ", got sizes ", sizes_string(real.sizes()));
  }
  const auto int64 = ::at::TensorOptions().dtype(::at::kLong).device(device);
  if (N == 0) return {::at::zeros({B, 3}, int64), ::at::scalar_tensor(true, int64.dtype(::at::kBool))};
  const ::at::Tensor position = ::at::arange(N, int64).expand({B, N});
  // first set position of each row (N if none), and one past its last (0 if none)
  const auto first = [&](const ::at::Tensor& m) { return position.masked_fill(m.logical_not(), N).amin(1); };
  const auto after_last = [&](const ::at::Tensor& m) { return position.masked_fill(m.logical_not(), -1).amax(1) + 1; };
  const ::at::Tensor count = response.sum(1);  // int64: bool sums promote
  const ::at::Tensor none = count == 0;
  ::at::Tensor response_begin = first(response);  // N when there is no response: an empty one at N
  ::at::Tensor end = response_begin + count;
  ::at::Tensor ok = none | (after_last(response) - response_begin == count);  // one contiguous run
  ::at::Tensor begin = ::at::zeros({B}, int64);
  if (real.defined()) {
    begin = first(real);
    const ::at::Tensor last = ::at::maximum(after_last(real), begin);  // one past the last real token
    response_begin = ::at::where(none, last, response_begin);
    end = ::at::where(none, last, end);
    const ::at::Tensor inside = (position >= begin.unsqueeze(1)) & (position < end.unsqueeze(1));
    const ::at::Tensor real_inside = (real & inside).sum(1);
    ok = ok & (begin <= response_begin) & (real_inside == (end - begin).clamp_min(0));
  }
  return {::at::stack({begin, response_begin, end}, 1), ok.all()};
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

#if RHYTHM_TORCH_ON_DEVICE
/// `t` on `device` (itself if it is there or undefined, else a copy on the current stream).
inline ::at::Tensor on_device(const ::at::Tensor& t, const ::c10::Device& device) {
  return t.defined() && t.device() != device ? t.to(device) : t;
}

/// A device view of `t`, with the checks of rhythm::torch::view in its order, the device being
/// `device` (the lead tensor's) instead of the CPU.
template <class T, std::size_t Rank>
cuda_launch::device_view<T, Rank> device_view(const ::at::Tensor& t, const char* name, const ::c10::Device& device) {
  check_strided(t, name, static_cast<std::int64_t>(Rank));
  TORCH_CHECK(t.device() == device, "rhythm::torch: argument '", name, "': expected a tensor on ", device.str(),
              " (the device of q or maps), got a tensor on ", t.device().str());
  check_dtype(t, name, scalar_type_of<T>());
  check_after_dtype(t, name);
  std::array<std::int64_t, Rank> extents{}, strides{};
  for (std::size_t r = 0; r < Rank; ++r)
    extents[r] = t.size(static_cast<std::int64_t>(r)), strides[r] = t.stride(static_cast<std::int64_t>(r));
  return {static_cast<T*>(t.data_ptr()), extents, strides};
}

/// The device view of a contiguous int64 tensor [B, 3] as B rhythm::segment.
inline cuda_launch::device_view<const ::rhythm::segment, 1> segment_view(const ::at::Tensor& segments) {
  static_assert(sizeof(::rhythm::segment) == 3 * sizeof(std::int64_t));
  return {reinterpret_cast<const ::rhythm::segment*>(segments.data_ptr<std::int64_t>()), {segments.size(0)}};
}

/// The segments of a segments tensor [B, 3] on `device` (contiguous), after segments_arg's checks.
inline ::at::Tensor segments_on_device(const ::at::Tensor& segments, const ::c10::Device& device) {
  const char* name = "segments";
  check_strided(segments, name, 2);
  check_dtype(segments, name, ::at::kLong);
  TORCH_CHECK(segments.size(1) == 3, "rhythm::torch: argument 'segments': expected [B, 3] (begin, response_begin, "
              "end per row), got sizes ", sizes_string(segments.sizes()));
  check_after_dtype(segments, name);
  return on_device(segments, device).contiguous();
}

/// Device memory for one launch from LibTorch's caching allocator: `bytes` of workspace (256-byte
/// aligned) followed by the error status, and the launch policy on the device's current stream.
/// The tensor owns the memory: keep it until the launch is done (the call's end).
struct device_memory {
  ::at::Tensor bytes;
  cuda_launch::device_policy policy;
};
inline device_memory device_memory_for(std::size_t workspace_bytes, const ::c10::Device& device) {
  const std::size_t status_at = (workspace_bytes + 255) / 256 * 256;
  ::at::Tensor bytes = ::at::empty({static_cast<std::int64_t>(status_at + sizeof(::rhythm::value_error))},
                                   ::at::TensorOptions().dtype(::at::kByte).device(device));
  auto* base = static_cast<std::byte*>(bytes.data_ptr());
  return {bytes,
          {cuda_launch::current_stream(device.index()), base, workspace_bytes,
           reinterpret_cast<::rhythm::value_error*>(base + status_at)}};
}

/// Runs `launch(policy, span, waad, fai)` on device outputs, waits, throws a recorded value error.
template <class Launch>
head_signal_tensors device_head_signals(std::int64_t B, std::int64_t H, std::int64_t N, const ::c10::Device& device,
                                        std::size_t workspace_bytes, Launch&& launch) {
  const auto options = ::at::TensorOptions().dtype(::at::kFloat).device(device);
  head_signal_tensors out{::at::empty({B, H}, options), ::at::empty({B, H, N}, options), ::at::empty({B, H, N}, options)};
  const device_memory memory = device_memory_for(workspace_bytes, device);
  launch(memory.policy, device_view<float, 2>(out.span, "output", device), device_view<float, 3>(out.waad, "output", device),
         device_view<float, 3>(out.fai, "output", device));
  cuda_launch::throw_if_error(memory.policy);
  return out;
}

/// The segments of a segments_arg as a device tensor [B, 3] (one host-to-device copy).
inline ::at::Tensor segments_arg_on_device(const segments_arg& segments, const ::c10::Device& device) {
  return segments_tensor(segments.span()).to(device);
}
#endif

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
    return detail::on_host(detail::mask_bits(m, name)).to(::at::kByte).contiguous();
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
#if RHYTHM_TORCH_ON_DEVICE
  if (maps.is_cuda()) {
    const ::c10::Device device = maps.device();
    const ::c10::DeviceGuard guard(device);
    const ::at::Tensor seg = detail::segments_arg_on_device(segments, device);
    return dispatch_input_dtype(maps, "maps", [&]<class E>(std::type_identity<E>) {
      const auto m = detail::device_view<const E, 4>(maps, "maps", device);
      const std::int64_t B = m.extent(0), H = m.extent(1), N = m.extent(2);
      return detail::device_head_signals(
          B, H, N, device, cuda_launch::head_signals_workspace_size_from_maps(B, H, N, params),
          [&](const auto& on, auto span, auto waad, auto fai) {
            cuda_launch::head_signals_from_maps<E>(on, m, detail::segment_view(seg), span, waad, fai, params);
          });
    });
  }
#endif
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
#if RHYTHM_TORCH_ON_DEVICE
  if (q.defined() && q.is_cuda()) {
    const ::c10::Device device = q.device();
    const ::c10::DeviceGuard guard(device);
    const ::at::Tensor seg = detail::segments_arg_on_device(segments, device);
    const ::at::Tensor k_on = detail::on_device(k, device);
    return detail::dispatch_qk(q, k_on, [&]<class E>(std::type_identity<E>) {
      const auto qv = detail::device_view<const E, 4>(q, "q", device);
      const auto kv = detail::device_view<const E, 4>(k_on, "k", device);
      const std::int64_t B = qv.extent(0), H = qv.extent(1), N = qv.extent(2);
      return detail::device_head_signals(
          B, H, N, device,
          cuda_launch::head_signals_workspace_size_from_qk(B, H, kv.extent(1), N, qv.extent(3), params),
          [&](const auto& on, auto span, auto waad, auto fai) {
            cuda_launch::head_signals_from_qk<E>(on, qv, kv, detail::segment_view(seg), span, waad, fai, params);
          });
    });
  }
#endif
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
#if RHYTHM_TORCH_ON_DEVICE
    if (device.is_cuda()) return run_on_device(batch, from_qk, lead);
#endif
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

  /// The pipeline of the last call on the host, for its intermediates (host views; valid until the
  /// next call). Calls on the device (RHYTHM_TORCH_CUDA) leave it alone: their intermediates are
  /// in the result's diagnostics.
  const ::rhythm::credit_pipeline& pipeline() const noexcept { return pipeline_; }

 private:
#if RHYTHM_TORCH_ON_DEVICE
  /// operator() on the lead tensor's CUDA device (the file comment, "On the device").
  credit_result run_on_device(const credit_batch& batch, bool from_qk, const ::at::Tensor& lead) const {
    const ::c10::Device device = lead.device();
    const ::c10::DeviceGuard guard(device);
    detail::host_policy(threads);  // the host path's check of `threads` (unused here)
    ::at::Tensor segments, masks_ok;
    if (batch.segments.defined())
      segments = detail::segments_on_device(batch.segments, device);
    else
      std::tie(segments, masks_ok) = detail::segments_tensor_from_masks(batch.response_mask, batch.attention_mask, device);
    const ::at::Tensor rewards = detail::on_device(batch.rewards, device);
    const ::at::Tensor group_ids = detail::on_device(batch.group_ids, device);
    const auto r = detail::device_view<const float, 1>(rewards, "rewards", device);
    const auto g = detail::device_view<const std::int64_t, 1>(group_ids, "group_ids", device);
    ::at::Tensor entropies;
    if (batch.entropies.defined()) {
      detail::check_entropies_dtype(batch.entropies);
      entropies = detail::on_device(batch.entropies, device).to(::at::kFloat);
    }
    const std::int64_t B = lead.size(0), H = lead.size(1), N = lead.size(2);
    const auto options = [&](::at::ScalarType type) { return ::at::TensorOptions().dtype(type).device(device); };
    credit_result out{::at::empty({B, N}, options(::at::kFloat)), ::at::empty({B, N}, options(::at::kFloat)), {}};
    credit_diagnostics& d = out.diagnostics;
    d.advantages = ::at::empty({B}, options(::at::kFloat));
    d.flags = ::at::empty({B, N}, options(::at::kByte));
    d.waad = ::at::empty({B, N}, options(::at::kFloat));
    d.fai = ::at::empty({B, N}, options(::at::kFloat));
    d.head_spans = ::at::empty({B, H}, options(::at::kFloat));
    const ::at::Tensor roles = ::at::empty({params.pooled_groups ? H : B * H}, options(::at::kByte));
    const ::at::Tensor counts = ::at::empty({5}, options(::at::kLong)), shares = ::at::empty({2}, options(::at::kDouble));
    const cuda_launch::credit_copies copies{d.advantages.data_ptr<float>(), d.flags.data_ptr<std::uint8_t>(),
                                            d.waad.data_ptr<float>(),       d.fai.data_ptr<float>(),
                                            d.head_spans.data_ptr<float>(), roles.data_ptr<std::uint8_t>(),
                                            counts.data_ptr<std::int64_t>(), shares.data_ptr<double>()};
    const auto gamma = detail::device_view<float, 2>(out.gamma, "output", device);
    const auto shaped = detail::device_view<float, 2>(out.shaped, "output", device);
    const auto seg = detail::segment_view(segments);
    const ::rhythm::pipeline_shape shape{B, H, N};
    const auto run = [&](const auto& launch, std::size_t workspace_bytes) {
      const detail::device_memory memory = detail::device_memory_for(workspace_bytes, device);
      if (entropies.defined()) {
        const auto e = detail::device_view<const float, 2>(entropies, "entropies", device);
        launch(memory.policy, &e);
      } else {
        launch(memory.policy, nullptr);
      }
      if (masks_ok.defined() && !masks_ok.item<bool>())  // waits for the stream
        segments_from_masks(batch.response_mask, batch.attention_mask);  // throws the host's error
      cuda_launch::throw_if_error(memory.policy);
    };
    if (from_qk) {
      const ::at::Tensor k = detail::on_device(batch.k, device);
      detail::dispatch_qk(batch.q, k, [&]<class E>(std::type_identity<E>) {
        const auto qv = detail::device_view<const E, 4>(batch.q, "q", device);
        const auto kv = detail::device_view<const E, 4>(k, "k", device);
        run([&](const cuda_launch::device_policy& on, const cuda_launch::device_view<const float, 2>* e) {
              cuda_launch::credit_from_qk<E>(on, qv, kv, seg, r, g, e, policy, gamma, shaped, params, copies);
            },
            cuda_launch::credit_workspace_size_from_qk(shape, kv.extent(1), kv.extent(3), params));
      });
    } else {
      dispatch_input_dtype(batch.maps, "maps", [&]<class E>(std::type_identity<E>) {
        const auto mv = detail::device_view<const E, 4>(batch.maps, "maps", device);
        run([&](const cuda_launch::device_policy& on, const cuda_launch::device_view<const float, 2>* e) {
              cuda_launch::credit_from_maps<E>(on, mv, seg, r, g, e, policy, gamma, shaped, params, copies);
            },
            cuda_launch::credit_workspace_size_from_maps(shape, params));
      });
    }
    d.head_roles = params.pooled_groups ? roles.expand({B, H}).contiguous() : roles.view({B, H});
    d.response_tokens = counts.select(0, 0), d.preplan = counts.select(0, 1), d.anchor = counts.select(0, 2);
    d.dominated = counts.select(0, 3), d.intro = counts.select(0, 4);
    d.mean_gamma = shares.select(0, 0), d.amplified_share = shares.select(0, 1);
    return out;
  }
#endif

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

#undef RHYTHM_TORCH_ON_DEVICE
