#pragma once
/// rhythm::torch::view: an at::Tensor seen as a rhythm::view, with every check of the foreign type.
///
///   auto q = rhythm::torch::view<const float, 4>(q_tensor, "q");   // [B, H, N, d], any strides
///
/// Element types and the dtype each needs:
///   float -> torch::kFloat, rhythm::bfloat16 -> torch::kBFloat16, rhythm::half -> torch::kHalf,
///   std::int64_t -> torch::kLong, std::uint8_t, rhythm::token_flag, rhythm::head_role -> torch::kByte;
///   T may be const (a read-only view).
/// Accepted: any strided CPU tensor of that dtype and rank with non-negative strides, contiguous or
/// not (transposed, permuted, narrowed, selected, stepped slices, expanded), at any storage offset
/// (data_ptr() already includes it). The view aliases the tensor's memory; it does not keep the
/// storage alive and writes through it bypass autograd, as writes through data_ptr() do.
///
/// Rejected with a c10::Error (TORCH_CHECK, like any torch op), message
///   rhythm::torch: argument 'q': expected <what>, got <what was given>
/// in this order of checks: an undefined tensor; a non-strided layout (sparse, mkldnn); the rank;
/// a device other than the CPU (a view reads host memory: the tensor-level functions, credit.hpp,
/// take CUDA tensors and copy them to the host); the dtype; a negative stride; a pending negation
/// bit (torch's lazy _neg_view: call resolve_neg() first); no data of its own (a tensor subclass
/// that wraps others through __torch_dispatch__, e.g. DTensor).
///
/// Checks of the contents (segment ranges, NaN/Inf, params fields) stay with the core and throw
/// rhythm::error with its stable errc code.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <rhythm/core/dtypes.hpp>
#include <rhythm/core/head_types.hpp>
#include <rhythm/core/segments.hpp>
#include <rhythm/core/tensor.hpp>
#include <rhythm/core/token_types.hpp>

namespace rhythm::torch {

/// The torch dtype whose elements have the layout of T (T without const).
template <class T>
constexpr ::at::ScalarType scalar_type_of() {
  using E = std::remove_const_t<T>;
  if constexpr (std::is_same_v<E, float>) return ::at::kFloat;
  else if constexpr (std::is_same_v<E, ::rhythm::bfloat16>) return ::at::kBFloat16;
  else if constexpr (std::is_same_v<E, ::rhythm::half>) return ::at::kHalf;
  else if constexpr (std::is_same_v<E, std::int64_t>) return ::at::kLong;
  else if constexpr (std::is_same_v<E, std::uint8_t> || std::is_same_v<E, ::rhythm::token_flag> ||
                     std::is_same_v<E, ::rhythm::head_role>)
    return ::at::kByte;
  else static_assert(sizeof(E) == 0, "rhythm::torch: element type must be float, rhythm::bfloat16, rhythm::half, "
                                     "std::int64_t, std::uint8_t, rhythm::token_flag or rhythm::head_role");
}

static_assert(sizeof(::rhythm::bfloat16) == sizeof(::c10::BFloat16) && sizeof(::rhythm::half) == sizeof(::c10::Half),
              "rhythm::torch: 16-bit types must have the size of torch's");

// "rhythm::torch: argument 'name': expected ..., got ..." as a c10::Error (undefined at the end of the file).
#define RHYTHM_TORCH_REQUIRE(cond, name, expected, ...)                                                    \
  do {                                                                                                     \
    TORCH_CHECK(cond, "rhythm::torch: argument '", name, "': expected ", expected, ", got ", __VA_ARGS__); \
  } while (false)

namespace detail {

inline std::string sizes_string(::c10::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t r = 0; r < sizes.size(); ++r) s += (r ? ", " : "") + std::to_string(sizes[r]);
  return s + "]";
}

/// A view reads host memory; CUDA tensors get a message that says where they are accepted.
inline void check_device(const ::c10::Device& device, const char* name) {
  if (device.is_cuda()) {
    TORCH_CHECK(false, "rhythm::torch: argument '", name, "': expected a CPU tensor, got a tensor on ", device.str(),
                ": rhythm::torch::view reads host memory; credit_assigner and head_signals_from_* take CUDA tensors "
                "(on the device where rhythm was built with CUDA, else through the host), and views of device "
                "memory need <rhythm/cuda.cuh>");
  }
  RHYTHM_TORCH_REQUIRE(device.is_cpu(), name, "a CPU tensor", "a tensor on ", device.str());
}

/// The tensor on the host: itself if it is there (or undefined), else a copy.
inline ::at::Tensor on_host(const ::at::Tensor& t) { return t.defined() && !t.is_cpu() ? t.cpu() : t; }

/// Strides in elements must be >= 0 (LibTorch 1.13 cannot make negative ones; other producers can).
inline void check_strides(::c10::IntArrayRef strides, const char* name) {
  for (std::size_t r = 0; r < strides.size(); ++r)
    RHYTHM_TORCH_REQUIRE(strides[r] >= 0, name, "non-negative strides", "strides ", sizes_string(strides));
}

/// Defined, strided (dense) and of the given rank, on any device: the checks that come before a
/// tensor is copied to the host.
inline void check_strided(const ::at::Tensor& t, const char* name, std::int64_t rank) {
  RHYTHM_TORCH_REQUIRE(t.defined(), name, "a defined tensor", "an undefined tensor");
  RHYTHM_TORCH_REQUIRE(t.layout() == ::at::kStrided, name, "a strided (dense) tensor", "layout ", t.layout());
  RHYTHM_TORCH_REQUIRE(t.dim() == rank, name, "rank " + std::to_string(rank), "rank ", t.dim(), " (sizes ",
                       sizes_string(t.sizes()), ")");
}

inline void check_after_dtype(const ::at::Tensor& t, const char* name) {
  check_strides(t.strides(), name);
  RHYTHM_TORCH_REQUIRE(!t.is_neg(), name, "a tensor without a pending negation", "a lazy negated view (call resolve_neg())");
  // a subclass that wraps other tensors (__torch_dispatch__, e.g. DTensor) has no data of its own
  RHYTHM_TORCH_REQUIRE(t.numel() == 0 || (t.has_storage() && t.storage().data() != nullptr), name,
                       "a tensor with data in memory", "a tensor without storage (a wrapper subclass?)");
}

inline void check_dtype(const ::at::Tensor& t, const char* name, ::at::ScalarType want) {
  RHYTHM_TORCH_REQUIRE(t.scalar_type() == want, name, std::string("dtype ") + ::c10::toString(want), "dtype ",
                       ::c10::toString(t.scalar_type()));
}

}  // namespace detail

