#pragma once
/// rhythm::torch::view: an at::Tensor seen as a rhythm::view, with every check of the foreign type.
///
///   auto q = rhythm::torch::view<const float, 4>(q_tensor, "q");   // [B, H, N, d], any strides
///
/// Element types and the dtype each needs:
///   float -> torch::kFloat, rhythm::bfloat16 -> torch::kBFloat16, rhythm::half -> torch::kHalf,
///   std::int64_t -> torch::kLong, std::uint8_t -> torch::kByte; T may be const (a read-only view).
/// Accepted: any strided CPU tensor of that dtype and rank with non-negative strides, contiguous or
/// not (transposed, permuted, narrowed, selected, stepped slices, expanded), at any storage offset
/// (data_ptr() already includes it). The view aliases the tensor's memory; it does not keep the
/// storage alive and writes through it bypass autograd, as writes through data_ptr() do.
///
/// Rejected with a c10::Error (TORCH_CHECK, like any torch op), message
///   rhythm::torch: argument 'q': expected <what>, got <what was given>
/// in this order of checks: an undefined tensor; a non-strided layout (sparse, mkldnn); a device
/// other than the CPU (a CUDA tensor's message says the CUDA backend is not available yet and will
/// need <rhythm/cuda.cuh>); the dtype; the rank; a negative stride; a pending negation bit
/// (torch's lazy _neg_view: call resolve_neg() first).
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
#include <vector>

#include <rhythm/core/dtypes.hpp>
#include <rhythm/core/segments.hpp>
#include <rhythm/core/tensor.hpp>

namespace rhythm::torch {

/// The torch dtype whose elements have the layout of T (T without const).
template <class T>
constexpr ::at::ScalarType scalar_type_of() {
  using E = std::remove_const_t<T>;
  if constexpr (std::is_same_v<E, float>) return ::at::kFloat;
  else if constexpr (std::is_same_v<E, ::rhythm::bfloat16>) return ::at::kBFloat16;
  else if constexpr (std::is_same_v<E, ::rhythm::half>) return ::at::kHalf;
  else if constexpr (std::is_same_v<E, std::int64_t>) return ::at::kLong;
  else if constexpr (std::is_same_v<E, std::uint8_t>) return ::at::kByte;
  else static_assert(sizeof(E) == 0, "rhythm::torch: element type must be float, rhythm::bfloat16, rhythm::half, "
                                     "std::int64_t or std::uint8_t");
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

/// Only CPU tensors are read for now; CUDA gets its own message.
inline void check_device(const ::c10::Device& device, const char* name) {
  if (device.is_cuda()) {
    TORCH_CHECK(false, "rhythm::torch: argument '", name, "': expected a CPU tensor, got a tensor on ", device.str(),
                ": the CUDA backend of rhythm::torch is not available yet (it will need <rhythm/cuda.cuh> and "
                "rhythm::exec::cuda); move the tensor with .cpu() meanwhile");
  }
  RHYTHM_TORCH_REQUIRE(device.is_cpu(), name, "a CPU tensor", "a tensor on ", device.str());
}

/// Strides in elements must be >= 0 (LibTorch 1.13 cannot make negative ones; other producers can).
inline void check_strides(::c10::IntArrayRef strides, const char* name) {
  for (std::size_t r = 0; r < strides.size(); ++r)
    RHYTHM_TORCH_REQUIRE(strides[r] >= 0, name, "non-negative strides", "strides ", sizes_string(strides));
}

/// Every check of view() except the dtype (for callers that dispatch on it).
inline void check_strided_cpu(const ::at::Tensor& t, const char* name, std::int64_t rank) {
  RHYTHM_TORCH_REQUIRE(t.defined(), name, "a defined tensor", "an undefined tensor");
  RHYTHM_TORCH_REQUIRE(t.layout() == ::at::kStrided, name, "a strided (dense) tensor", "layout ", t.layout());
  check_device(t.device(), name);
  RHYTHM_TORCH_REQUIRE(t.dim() == rank, name, "rank " + std::to_string(rank), "rank ", t.dim(), " (sizes ",
                       sizes_string(t.sizes()), ")");
}

inline void check_after_dtype(const ::at::Tensor& t, const char* name) {
  check_strides(t.strides(), name);
  RHYTHM_TORCH_REQUIRE(!t.is_neg(), name, "a tensor without a pending negation", "a lazy negated view (call resolve_neg())");
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
  detail::check_strided_cpu(t, name, static_cast<std::int64_t>(Rank));
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
/// strides, CPU) or from a contiguous range of rhythm::segment. Meant as a parameter type: it
/// converts implicitly from both and is neither copied nor moved. The tensor's dtype, rank,
/// shape and device are checked here (c10::Error); the ranges by the core (rhythm::error).
class segments_arg {
 public:
  segments_arg(const ::at::Tensor& segments) {  // NOLINT: implicit on purpose
    const char* name = "segments";
    detail::check_strided_cpu(segments, name, 2);
    detail::check_dtype(segments, name, ::at::kLong);
    RHYTHM_TORCH_REQUIRE(segments.size(1) == 3, name, "[B, 3] (begin, response_begin, end per row)", "sizes ",
                         detail::sizes_string(segments.sizes()));
    const auto v = ::rhythm::torch::view<const std::int64_t, 2>(segments, name);
    owned_.resize(static_cast<std::size_t>(v.extent(0)));
    for (std::int64_t b = 0; b < v.extent(0); ++b) owned_[b] = {v(b, 0), v(b, 1), v(b, 2)};
    segments_ = owned_;
  }
  segments_arg(std::span<const ::rhythm::segment> segments) : segments_(segments) {}  // NOLINT
  segments_arg(const std::vector<::rhythm::segment>& segments) : segments_(segments) {}  // NOLINT
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
