#pragma once
// The upload/download layer of the tests: test bodies are written once, typed over the execution
// policy P, and read and write every tensor through rt::array<P, T, R>, an owning strided tensor in
// the memory space of P's backend. Host backends keep it in a std::vector; a CUDA test translation
// unit specialises rt::memory<rhythm::device_space> (device buffers, cudaMemcpy) and make_policy /
// finish for rhythm::exec::cuda, and instantiates the same suites (test/suites/*.hpp).
//
//   rhythm::waad_jumps(policy, rt::in<P>(waad, B, N), rt::in<P>(segs), delta);   // inputs: uploaded copies
//   rt::array<P, float, 2> delta = rt::out<P>(-7.0f, B, N);                        // an output, filled
//   rt::finish(policy);                                                            // value errors of a device
//   std::vector<float> d = delta.host();                                           // downloaded
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <rhythm/rhythm.hpp>

namespace rt {

// Every typed suite runs once per backend; the host backends here, exec::par with more workers
// than cores on purpose.
using host_policies = ::testing::Types<rhythm::exec::seq, rhythm::exec::par>;

template <class P>
P make_policy() {
  if constexpr (std::is_same_v<P, rhythm::exec::par>) return P{3};
  else return P{};
}

// Whether backend P can run here: a device backend without its device reports false, and every
// test of its suites is then skipped (they still compile).
template <class P>
bool available() {
  return true;
}

// The base of every typed suite: skips the test where the backend cannot run.
template <class P>
class backend_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!available<P>()) GTEST_SKIP() << "no CUDA device";
  }
};

// After a primitive: a device backend turns its recorded value error into the rhythm::error (the
// error contract of core/status.hpp). Host backends have thrown already.
inline void finish(rhythm::exec::seq) {}
inline void finish(rhythm::exec::par) {}

// Storage in a memory space: upload and download of whole buffers.
template <class Space>
struct memory;

template <>
struct memory<rhythm::host_space> {
  template <class T>
  struct storage {
    std::vector<T> elements;
    T* data() const { return const_cast<T*>(elements.data()); }
  };
  template <class T>
  static storage<T> upload(const std::vector<T>& host) {
    return {host};
  }
  template <class T>
  static std::vector<T> download(const storage<T>& s) {
    return s.elements;
  }
};

template <class P>
using space_of = typename rhythm::backend<P>::memory_space;

// An owning tensor of T (possibly const) and rank R in the memory of backend P.
template <class P, class T, std::size_t R>
class array {
 public:
  using value_type = std::remove_const_t<T>;
  using memory_space = space_of<P>;
  using extents_type = std::array<std::int64_t, R>;
  static constexpr std::size_t rank() { return R; }

  // A copy of `host` with the given extents and strides (row-major when strides are omitted).
  array(const std::vector<value_type>& host, const extents_type& extents)
      : array(host, extents, rhythm::view<const value_type, R>(host.data(), extents).strides()) {}
  array(const std::vector<value_type>& host, const extents_type& extents, const extents_type& strides)
      : storage_(memory<memory_space>::upload(host)), extents_(extents), strides_(strides) {}

  std::int64_t extent(std::size_t r) const { return extents_[r]; }
  std::int64_t stride(std::size_t r) const { return strides_[r]; }
  T* data_handle() const { return storage_.data(); }

  // Every element of the buffer, downloaded.
  std::vector<value_type> host() const { return memory<memory_space>::download(storage_); }

 private:
  typename memory<memory_space>::template storage<value_type> storage_;
  extents_type extents_, strides_;
};

// A read-only upload of `host` with the given extents (row-major); with none, rank 1 of its size.
template <class P, class T, std::integral... I>
array<P, const T, sizeof...(I)> in(const std::vector<T>& host, I... extents) {
  return {host, {static_cast<std::int64_t>(extents)...}};
}
template <class P, class T>
array<P, const T, 1> in(const std::vector<T>& host) {
  return {host, {static_cast<std::int64_t>(host.size())}};
}
// A read-only upload seen through explicit extents and strides.
template <class P, class T, std::size_t R>
array<P, const T, R> in_strided(const std::vector<T>& host, const std::int64_t (&extents)[R],
                                const std::int64_t (&strides)[R]) {
  return {host, std::to_array(extents), std::to_array(strides)};
}

// A writable buffer of the given extents (row-major), every element `fill`.
template <class P, class T, std::integral... I>
array<P, T, sizeof...(I)> out(T fill, I... extents) {
  const std::int64_t n = (std::int64_t{1} * ... * static_cast<std::int64_t>(extents));
  return {std::vector<T>(static_cast<std::size_t>(n), fill), {static_cast<std::int64_t>(extents)...}};
}
// A writable copy of `host` seen through explicit extents and strides.
template <class P, class T, std::size_t R>
array<P, T, R> out_strided(const std::vector<T>& host, const std::int64_t (&extents)[R],
                           const std::int64_t (&strides)[R]) {
  return {host, std::to_array(extents), std::to_array(strides)};
}

}  // namespace rt