/// A rhythm::view of `t` (see the file comment for what is accepted and rejected). `name` is the
/// argument name in error messages.
template <class T, std::size_t Rank>
::rhythm::view<T, Rank> view(const ::at::Tensor& t, const char* name = "tensor") {
  detail::check_strided(t, name, static_cast<std::int64_t>(Rank));
  detail::check_device(t.device(), name);
  detail::check_dtype(t, name, scalar_type_of<T>());
  detail::check_after_dtype(t, name);
  std::array<std::int64_t, Rank> extents{}, strides{};
  for (std::size_t r = 0; r < Rank; ++r) extents[r] = t.size(static_cast<std::int64_t>(r)), strides[r] = t.stride(static_cast<std::int64_t>(r));
  return ::rhythm::view<T, Rank>(static_cast<T*>(t.data_ptr()), extents, strides);
}

/// A read-only view: view<const T, Rank>.
template <class T, std::size_t Rank>
::rhythm::view<const T, Rank> const_view(const ::at::Tensor& t, const char* name = "tensor") {
  return view<const T, Rank>(t, name);
}

/// Calls f(std::type_identity<E>{}) with E the input element type of `t` (float, bfloat16, half);
/// rejects other dtypes. Does not check anything else.
template <class F>
decltype(auto) dispatch_input_dtype(const ::at::Tensor& t, const char* name, F&& f) {
  switch (t.scalar_type()) {
    case ::at::kFloat: return f(std::type_identity<float>{});
    case ::at::kBFloat16: return f(std::type_identity<::rhythm::bfloat16>{});
    case ::at::kHalf: return f(std::type_identity<::rhythm::half>{});
    default:
      TORCH_CHECK(false, "rhythm::torch: argument '", name, "': expected dtype Float, BFloat16 or Half, got dtype ",
                  ::c10::toString(t.scalar_type()));
  }
}

/// Segments of a batch, from an int64 tensor [B, 3] (rows {begin, response_begin, end}, any
/// strides, any device: read on the host) or from a contiguous range of rhythm::segment. Meant as
/// a parameter type: it converts implicitly from each and is neither copied nor moved. The
/// tensor's dtype, rank and shape are checked here (c10::Error); the ranges by the core (rhythm::error).
class segments_arg {
 public:
  segments_arg(const ::at::Tensor& segments) {  // NOLINT: implicit on purpose
    const char* name = "segments";
    detail::check_strided(segments, name, 2);
    detail::check_dtype(segments, name, ::at::kLong);
    RHYTHM_TORCH_REQUIRE(segments.size(1) == 3, name, "[B, 3] (begin, response_begin, end per row)", "sizes ",
                         detail::sizes_string(segments.sizes()));
    const ::at::Tensor host = detail::on_host(segments);
    const auto v = ::rhythm::torch::view<const std::int64_t, 2>(host, name);
    owned_.resize(static_cast<std::size_t>(v.extent(0)));
    for (std::int64_t b = 0; b < v.extent(0); ++b) owned_[b] = {v(b, 0), v(b, 1), v(b, 2)};
    segments_ = owned_;
  }
  segments_arg(std::span<const ::rhythm::segment> segments) : segments_(segments) {}  // NOLINT
  segments_arg(const std::vector<::rhythm::segment>& segments) : segments_(segments) {}  // NOLINT
  segments_arg(std::vector<::rhythm::segment>&& segments) : owned_(std::move(segments)), segments_(owned_) {}  // NOLINT
  segments_arg(const segments_arg&) = delete;
  segments_arg& operator=(const segments_arg&) = delete;

  std::span<const ::rhythm::segment> span() const noexcept { return segments_; }
  std::int64_t size() const noexcept { return static_cast<std::int64_t>(segments_.size()); }
  ::rhythm::view<const ::rhythm::segment, 1> view() const noexcept { return ::rhythm::make_view(segments_); }

 private:
  std::vector<::rhythm::segment> owned_;
  std::span<const ::rhythm::segment> segments_;
};

/// The [B, 3] int64 tensor of a list of segments (the inverse of segments_arg's conversion).
inline ::at::Tensor segments_tensor(std::span<const ::rhythm::segment> segments) {
  ::at::Tensor t = ::at::empty({static_cast<std::int64_t>(segments.size()), 3}, ::at::kLong);
  auto* p = t.data_ptr<std::int64_t>();
  for (const auto& s : segments) *p++ = s.begin, *p++ = s.response_begin, *p++ = s.end;
  return t;
}

}  // namespace rhythm::torch

#undef RHYTHM_TORCH_REQUIRE
