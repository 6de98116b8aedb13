// The LibTorch adapter: views of tensors (round trips, strides, every rejection with its message),
// the signal wrappers and credit_assigner against the core on the same data (bitwise), masks to
// segments, bf16/half inputs, and the autograd PPO-clip loss (value against rhythm::ppo_clip_objective,
// gradient against finite differences, zero where clipped).
#include <rhythm/torch.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../test_util.hpp"

namespace {
using namespace rt;
namespace rtorch = rhythm::torch;
using rhythm::make_view;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A tensor holding a copy of v with the given sizes.
template <class T>
at::Tensor tensor_of(const std::vector<T>& v, std::vector<i64> sizes) {
  return at::from_blob(const_cast<T*>(v.data()), sizes, rtorch::scalar_type_of<T>()).clone();
}

// The elements of a float tensor in row-major order.
std::vector<float> values(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

// The message of the c10::Error that f throws; fails the test if f throws none or another type.
template <class F>
std::string torch_error(F&& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a c10::Error, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected a c10::Error, got none";
  return {};
}

// f throws rhythm::error with `code`; returns its message.
template <class F>
std::string rhythm_error(F&& f, rhythm::errc code) {
  try {
    f();
  } catch (const rhythm::error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a rhythm::error, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected a rhythm::error, got none";
  return {};
}

::testing::AssertionResult has_all(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* p : parts)
    if (message.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << p << "' not in: " << message;
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Views

// Every element read through the view equals the tensor's; writes through it land in the tensor.
template <class T>
void check_round_trip(const at::Tensor& t) {
  SCOPED_TRACE(c10::toString(t.scalar_type()));
  const auto v = rtorch::view<T, 3>(t, "t");
  ASSERT_EQ(static_cast<const void*>(v.data_handle()), t.data_ptr());
  for (std::size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(v.extent(r), t.size(static_cast<i64>(r)));
    EXPECT_EQ(v.stride(r), t.stride(static_cast<i64>(r)));
  }
  auto as_double = [](T x) {
    if constexpr (rhythm::input_element<T>) return double(rhythm::to_float(x));
    else return double(x);
  };
  const at::Tensor before = t.to(at::kDouble).contiguous();
  i64 i = 0;
  for (i64 a = 0; a < t.size(0); ++a)
    for (i64 b = 0; b < t.size(1); ++b)
      for (i64 c = 0; c < t.size(2); ++c, ++i) {
        EXPECT_EQ(as_double(v(a, b, c)), before.data_ptr<double>()[i]) << a << " " << b << " " << c;
        v(a, b, c) = T(static_cast<std::conditional_t<rhythm::input_element<T>, float, T>>(i % 100));
      }
  const at::Tensor after = t.to(at::kDouble).contiguous();
  for (i = 0; i < t.numel(); ++i) EXPECT_EQ(after.data_ptr<double>()[i], double(i % 100)) << i;
}

TEST(TorchView, RoundTripReadsAndWritesTheSameElements) {
  at::manual_seed(1);
  check_round_trip<float>(at::randn({2, 3, 4}));
  check_round_trip<rhythm::bfloat16>(at::randn({2, 3, 4}).to(at::kBFloat16));
  check_round_trip<rhythm::half>(at::randn({2, 3, 4}).to(at::kHalf));
  check_round_trip<std::int64_t>(at::randint(-50, 50, {2, 3, 4}, at::kLong));
  check_round_trip<std::uint8_t>(at::randint(0, 255, {2, 3, 4}, at::kByte));
  // A read-only view of a writable tensor.
  const at::Tensor t = at::randn({3, 5});
  const rhythm::view<const float, 2> c = rtorch::const_view<float, 2>(t, "t");
  EXPECT_EQ(c(2, 4), t[2][4].item<float>());
}

TEST(TorchView, NonContiguousTensorsAreReadThroughTheirStrides) {
  const at::Tensor base = at::arange(5 * 6 * 7, at::kFloat).reshape({5, 6, 7});
  const std::vector<std::pair<const char*, at::Tensor>> cases = {
      {"narrow", base.narrow(1, 2, 3)},
      {"select then t()", base.select(0, 3).t().unsqueeze(0)},
      {"permute", base.permute({2, 0, 1})},
      {"stepped slice", base.slice(2, 1, 7, 2)},
      {"transpose", base.transpose(0, 2)},
      {"expand (stride 0)", base.select(0, 1).unsqueeze(0).expand({4, 6, 7})},
      {"diagonal-ish as_strided", base.as_strided({3, 3, 2}, {43, 7, 3}, 5)},
  };
  for (const auto& [what, t] : cases) {
    SCOPED_TRACE(what);
    const auto v = rtorch::view<const float, 3>(t, "t");
    EXPECT_EQ(static_cast<const void*>(v.data_handle()), t.data_ptr()) << "storage offset included";
    const at::Tensor c = t.contiguous();
    i64 i = 0;
    for (i64 a = 0; a < t.size(0); ++a)
      for (i64 b = 0; b < t.size(1); ++b)
        for (i64 d = 0; d < t.size(2); ++d, ++i) ASSERT_EQ(v(a, b, d), c.data_ptr<float>()[i]) << a << b << d;
  }
  // Writes through a view of a narrowed tensor land in the base tensor.
  at::Tensor owner = at::zeros({4, 6});
  const auto w = rtorch::view<float, 2>(owner.narrow(0, 1, 2).narrow(1, 3, 2), "w");
  w(1, 1) = 5.0f;
  EXPECT_EQ(owner[2][4].item<float>(), 5.0f);
  EXPECT_EQ(owner.sum().item<float>(), 5.0f);
}

TEST(TorchView, RejectsAnUndefinedTensor) {
  EXPECT_TRUE(has_all(torch_error([] { rtorch::view<const float, 2>(at::Tensor(), "q"); }),
                      {"rhythm::torch: argument 'q'", "expected a defined tensor", "got an undefined tensor"}));
}

TEST(TorchView, RejectsAWrongDtype) {
  EXPECT_TRUE(has_all(torch_error([] { rtorch::view<const float, 2>(at::zeros({2, 2}, at::kDouble), "maps"); }),
                      {"argument 'maps'", "expected dtype Float", "got dtype Double"}));
  EXPECT_TRUE(has_all(torch_error([] { rtorch::view<rhythm::bfloat16, 1>(at::zeros({2}, at::kHalf), "q"); }),
                      {"argument 'q'", "expected dtype BFloat16", "got dtype Half"}));
  EXPECT_TRUE(has_all(torch_error([] { rtorch::view<std::int64_t, 1>(at::zeros({2}, at::kInt), "group_ids"); }),
                      {"argument 'group_ids'", "expected dtype Long", "got dtype Int"}));
}

TEST(TorchView, RejectsAWrongRank) {
  EXPECT_TRUE(has_all(torch_error([] { rtorch::view<const float, 4>(at::zeros({2, 3, 4}), "q"); }),
                      {"argument 'q'", "expected rank 4", "got rank 3 (sizes [2, 3, 4])"}));
}

TEST(TorchView, RejectsTensorsNotOnTheCpu) {
  const at::Tensor meta = at::empty({2, 3}, at::TensorOptions().device(at::kMeta));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::view<const float, 2>(meta, "k"); }),
                      {"argument 'k'", "expected a CPU tensor", "got a tensor on meta"}));
  // This LibTorch is CPU-only, so no CUDA tensor can be made here: the check is tested on the device
  // value that a CUDA tensor would carry (view() calls the same function with t.device()).
  EXPECT_TRUE(has_all(torch_error([] { rtorch::detail::check_device(c10::Device(c10::kCUDA, 1), "q"); }),
                      {"argument 'q'", "expected a CPU tensor", "got a tensor on cuda:1",
                       "rhythm::torch::view reads host memory",
                       "credit_assigner and head_signals_from_* take CUDA tensors", "<rhythm/cuda.cuh>"}));
  if (at::hasCUDA()) {
    const at::Tensor cuda = at::zeros({2, 3}, at::TensorOptions().device(at::kCUDA));
    EXPECT_TRUE(has_all(torch_error([&] { rtorch::view<const float, 2>(cuda, "q"); }),
                        {"cuda:0", "reads host memory"}));
  }
}

TEST(TorchView, RejectsNegativeStrides) {
  // LibTorch refuses to make negative strides itself (as_strided throws; flip() copies), so the
  // check is tested on the strides a foreign producer could hand over.
  const at::Tensor t = at::arange(12, at::kFloat);
  EXPECT_THROW(t.as_strided({3}, {-1}, 11), c10::Error);
  EXPECT_GE(t.flip({0}).stride(0), 0);
  EXPECT_TRUE(has_all(torch_error([] { rtorch::detail::check_strides(std::vector<i64>{4, -1}, "maps"); }),
                      {"argument 'maps'", "expected non-negative strides", "got strides [4, -1]"}));
}

TEST(TorchView, RejectsSparseAndLazilyNegatedTensors) {
  const at::Tensor sparse = at::eye(3).to_sparse();
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::view<const float, 2>(sparse, "maps"); }),
                      {"argument 'maps'", "expected a strided (dense) tensor", "got layout Sparse"}));
  const at::Tensor negated = at::_neg_view(at::ones({2, 2}));
  ASSERT_TRUE(negated.is_neg());
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::view<const float, 2>(negated, "q"); }),
                      {"argument 'q'", "resolve_neg()"}));
  EXPECT_EQ((rtorch::view<const float, 2>(negated.resolve_neg(), "q")(1, 1)), -1.0f);
}

// ---------------------------------------------------------------------------------------------
// Segments

TEST(TorchSegments, TensorAndVectorGiveTheSameSegments) {
  const std::vector<rhythm::segment> segs{{0, 3, 9}, {2, 2, 7}, {1, 8, 8}};
  const at::Tensor t = rtorch::segments_tensor(segs);
  EXPECT_EQ(t.sizes(), at::IntArrayRef({3, 3}));
  EXPECT_EQ(t.scalar_type(), at::kLong);
  const rtorch::segments_arg from_tensor(t);
  EXPECT_TRUE(std::equal(segs.begin(), segs.end(), from_tensor.span().begin(), from_tensor.span().end()));
  const at::Tensor transposed = t.t().contiguous().t();  // the same rows through column-major strides
  ASSERT_FALSE(transposed.is_contiguous());
  const rtorch::segments_arg from_strided(transposed);
  EXPECT_TRUE(std::equal(segs.begin(), segs.end(), from_strided.span().begin(), from_strided.span().end()));
  const rtorch::segments_arg from_vector(segs);
  EXPECT_EQ(from_vector.span().data(), segs.data()) << "a vector is not copied";
}

TEST(TorchSegments, RejectsWrongDtypeShapeAndRanges) {
  const at::Tensor q = at::randn({2, 2, 8, 4}), k = at::randn({2, 1, 8, 4});
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(q, k, at::zeros({2, 3}, at::kInt)); }),
                      {"argument 'segments'", "expected dtype Long", "got dtype Int"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(q, k, at::zeros({2, 2}, at::kLong)); }),
                      {"argument 'segments'", "expected [B, 3]", "got sizes [2, 2]"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(q, k, at::zeros({6}, at::kLong)); }),
                      {"argument 'segments'", "expected rank 2", "got rank 1"}));
  // Ranges and the count are the core's checks: rhythm::error.
  const std::vector<rhythm::segment> bad{{0, 2, 8}, {0, 5, 9}};
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::head_signals_from_qk(q, k, bad); }, rhythm::errc::bad_segment),
                      {"segments[1]", "{0, 5, 9}"}));
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::head_signals_from_qk(q, k, rtorch::segments_tensor(bad).narrow(0, 0, 1)); },
                                   rhythm::errc::shape_mismatch),
                      {"segments", "1 segments for a batch of 2"}));
}

// ---------------------------------------------------------------------------------------------
// Signals: the torch wrappers against the core on the same buffers

// Q/K [B,H,N,d] and [B,Hkv,N,d], their softmax maps [B,H,N,N] in float, segments, rewards, group ids.
struct batch {
  static constexpr i64 B = 6, H = 4, Hkv = 2, N = 72, d = 16;
  std::vector<rhythm::segment> segs;
  std::vector<float> q, k, maps, rewards{1, 0, 1, 0, 0, 1}, entropies;
  std::vector<std::int64_t> ids{7, 7, 7, -3, -3, -3};
  explicit batch(unsigned seed) {
    std::mt19937 rng(seed);
    for (i64 b = 0; b < B; ++b) segs.push_back(random_segment(rng, N));
    segs[1] = {0, 20, N};
    q = random_floats(rng, B * H * N * d, 1.5);
    k = random_floats(rng, B * Hkv * N * d, 1.5);
    entropies = random_floats(rng, B * N, 1.0);
    maps.assign(B * H * N * N, 0.0f);
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h) {
        std::vector<std::vector<double>> qd(N, std::vector<double>(d)), kd = qd;
        for (i64 t = 0; t < N; ++t)
          for (i64 c = 0; c < d; ++c) {
            qd[t][c] = q[((b * H + h) * N + t) * d + c];
            kd[t][c] = k[((b * Hkv + h / 2) * N + t) * d + c];
          }
        const auto A = ref::softmax_map(qd, kd, to_ref(segs[b]), 1.0 / std::sqrt(double(d)));
        for (i64 t = 0; t < N; ++t)
          for (i64 s = 0; s < N; ++s) maps[((b * H + h) * N + t) * N + s] = static_cast<float>(A[t][s]);
      }
  }
  at::Tensor q_tensor() const { return tensor_of(q, {B, H, N, d}); }
  at::Tensor k_tensor() const { return tensor_of(k, {B, Hkv, N, d}); }
  at::Tensor maps_tensor() const { return tensor_of(maps, {B, H, N, N}); }
  at::Tensor rewards_tensor() const { return tensor_of(rewards, {B}); }
  at::Tensor ids_tensor() const { return tensor_of(ids, {B}); }
  at::Tensor entropies_tensor() const { return tensor_of(entropies, {B, N}); }
  at::Tensor segments_tensor() const { return rtorch::segments_tensor(segs); }
  // [B, N] masks of the segments: nonzero at the response positions, and at the real tokens.
  at::Tensor response_mask() const {
    at::Tensor m = at::zeros({B, N}, at::kBool);
    for (i64 b = 0; b < B; ++b) m[b].slice(0, segs[b].response_begin, segs[b].end).fill_(true);
    return m;
  }
  at::Tensor attention_mask() const {
    at::Tensor m = at::zeros({B, N}, at::kLong);
    for (i64 b = 0; b < B; ++b) m[b].slice(0, segs[b].begin, segs[b].end).fill_(1);
    return m;
  }
};

template <class T>
std::vector<T> convert(const std::vector<float>& v) {
  std::vector<T> out;
  out.reserve(v.size());
  for (float x : v) out.push_back(T(x));
  return out;
}

// The core on views of vectors: maps [B,H,N,N] or q,k.
using outputs = head_outputs<rhythm::exec::seq>;
template <class T>
outputs core_from_maps(const std::vector<T>& maps, const batch& x, const rhythm::signal_params& p = {}) {
  outputs o(batch::B, batch::H, batch::N);
  rhythm::head_signals_from_maps(rhythm::exec::seq{}, make_view(maps, batch::B, batch::H, batch::N, batch::N),
                                 make_view(x.segs), o.span, o.waad, o.fai, p);
  return o;
}
template <class T>
outputs core_from_qk(const std::vector<T>& q, const std::vector<T>& k, const batch& x,
                     const rhythm::signal_params& p = {}) {
  outputs o(batch::B, batch::H, batch::N);
  rhythm::head_signals_from_qk(rhythm::exec::seq{}, make_view(q, batch::B, batch::H, batch::N, batch::d),
                               make_view(k, batch::B, batch::Hkv, batch::N, batch::d), make_view(x.segs), o.span,
                               o.waad, o.fai, p);
  return o;
}

void expect_same_signals(const rtorch::head_signal_tensors& got, const outputs& want) {
  for (const auto* t : {&got.span, &got.waad, &got.fai}) {
    EXPECT_EQ(t->scalar_type(), at::kFloat);
    EXPECT_TRUE(t->is_contiguous());
  }
  EXPECT_EQ(got.span.sizes(), (std::vector<i64>{want.B, want.H}));
  EXPECT_EQ(got.waad.sizes(), (std::vector<i64>{want.B, want.H, want.N}));
  const auto w = want.host();
  EXPECT_EQ(values(got.span), w.span);
  EXPECT_EQ(values(got.waad), w.waad);
  EXPECT_EQ(values(got.fai), w.fai);
}

void expect_same_signals(const rtorch::head_signal_tensors& got, const rtorch::head_signal_tensors& want) {
  EXPECT_TRUE(at::equal(got.span, want.span));
  EXPECT_TRUE(at::equal(got.waad, want.waad));
  EXPECT_TRUE(at::equal(got.fai, want.fai));
}

TEST(TorchSignals, FromMapsEqualsTheCoreOnTheSameData) {
  const batch x(1);
  const rhythm::signal_params p{.window = 6, .horizon = {.lo = 4, .hi = 30}};
  expect_same_signals(rtorch::head_signals_from_maps(x.maps_tensor(), x.segs, p, 3), core_from_maps(x.maps, x, p));
  expect_same_signals(rtorch::head_signals_from_maps(x.maps_tensor(), rtorch::segments_tensor(x.segs), p),
                      core_from_maps(x.maps, x, p));
}

TEST(TorchSignals, FromQKEqualsTheCoreOnTheSameData) {
  const batch x(2);
  expect_same_signals(rtorch::head_signals_from_qk(x.q_tensor(), x.k_tensor(), x.segs, {}, 3), core_from_qk(x.q, x.k, x));
  const rhythm::signal_params p{.window = 3, .horizon = {.lo = 2, .hi = rhythm::unbounded_horizon}, .scale = 0.3f};
  expect_same_signals(rtorch::head_signals_from_qk(x.q_tensor(), x.k_tensor(), rtorch::segments_tensor(x.segs), p),
                      core_from_qk(x.q, x.k, x, p));
}

TEST(TorchSignals, ThreadCountDoesNotChangeTheResult) {
  const batch x(3);
  const auto one = rtorch::head_signals_from_qk(x.q_tensor(), x.k_tensor(), x.segs, {}, 1);
  for (int threads : {0, 2, 5}) expect_same_signals(rtorch::head_signals_from_qk(x.q_tensor(), x.k_tensor(), x.segs, {}, threads), one);
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(x.q_tensor(), x.k_tensor(), x.segs, {}, -1); }),
                      {"argument 'threads'", "expected >= 0", "got -1"}));
}

TEST(TorchSignals, NonContiguousQKGiveTheSameSignalsAsContiguousCopies) {
  const batch x(4);
  const i64 B = batch::B, H = batch::H, Hkv = batch::Hkv, N = batch::N, d = batch::d;
  const at::Tensor q = x.q_tensor(), k = x.k_tensor();
  const auto want = rtorch::head_signals_from_qk(q, k, x.segs);
  // q stored [B, N, H, d] (the usual projection output) and permuted to [B, H, N, d].
  const at::Tensor q_bnhd = q.permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3});
  // k stored [B, Hkv, d, N] and transposed.
  const at::Tensor k_bhdn = k.transpose(2, 3).contiguous().transpose(2, 3);
  // q and k sliced out of a wider head dimension with a storage offset, and out of a larger batch.
  const at::Tensor q_wide = at::cat({at::randn({B, H, N, 3}), q, at::randn({B, H, N, 5})}, 3).narrow(3, 3, d);
  const at::Tensor k_big = at::cat({at::randn({2, Hkv, N, d}), k}, 0).narrow(0, 2, B);
  // every other element of a doubled head dimension (stride 2 on d)
  const at::Tensor q_stepped = at::stack({q, at::full_like(q, kNaN)}, 4).reshape({B, H, N, 2 * d}).slice(3, 0, 2 * d, 2);
  // select: one batch row of a [1, ...] tensor
  ASSERT_FALSE(q_bnhd.is_contiguous());
  ASSERT_FALSE(k_bhdn.is_contiguous());
  ASSERT_FALSE(q_wide.is_contiguous());
  ASSERT_GT(k_big.storage_offset(), 0);
  ASSERT_FALSE(q_stepped.is_contiguous());
  expect_same_signals(rtorch::head_signals_from_qk(q_bnhd, k_bhdn, x.segs), want);
  expect_same_signals(rtorch::head_signals_from_qk(q_wide, k_big, x.segs), want);
  expect_same_signals(rtorch::head_signals_from_qk(q_stepped, k, x.segs), want);
  // GQA spelled out: k repeated to Hq heads gives the same as Hkv heads; one kv head broadcast to
  // every query head with expand() (stride 0) gives the same as Hkv = 1.
  const at::Tensor k_repeated = k.unsqueeze(2).expand({B, Hkv, H / Hkv, N, d}).reshape({B, H, N, d});
  expect_same_signals(rtorch::head_signals_from_qk(q, k_repeated, x.segs), want);
  const at::Tensor k_one = k.narrow(1, 0, 1), k_broadcast = k_one.expand({B, H, N, d});
  ASSERT_EQ(k_broadcast.stride(1), 0);
  expect_same_signals(rtorch::head_signals_from_qk(q, k_broadcast, x.segs),
                      rtorch::head_signals_from_qk(q, k_one.contiguous(), x.segs));
  // A selected sequence: a [1, ...] batch cut out of the middle.
  const std::vector<rhythm::segment> one{x.segs[3]};
  const auto single = rtorch::head_signals_from_qk(q.narrow(0, 3, 1), k.select(0, 3).unsqueeze(0), one);
  EXPECT_TRUE(at::equal(single.waad[0], want.waad[3]));
  EXPECT_TRUE(at::equal(single.fai[0], want.fai[3]));
  EXPECT_TRUE(at::equal(single.span[0], want.span[3]));
}

TEST(TorchSignals, NonContiguousMapsGiveTheSameSignals) {
  const batch x(5);
  const i64 B = batch::B, H = batch::H, N = batch::N;
  const at::Tensor maps = x.maps_tensor();
  const auto want = rtorch::head_signals_from_maps(maps, x.segs);
  // Stored [H, B, N, N] and permuted; cut out of a larger batch: rows stay unit-stride, so bitwise.
  expect_same_signals(rtorch::head_signals_from_maps(maps.transpose(0, 1).contiguous().transpose(0, 1), x.segs), want);
  expect_same_signals(
      rtorch::head_signals_from_maps(at::cat({at::rand({1, H, N, N}), maps}, 0).narrow(0, 1, B), x.segs), want);
  // Keys on a strided axis (maps stored transposed, [B, H, s, t]): the core sums such rows with a
  // scalar loop instead of float packs, so equal to float rounding only.
  const at::Tensor transposed = maps.transpose(2, 3).contiguous().transpose(2, 3);
  const auto got = rtorch::head_signals_from_maps(transposed, x.segs);
  EXPECT_TRUE(at::allclose(got.span, want.span, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(got.waad, want.waad, 1e-6, 1e-6));
  EXPECT_TRUE(at::equal(got.fai, want.fai)) << "FAI column sums do not depend on the row layout";
}

TEST(TorchSignals, Bf16AndHalfMatchTheCoreOnTheSameData) {
  const batch x(6);
  // Torch's float -> bf16/half rounding and rhythm's agree bit for bit.
  const auto qb = convert<rhythm::bfloat16>(x.q);
  const at::Tensor qt = x.q_tensor().to(at::kBFloat16);
  EXPECT_EQ(std::memcmp(qt.data_ptr(), qb.data(), qb.size() * 2), 0);
  const auto qh = convert<rhythm::half>(x.q);
  EXPECT_EQ(std::memcmp(x.q_tensor().to(at::kHalf).data_ptr(), qh.data(), qh.size() * 2), 0);

  const auto kb = convert<rhythm::bfloat16>(x.k), mb = convert<rhythm::bfloat16>(x.maps);
  const auto kh = convert<rhythm::half>(x.k), mh = convert<rhythm::half>(x.maps);
  const i64 B = batch::B, H = batch::H, Hkv = batch::Hkv, N = batch::N, d = batch::d;
  expect_same_signals(rtorch::head_signals_from_qk(tensor_of(qb, {B, H, N, d}), tensor_of(kb, {B, Hkv, N, d}), x.segs),
                      core_from_qk(qb, kb, x));
  expect_same_signals(rtorch::head_signals_from_qk(tensor_of(qh, {B, H, N, d}), tensor_of(kh, {B, Hkv, N, d}), x.segs),
                      core_from_qk(qh, kh, x));
  expect_same_signals(rtorch::head_signals_from_maps(tensor_of(mb, {B, H, N, N}), x.segs), core_from_maps(mb, x));
  expect_same_signals(rtorch::head_signals_from_maps(tensor_of(mh, {B, H, N, N}), x.segs), core_from_maps(mh, x));
  // bf16 signals stay close to the float ones (float accumulation).
  const auto f = rtorch::head_signals_from_qk(x.q_tensor(), x.k_tensor(), x.segs);
  const auto b = rtorch::head_signals_from_qk(qt, x.k_tensor().to(at::kBFloat16), x.segs);
  EXPECT_LT((b.waad - f.waad).abs().max().item<float>(), 0.5f);
}

TEST(TorchSignals, RejectsMismatchedInputs) {
  const batch x(7);
  const at::Tensor q = x.q_tensor(), k = x.k_tensor();
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(q.to(at::kDouble), k.to(at::kDouble), x.segs); }),
                      {"argument 'q'", "expected dtype Float, BFloat16 or Half", "got dtype Double"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(q, k.to(at::kBFloat16), x.segs); }),
                      {"argument 'k'", "expected the dtype of q (Float)", "got dtype BFloat16"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_qk(q, k[0], x.segs); }),
                      {"argument 'k'", "expected rank 4", "got rank 3"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_maps(x.maps_tensor().to(at::kLong), x.segs); }),
                      {"argument 'maps'", "expected dtype Float, BFloat16 or Half", "got dtype Long"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::head_signals_from_maps(at::Tensor(), x.segs); }),
                      {"argument 'maps'", "expected a defined tensor"}));
  // Shapes between arguments, params and values: the core's rhythm::error.
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::head_signals_from_qk(q, k.narrow(1, 0, 1).narrow(3, 0, 8), x.segs); },
                                   rhythm::errc::shape_mismatch),
                      {"argument 'k'", "[B, Hkv, N, d]"}));
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::head_signals_from_qk(q, k, x.segs, {.window = 0}); },
                                   rhythm::errc::bad_parameter),
                      {"params.window"}));
  at::Tensor poisoned = q.clone();
  poisoned[2][1][x.segs[2].end - 1][0] = kNaN;
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::head_signals_from_qk(poisoned, k, x.segs); }, rhythm::errc::non_finite),
                      {"finite values"}));
}

// ---------------------------------------------------------------------------------------------
// credit_assigner: through torch equals rhythm::credit_pipeline on core views, bitwise

// The elements of a rank-1 or rank-2 view in row-major order.
template <class T, std::size_t Rank>
std::vector<std::remove_const_t<T>> elements(const rhythm::view<T, Rank>& v) {
  static_assert(Rank == 1 || Rank == 2);
  std::vector<std::remove_const_t<T>> out;
  for (i64 i = 0; i < v.extent(0); ++i) {
    if constexpr (Rank == 1) out.push_back(v(i));
    else
      for (i64 j = 0; j < v.extent(1); ++j) out.push_back(v(i, j));
  }
  return out;
}

// The elements of a tensor read as T (its dtype and rank checked by rhythm::torch::view).
template <class T, std::size_t Rank>
std::vector<T> elements(const at::Tensor& t, const char* name) {
  return elements(rtorch::view<const T, Rank>(t, name));
}

// What rhythm::credit_pipeline gives on views of the same data: gamma, shaped, the diagnostics,
// and the intermediates that credit_diagnostics holds as tensors.
struct core_credit {
  static constexpr i64 B = batch::B, H = batch::H, N = batch::N;
  std::vector<float> gamma = std::vector<float>(B * N, -7.0f);
  std::vector<float> shaped = std::vector<float>(B * N, -7.0f);
  rhythm::pipeline_diagnostics diagnostics;
  std::vector<float> advantages, waad, fai, head_spans;
  std::vector<rhythm::token_flag> flags;
  std::vector<rhythm::head_role> head_roles;
  auto gamma_view() { return make_view(gamma, B, N); }
  auto shaped_view() { return make_view(shaped, B, N); }
  void keep(const rhythm::credit_pipeline& pipe) {
    advantages = elements(pipe.advantages()), waad = elements(pipe.waad()), fai = elements(pipe.fai());
    head_spans = elements(pipe.head_spans()), flags = elements(pipe.flags()), head_roles = elements(pipe.head_roles());
  }
};

// credit_pipeline::run_from_qk on views of vectors (with x.entropies when `entropies`).
template <class T, class Shaping>
core_credit core_pipeline_qk(const std::vector<T>& q, const std::vector<T>& k, const batch& x, const Shaping& shaping,
                             const rhythm::pipeline_params& p = {}, bool entropies = false) {
  rhythm::credit_pipeline pipe;
  core_credit o;
  const auto qv = make_view(q, batch::B, batch::H, batch::N, batch::d);
  const auto kv = make_view(k, batch::B, batch::Hkv, batch::N, batch::d);
  o.diagnostics = entropies ? pipe.run_from_qk(rhythm::exec::seq{}, qv, kv, make_view(x.segs), make_view(x.rewards),
                                               make_view(x.ids), make_view(x.entropies, batch::B, batch::N), shaping,
                                               o.gamma_view(), o.shaped_view(), p)
                            : pipe.run_from_qk(rhythm::exec::seq{}, qv, kv, make_view(x.segs), make_view(x.rewards),
                                               make_view(x.ids), shaping, o.gamma_view(), o.shaped_view(), p);
  o.keep(pipe);
  return o;
}

// credit_pipeline::run_from_maps on views of vectors (with x.entropies when `entropies`).
template <class T, class Shaping>
core_credit core_pipeline_maps(const std::vector<T>& maps, const batch& x, const Shaping& shaping,
                               const rhythm::pipeline_params& p = {}, bool entropies = false) {
  rhythm::credit_pipeline pipe;
  core_credit o;
  const auto mv = make_view(maps, batch::B, batch::H, batch::N, batch::N);
  o.diagnostics = entropies ? pipe.run_from_maps(rhythm::exec::seq{}, mv, make_view(x.segs), make_view(x.rewards),
                                                 make_view(x.ids), make_view(x.entropies, batch::B, batch::N), shaping,
                                                 o.gamma_view(), o.shaped_view(), p)
                            : pipe.run_from_maps(rhythm::exec::seq{}, mv, make_view(x.segs), make_view(x.rewards),
                                                 make_view(x.ids), shaping, o.gamma_view(), o.shaped_view(), p);
  o.keep(pipe);
  return o;
}

// gamma, shaped, every diagnostics tensor and diagnostics.values() equal the core's, bit for bit.
void expect_same_credit(const rtorch::credit_result& got, const core_credit& want) {
  const i64 B = core_credit::B, H = core_credit::H, N = core_credit::N;
  EXPECT_EQ(got.gamma.sizes(), (std::vector<i64>{B, N}));
  EXPECT_EQ(got.shaped.sizes(), (std::vector<i64>{B, N}));
  EXPECT_EQ((elements<float, 2>(got.gamma, "gamma")), want.gamma);
  EXPECT_EQ((elements<float, 2>(got.shaped, "shaped")), want.shaped);
  const auto& g = got.diagnostics;
  for (const at::Tensor* t : {&g.response_tokens, &g.preplan, &g.anchor, &g.dominated, &g.intro}) {
    EXPECT_EQ(t->dim(), 0);
    EXPECT_EQ(t->scalar_type(), at::kLong);
  }
  for (const at::Tensor* t : {&g.mean_gamma, &g.amplified_share}) {
    EXPECT_EQ(t->dim(), 0);
    EXPECT_EQ(t->scalar_type(), at::kDouble);
  }
  const auto v = g.values();
  const auto& w = want.diagnostics;
  EXPECT_EQ(v.response_tokens, w.response_tokens);
  EXPECT_EQ(v.preplan, w.preplan);
  EXPECT_EQ(v.anchor, w.anchor);
  EXPECT_EQ(v.dominated, w.dominated);
  EXPECT_EQ(v.intro, w.intro);
  EXPECT_EQ(v.mean_gamma, w.mean_gamma);
  EXPECT_EQ(v.amplified_share, w.amplified_share);
  EXPECT_EQ(g.advantages.sizes(), (std::vector<i64>{B}));
  EXPECT_EQ((elements<float, 1>(g.advantages, "advantages")), want.advantages);
  EXPECT_EQ(g.flags.sizes(), (std::vector<i64>{B, N}));
  EXPECT_EQ((elements<rhythm::token_flag, 2>(g.flags, "flags")), want.flags);
  EXPECT_EQ(g.waad.sizes(), (std::vector<i64>{B, N}));
  EXPECT_EQ((elements<float, 2>(g.waad, "waad")), want.waad);
  EXPECT_EQ((elements<float, 2>(g.fai, "fai")), want.fai);
  EXPECT_EQ(g.head_spans.sizes(), (std::vector<i64>{B, H}));
  EXPECT_EQ((elements<float, 2>(g.head_spans, "head_spans")), want.head_spans);
  EXPECT_EQ(g.head_roles.sizes(), (std::vector<i64>{B, H}));
  EXPECT_EQ((elements<rhythm::head_role, 2>(g.head_roles, "head_roles")), want.head_roles);
}

TEST(TorchCredit, FromQKEqualsThePipelineBitwise) {
  const batch x(11);
  const auto want = core_pipeline_qk(x.q, x.k, x, rhythm::shaping::coupled_rhythm{});
  rtorch::credit_assigner assign;  // coupled_rhythm, default params
  const auto got = assign({.q = x.q_tensor(), .k = x.k_tensor(), .segments = x.segments_tensor(),
                           .rewards = x.rewards_tensor(), .group_ids = x.ids_tensor()});
  expect_same_credit(got, want);
  EXPECT_GT(got.diagnostics.values().anchor, 0);
  // Non-contiguous q and k, two threads: still bitwise.
  const at::Tensor q_bnhd = x.q_tensor().permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3});
  rtorch::credit_assigner two(rhythm::shaping::coupled_rhythm{}, {}, 2);
  expect_same_credit(two({.q = q_bnhd, .k = x.k_tensor().transpose(2, 3).contiguous().transpose(2, 3),
                          .segments = x.segments_tensor(), .rewards = x.rewards_tensor(), .group_ids = x.ids_tensor()}),
                     want);
}

TEST(TorchCredit, FromMapsEqualsThePipelineAndThePipelineIsReused) {
  const batch x(12);
  rhythm::pipeline_params p{.signals = {.window = 8, .horizon = {.lo = 5, .hi = 40}},
                            .selection = {.q = 0.3},
                            .shaping = {.mean_preserving = true}};
  // One assigner for every round; its policy, threads and params change between calls.
  rtorch::credit_assigner assign(rhythm::shaping::global_anchor{}, p);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    core_credit want;
    if (round == 0) {
      want = core_pipeline_maps(x.maps, x, rhythm::shaping::global_anchor{}, p);
    } else if (round == 1) {
      assign.policy = rhythm::shaping::local_chunk{.gamma_amp = 2.0};
      assign.threads = 3;
      want = core_pipeline_maps(x.maps, x, rhythm::shaping::local_chunk{.gamma_amp = 2.0}, p);
    } else {  // heads ranked over the batch: one row of roles, expanded to [B, H] in the diagnostics
      p.pooled_groups = true;
      assign.params = p;
      want = core_pipeline_maps(x.maps, x, rhythm::shaping::local_chunk{.gamma_amp = 2.0}, p);
      for (i64 b = 1; b < batch::B; ++b)
        EXPECT_TRUE(std::equal(want.head_roles.begin(), want.head_roles.begin() + batch::H,
                               want.head_roles.begin() + b * batch::H));
    }
    const auto got = assign({.maps = x.maps_tensor(), .segments = x.segments_tensor(), .rewards = x.rewards_tensor(),
                             .group_ids = x.ids_tensor()});
    expect_same_credit(got, want);
    // The assigner's pipeline holds the intermediates of this run.
    EXPECT_EQ(elements(assign.pipeline().advantages()), want.advantages);
    EXPECT_EQ(elements(assign.pipeline().flags()), want.flags);
    EXPECT_EQ(elements(assign.pipeline().head_roles()), want.head_roles);
  }
}

TEST(TorchCredit, EntropyPolicyAndHalfInputsEqualThePipeline) {
  const batch x(13);
  const auto qh = convert<rhythm::half>(x.q), kh = convert<rhythm::half>(x.k);
  const i64 B = batch::B, H = batch::H, Hkv = batch::Hkv, N = batch::N, d = batch::d;
  rtorch::credit_assigner entropy(rhythm::shaping::entropy{});
  expect_same_credit(entropy({.q = tensor_of(qh, {B, H, N, d}), .k = tensor_of(kh, {B, Hkv, N, d}),
                              .segments = x.segments_tensor(), .rewards = x.rewards_tensor(),
                              .group_ids = x.ids_tensor(), .entropies = x.entropies_tensor()}),
                     core_pipeline_qk(qh, kh, x, rhythm::shaping::entropy{}, {}, true));
  // 16-bit entropies are read as the float values they hold.
  for (const auto type : {at::kHalf, at::kBFloat16}) {
    const at::Tensor e16 = x.entropies_tensor().to(type);
    const auto run = [&](const at::Tensor& e) {
      return entropy({.maps = x.maps_tensor(), .segments = x.segments_tensor(), .rewards = x.rewards_tensor(),
                      .group_ids = x.ids_tensor(), .entropies = e});
    };
    const auto a = run(e16), b = run(e16.to(at::kFloat));
    EXPECT_TRUE(at::equal(a.gamma, b.gamma) && at::equal(a.shaped, b.shaped)) << c10::toString(type);
  }
  const auto bq = convert<rhythm::bfloat16>(x.q), bk = convert<rhythm::bfloat16>(x.k);
  rtorch::credit_assigner coupled;
  expect_same_credit(coupled({.q = tensor_of(bq, {B, H, N, d}), .k = tensor_of(bk, {B, Hkv, N, d}),
                              .segments = x.segments_tensor(), .rewards = x.rewards_tensor(),
                              .group_ids = x.ids_tensor()}),
                     core_pipeline_qk(bq, bk, x, rhythm::shaping::coupled_rhythm{}));
}

TEST(TorchCredit, EveryBuiltInPolicyEqualsThePipeline) {
  const batch x(16);
  // Each built-in through shaping::any into the assigner, the built-in itself into the core.
  const auto check = [&](const auto& policy) {
    SCOPED_TRACE(rhythm::shaping::any(policy).name());
    rtorch::credit_assigner assign(policy, {}, 2);
    expect_same_credit(assign({.maps = x.maps_tensor(), .segments = x.segments_tensor(), .rewards = x.rewards_tensor(),
                               .group_ids = x.ids_tensor(), .entropies = x.entropies_tensor()}),
                       core_pipeline_maps(x.maps, x, policy, {}, true));
  };
  check(rhythm::shaping::uniform{});
  check(rhythm::shaping::local_chunk{.gamma_amp = 1.8});
  check(rhythm::shaping::global_anchor{});
  check(rhythm::shaping::coupled_rhythm{.gamma_amp = 1.3, .alpha = 0.25});
  check(rhythm::shaping::random{.q = 0.3, .seed = 5});
  check(rhythm::shaping::entropy{.selection = {.q = 0.2, .bottom = true}});
  // A policy parsed from its name, with its defaults.
  rtorch::credit_assigner parsed(rhythm::shaping::any::parse("global_anchor"));
  expect_same_credit(parsed({.maps = x.maps_tensor(), .segments = x.segments_tensor(), .rewards = x.rewards_tensor(),
                             .group_ids = x.ids_tensor()}),
                     core_pipeline_maps(x.maps, x, rhythm::shaping::global_anchor{}));
  EXPECT_TRUE(has_all(rhythm_error([] { rhythm::shaping::any::parse("coupled"); }, rhythm::errc::bad_parameter),
                      {"argument 'policy'", "coupled_rhythm, random or entropy", "got 'coupled'"}));
}

TEST(TorchCredit, MasksGiveTheSameResultAsSegments) {
  const batch x(15);
  ASSERT_TRUE(std::any_of(x.segs.begin(), x.segs.end(), [](const rhythm::segment& s) { return s.begin > 0; }))
      << "some rows are left-padded";
  const at::Tensor response = x.response_mask(), attention = x.attention_mask();
  EXPECT_EQ(rtorch::segments_from_masks(response, attention), x.segs);
  rtorch::credit_assigner assign;
  const auto from_segments = assign({.q = x.q_tensor(), .k = x.k_tensor(), .segments = x.segments_tensor(),
                                     .rewards = x.rewards_tensor(), .group_ids = x.ids_tensor()});
  const auto from_masks = assign({.q = x.q_tensor(), .k = x.k_tensor(), .response_mask = response,
                                  .attention_mask = attention, .rewards = x.rewards_tensor(),
                                  .group_ids = x.ids_tensor()});
  EXPECT_TRUE(at::equal(from_masks.gamma, from_segments.gamma));
  EXPECT_TRUE(at::equal(from_masks.shaped, from_segments.shaped));
  EXPECT_TRUE(at::equal(from_masks.diagnostics.flags, from_segments.diagnostics.flags));
  const auto want = core_pipeline_qk(x.q, x.k, x, rhythm::shaping::coupled_rhythm{});
  expect_same_credit(from_masks, want);
  // uint8 and bool masks the other way round, on the maps path.
  expect_same_credit(assign({.maps = x.maps_tensor(), .response_mask = response.to(at::kByte),
                             .attention_mask = attention.to(at::kBool), .rewards = x.rewards_tensor(),
                             .group_ids = x.ids_tensor()}),
                     core_pipeline_maps(x.maps, x, rhythm::shaping::coupled_rhythm{}));
  // CUDA inputs (where there is a device) give the same results, on the device.
  if (at::hasCUDA()) {
    const auto cuda = [](const at::Tensor& t) { return t.to(at::kCUDA); };
    const auto on_device = assign({.q = cuda(x.q_tensor()), .k = cuda(x.k_tensor()), .response_mask = cuda(response),
                                   .attention_mask = cuda(attention), .rewards = cuda(x.rewards_tensor()),
                                   .group_ids = cuda(x.ids_tensor())});
    EXPECT_TRUE(on_device.gamma.is_cuda());
    EXPECT_TRUE(on_device.diagnostics.anchor.is_cuda());
    EXPECT_TRUE(on_device.diagnostics.head_roles.is_cuda());
    rtorch::credit_result host{on_device.gamma.cpu(), on_device.shaped.cpu(), on_device.diagnostics};
    for (at::Tensor* t : {&host.diagnostics.response_tokens, &host.diagnostics.preplan, &host.diagnostics.anchor,
                          &host.diagnostics.dominated, &host.diagnostics.intro, &host.diagnostics.mean_gamma,
                          &host.diagnostics.amplified_share, &host.diagnostics.advantages, &host.diagnostics.flags,
                          &host.diagnostics.waad, &host.diagnostics.fai, &host.diagnostics.head_spans,
                          &host.diagnostics.head_roles})
      *t = t->cpu();
    expect_same_credit(host, want);
  }
}

TEST(TorchCredit, RejectsBothOrNeitherInputs) {
  const batch x(17);
  rtorch::credit_assigner assign;
  const at::Tensor q = x.q_tensor(), k = x.k_tensor(), maps = x.maps_tensor(), seg = x.segments_tensor();
  const at::Tensor r = x.rewards_tensor(), ids = x.ids_tensor();
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .maps = maps, .segments = seg, .rewards = r, .group_ids = ids});
                      }),
                      {"credit_assigner", "expected either q and k or maps", "got both q/k and maps"}));
  EXPECT_TRUE(has_all(torch_error([&] { assign({.segments = seg, .rewards = r, .group_ids = ids}); }),
                      {"credit_assigner", "expected either q and k or maps", "got neither"}));
  EXPECT_TRUE(has_all(torch_error([&] { assign({.q = q, .segments = seg, .rewards = r, .group_ids = ids}); }),
                      {"argument 'k'", "expected a defined tensor"}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .response_mask = x.response_mask(), .segments = seg, .rewards = r,
                                .group_ids = ids});
                      }),
                      {"credit_assigner", "expected either response_mask or segments", "got both"}));
  EXPECT_TRUE(has_all(torch_error([&] { assign({.q = q, .k = k, .rewards = r, .group_ids = ids}); }),
                      {"credit_assigner", "expected either response_mask or segments", "got neither"}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.maps = maps, .attention_mask = x.attention_mask(), .segments = seg, .rewards = r,
                                .group_ids = ids});
                      }),
                      {"credit_assigner", "attention_mask goes with response_mask, not with segments"}));
}

TEST(TorchCredit, RejectsBadRewardsGroupIdsEntropiesAndParams) {
  const batch x(14);
  const at::Tensor q = x.q_tensor(), k = x.k_tensor(), seg = x.segments_tensor();
  rtorch::credit_assigner assign;
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .segments = seg, .rewards = x.rewards_tensor().to(at::kDouble),
                                .group_ids = x.ids_tensor()});
                      }),
                      {"argument 'rewards'", "expected dtype Float", "got dtype Double"}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .segments = seg, .rewards = x.rewards_tensor(),
                                .group_ids = x.ids_tensor().to(at::kInt)});
                      }),
                      {"argument 'group_ids'", "expected dtype Long", "got dtype Int"}));
  rtorch::credit_assigner entropy(rhythm::shaping::entropy{});
  EXPECT_TRUE(has_all(torch_error([&] {
                        entropy({.q = q, .k = k, .segments = seg, .rewards = x.rewards_tensor(),
                                 .group_ids = x.ids_tensor(), .entropies = x.entropies_tensor().to(at::kDouble)});
                      }),
                      {"argument 'entropies'", "expected dtype float32, bfloat16 or float16", "got dtype Double"}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        entropy({.q = q, .k = k, .segments = seg, .rewards = x.rewards_tensor(),
                                 .group_ids = x.ids_tensor()});
                      }),
                      {"the entropy policy needs token entropies", "credit_batch.entropies"}));
  const at::Tensor mask = at::ones({batch::B, batch::N - 1}, at::kBool);
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .response_mask = mask, .rewards = x.rewards_tensor(),
                                .group_ids = x.ids_tensor()});
                      }),
                      {"argument 'response_mask'", "expected [B, N] = [6, ", "got sizes [6, "}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .response_mask = at::ones({batch::B, batch::N}, at::kBool),
                                .attention_mask = mask, .rewards = x.rewards_tensor(), .group_ids = x.ids_tensor()});
                      }),
                      {"argument 'attention_mask'", "expected [B, N]"}));
  EXPECT_TRUE(has_all(rhythm_error([&] {
                        assign({.q = q, .k = k, .segments = seg, .rewards = x.rewards_tensor().narrow(0, 0, 5),
                                .group_ids = x.ids_tensor()});
                      }, rhythm::errc::shape_mismatch),
                      {"argument 'rewards'", "[B] = [6]", "[5]"}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.q = q, .k = k, .segments = seg.to(at::kInt), .rewards = x.rewards_tensor(),
                                .group_ids = x.ids_tensor()});
                      }),
                      {"argument 'segments'", "expected dtype Long", "got dtype Int"}));
  rtorch::credit_assigner bad_alpha(rhythm::shaping::coupled_rhythm{.alpha = 2.0});
  EXPECT_TRUE(has_all(rhythm_error([&] {
                        bad_alpha({.maps = x.maps_tensor(), .segments = seg, .rewards = x.rewards_tensor(),
                                   .group_ids = x.ids_tensor()});
                      }, rhythm::errc::bad_parameter),
                      {"alpha"}));
  rtorch::credit_assigner bad_q(rhythm::shaping::coupled_rhythm{}, {.selection = {.q = 0.0}});
  EXPECT_TRUE(has_all(rhythm_error([&] {
                        bad_q({.maps = x.maps_tensor(), .segments = seg, .rewards = x.rewards_tensor(),
                               .group_ids = x.ids_tensor()});
                      }, rhythm::errc::bad_parameter),
                      {"params.selection.q"}));
  rtorch::credit_assigner bad_threads(rhythm::shaping::coupled_rhythm{}, {}, -1);
  EXPECT_TRUE(has_all(torch_error([&] {
                        bad_threads({.maps = x.maps_tensor(), .segments = seg, .rewards = x.rewards_tensor(),
                                     .group_ids = x.ids_tensor()});
                      }),
                      {"argument 'threads'", "expected >= 0", "got -1"}));
}

// ---------------------------------------------------------------------------------------------
// segments_from_masks

// [rows, N] int64 tensor of 0/1 rows.
at::Tensor mask_of(const std::vector<std::vector<std::int64_t>>& rows) {
  std::vector<std::int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return tensor_of(flat, {i64(rows.size()), i64(rows[0].size())});
}

TEST(TorchMasks, SegmentsFromMasksWithLeftAndRightPadding) {
  // Row 0: two pad tokens left, prompt 2..4, response 5..8, one pad right. Row 1: no padding,
  // response 4..9. Row 2: real tokens 1..6, no response.
  const at::Tensor response = mask_of({{0, 0, 0, 0, 0, 1, 1, 1, 1, 0},
                                       {0, 0, 0, 0, 1, 1, 1, 1, 1, 1},
                                       {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}});
  const at::Tensor attention = mask_of({{0, 0, 1, 1, 1, 1, 1, 1, 1, 0},
                                        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                                        {0, 1, 1, 1, 1, 1, 1, 0, 0, 0}});
  const std::vector<rhythm::segment> want{{2, 5, 9}, {0, 4, 10}, {1, 7, 7}};
  EXPECT_EQ(rtorch::segments_from_masks(response, attention), want);
  EXPECT_EQ(rtorch::segments_from_masks(response.to(at::kBool), attention.to(at::kByte)), want);
  EXPECT_EQ(rtorch::segments_from_masks(response.to(at::kInt), attention.to(at::kBool)), want);
  // Strided masks: the rows of a transposed copy.
  EXPECT_EQ(rtorch::segments_from_masks(response.t().contiguous().t(), attention.t().contiguous().t()), want);
  // Without an attention mask every row starts at 0 and a row without a response ends at N.
  const std::vector<rhythm::segment> from_zero{{0, 5, 9}, {0, 4, 10}, {0, 10, 10}};
  EXPECT_EQ(rtorch::segments_from_masks(response), from_zero);
  EXPECT_EQ(rtorch::segments_from_masks(response.to(at::kBool)), from_zero);
}

TEST(TorchMasks, RejectsTwoRunsBadDtypesShapesAndPadding) {
  const at::Tensor good = mask_of({{0, 0, 1, 1, 1, 0}, {0, 1, 1, 1, 1, 1}});
  const at::Tensor two_runs = mask_of({{0, 0, 1, 1, 1, 0}, {0, 1, 1, 0, 1, 1}});
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::segments_from_masks(two_runs); }, rhythm::errc::bad_segment),
                      {"argument 'response_mask'", "one contiguous run of response positions per row",
                       "row 1 at position 4"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::segments_from_masks(good.to(at::kFloat)); }),
                      {"argument 'response_mask'", "expected a bool or integer mask", "got dtype Float"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::segments_from_masks(good, at::ones({2, 6}, at::kHalf)); }),
                      {"argument 'attention_mask'", "expected a bool or integer mask", "got dtype Half"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::segments_from_masks(good[0]); }),
                      {"argument 'response_mask'", "expected rank 2", "got rank 1"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::segments_from_masks(at::Tensor()); }),
                      {"argument 'response_mask'", "expected a defined tensor"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::segments_from_masks(good, at::ones({2, 5}, at::kLong)); }),
                      {"argument 'attention_mask'", "expected the sizes of response_mask [2, 6]", "got sizes [2, 5]"}));
  // A padding token inside [begin, end), and a response that starts before the first real token.
  const at::Tensor hole = mask_of({{1, 1, 1, 1, 0, 1}, {1, 1, 1, 1, 1, 1}});
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::segments_from_masks(good, hole); }, rhythm::errc::bad_segment),
                      {"argument 'attention_mask'", "real tokens from the first real token to the end of the response",
                       "row 0 at position 4"}));
  const at::Tensor late = mask_of({{0, 0, 0, 1, 1, 1}, {0, 1, 1, 1, 1, 1}});
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::segments_from_masks(good, late); }, rhythm::errc::bad_segment),
                      {"argument 'attention_mask'", "real tokens at every response position", "row 0 at position 2"}));
  // The assigner rejects them the same way.
  const batch x(18);
  const auto b = std::find_if(x.segs.begin(), x.segs.end(), [](const rhythm::segment& s) {
                   return s.response_begin - s.begin >= 2;
                 }) - x.segs.begin();
  ASSERT_LT(b, batch::B) << "a row with a prompt of two tokens or more";
  at::Tensor split = x.response_mask();
  split[b][x.segs[b].begin] = true;  // a second run: the row's first real token
  const std::string where = "row " + std::to_string(b) + " at position " + std::to_string(x.segs[b].response_begin);
  rtorch::credit_assigner assign;
  EXPECT_TRUE(has_all(rhythm_error([&] {
                        assign({.maps = x.maps_tensor(), .response_mask = split, .attention_mask = x.attention_mask(),
                                .rewards = x.rewards_tensor(), .group_ids = x.ids_tensor()});
                      }, rhythm::errc::bad_segment),
                      {"argument 'response_mask'", "one contiguous run", where.c_str()}));
  EXPECT_TRUE(has_all(torch_error([&] {
                        assign({.maps = x.maps_tensor(), .response_mask = x.response_mask().to(at::kFloat),
                                .rewards = x.rewards_tensor(), .group_ids = x.ids_tensor()});
                      }),
                      {"argument 'response_mask'", "expected a bool or integer mask", "got dtype Float"}));
}

// ---------------------------------------------------------------------------------------------
// PPO-clip loss

// A batch of log-probabilities and shaped advantages; NaN outside the responses; sequence 1 empty.
struct ppo_data {
  i64 B, N;
  std::vector<rhythm::segment> segs;
  std::vector<float> lp_new, lp_old, adv;
  ppo_data(unsigned seed, i64 b, i64 n, double drift) : B(b), N(n), lp_new(b * n, kNaN), lp_old(b * n, kNaN), adv(b * n, kNaN) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> old(-5.0f, -0.05f);
    std::normal_distribution<float> step(0.0f, float(drift)), a(0.0f, 1.5f);
    std::bernoulli_distribution zero(0.1);
    for (i64 s = 0; s < B; ++s) {
      segs.push_back(s == 1 ? rhythm::segment{3, 9, 9} : random_segment(rng, N));
      for (i64 t = segs[s].response_begin; t < segs[s].end; ++t) {
        const float o = old(rng);
        lp_old[s * N + t] = o;
        lp_new[s * N + t] = o + step(rng);
        adv[s * N + t] = zero(rng) ? 0.0f : a(rng);
      }
    }
  }
  at::Tensor mask() const {
    at::Tensor m = at::zeros({B, N}, at::kBool);
    for (i64 s = 0; s < B; ++s) m[s].slice(0, segs[s].response_begin, segs[s].end).fill_(true);
    return m;
  }
  template <class T = float>
  rhythm::ppo_result core(const rhythm::ppo_params& p) const {
    const auto n = convert<T>(lp_new), o = convert<T>(lp_old);
    return rhythm::ppo_clip_objective(rhythm::exec::seq{}, make_view(n, std::array<i64, 2>{B, N}),
                                      make_view(o, std::array<i64, 2>{B, N}), make_view(adv, std::array<i64, 2>{B, N}),
                                      make_view(segs), p);
  }
};

constexpr rhythm::ppo_aggregation kAggregations[] = {rhythm::ppo_aggregation::seq_mean_token_mean,
                                                     rhythm::ppo_aggregation::token_mean};

TEST(TorchPpo, LossEqualsTheReferenceObjective) {
  for (double drift : {0.3, 2.0})
    for (auto agg : kAggregations)
      for (auto [eps, eps_high] : {std::pair{0.2, 0.2}, std::pair{0.1, 0.28}, std::pair{0.0, 0.0}}) {
        SCOPED_TRACE(::testing::Message() << "drift " << drift << " aggregation " << int(agg) << " eps " << eps << "/" << eps_high);
        const ppo_data x(21, 9, 40, drift);
        const rhythm::ppo_params p{.epsilon = eps, .epsilon_high = eps_high, .aggregation = agg};
        const auto want = x.core(p);
        const at::Tensor lp_new = tensor_of(x.lp_new, {x.B, x.N}).requires_grad_();
        const at::Tensor lp_old = tensor_of(x.lp_old, {x.B, x.N}), adv = tensor_of(x.adv, {x.B, x.N});
        const auto got = rtorch::ppo_clip_loss(lp_new, lp_old, adv, rtorch::segments_tensor(x.segs), p);
        ASSERT_EQ(got.loss.dim(), 0);
        EXPECT_TRUE(got.loss.requires_grad());
        EXPECT_EQ(got.loss.scalar_type(), at::kFloat);
        EXPECT_TRUE(close(got.loss.item<double>(), want.loss, 1e-6)) << got.loss.item<double>() << " vs " << want.loss;
        EXPECT_EQ(got.clip_fraction, want.clip_fraction);
        EXPECT_TRUE(close(got.mean_ratio, want.mean_ratio, 1e-6));
        EXPECT_EQ(got.tokens, want.tokens);
        if (eps == 0.2) {
          EXPECT_GT(got.clip_fraction, 0.0);
        }
        // The same response positions as a vector of segments, a bool mask and a uint8 mask: the same loss.
        const at::Tensor mask = x.mask();
        for (const auto& other : {rtorch::ppo_clip_loss(lp_new, lp_old, adv, x.segs, p),
                                  rtorch::ppo_clip_loss(lp_new, lp_old, adv, mask, p),
                                  rtorch::ppo_clip_loss(lp_new, lp_old, adv, mask.to(at::kByte), p)}) {
          EXPECT_TRUE(at::equal(other.loss, got.loss));
          EXPECT_EQ(other.clip_fraction, got.clip_fraction);
          EXPECT_EQ(other.mean_ratio, got.mean_ratio);
        }
      }
}

TEST(TorchPpo, Bf16LogProbabilitiesMatchTheCore) {
  const ppo_data x(22, 7, 30, 0.5);
  const auto n = convert<rhythm::bfloat16>(x.lp_new), o = convert<rhythm::bfloat16>(x.lp_old);
  for (auto agg : kAggregations) {
    const auto want = x.core<rhythm::bfloat16>({.aggregation = agg});
    const at::Tensor lp_new = tensor_of(n, {x.B, x.N}).requires_grad_();
    const auto got = rtorch::ppo_clip_loss(lp_new, tensor_of(o, {x.B, x.N}), tensor_of(x.adv, {x.B, x.N}), x.segs,
                                           {.aggregation = agg});
    EXPECT_EQ(got.loss.scalar_type(), at::kFloat);
    EXPECT_TRUE(close(got.loss.item<double>(), want.loss, 1e-6));
    EXPECT_EQ(got.clip_fraction, want.clip_fraction);
    got.loss.backward();
    EXPECT_EQ(lp_new.grad().scalar_type(), at::kBFloat16);
    EXPECT_GT(lp_new.grad().abs().sum().item<float>(), 0.0f);
  }
}

// dJ/dlogp_new_t = A rho_t / (count_b * sequences) (seq-mean) or A rho_t / tokens (token-mean)
// where the token is not clipped, else 0; loss = -J. Exact formula in double.
at::Tensor analytic_gradient(const ppo_data& x, const at::Tensor& lp_new, const at::Tensor& lp_old,
                             const at::Tensor& adv, const rhythm::ppo_params& p) {
  at::Tensor g = at::zeros({x.B, x.N}, at::kDouble);
  i64 tokens = 0, sequences = 0;
  for (const auto& s : x.segs) tokens += s.response_length(), sequences += s.response_length() > 0;
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) {
      const double rho = std::exp(lp_new[b][t].item<double>() - lp_old[b][t].item<double>());
      const double a = adv[b][t].item<double>();
      const bool clipped = (a > 0 && rho > 1 + p.epsilon_high) || (a < 0 && rho < 1 - p.epsilon);
      const double w = p.aggregation == rhythm::ppo_aggregation::token_mean
                           ? 1.0 / double(tokens)
                           : 1.0 / (double(x.segs[b].response_length()) * double(sequences));
      g[b][t] = clipped ? 0.0 : -a * rho * w;
    }
  return g;
}

TEST(TorchPpo, GradientMatchesFiniteDifferencesInDouble) {
  ppo_data x(23, 5, 16, 0.4);
  // Keep every ratio at least 1e-3 away from the clip bounds, where the loss has kinks.
  for (i64 i = 0; i < x.B * x.N; ++i) {
    if (std::isnan(x.lp_new[i])) continue;
    const double rho = std::exp(double(x.lp_new[i]) - double(x.lp_old[i]));
    if (std::abs(rho - 1.2) < 1e-3 || std::abs(rho - 0.8) < 1e-3) x.lp_new[i] += 0.01f;
  }
  const at::Tensor lp_old = tensor_of(x.lp_old, {x.B, x.N}).to(at::kDouble);
  const at::Tensor adv = tensor_of(x.adv, {x.B, x.N}).to(at::kDouble);
  for (auto agg : kAggregations) {
    SCOPED_TRACE(int(agg));
    const rhythm::ppo_params p{.aggregation = agg};
    const at::Tensor lp_new = tensor_of(x.lp_new, {x.B, x.N}).to(at::kDouble).requires_grad_();
    const auto r = rtorch::ppo_clip_loss(lp_new, lp_old, adv, x.segs, p);
    EXPECT_EQ(r.loss.scalar_type(), at::kDouble);
    r.loss.backward();
    const at::Tensor grad = lp_new.grad();
    EXPECT_TRUE(at::allclose(grad, analytic_gradient(x, lp_new.detach(), lp_old, adv, p), 1e-12, 1e-15));
    const double h = 1e-6;
    i64 checked = 0;
    for (i64 b = 0; b < x.B; ++b)
      for (i64 t = 0; t < x.N; ++t) {
        if (!x.segs[b].in_response(t)) {
          EXPECT_EQ(grad[b][t].item<double>(), 0.0) << "outside the responses, even next to NaN";
          continue;
        }
        auto loss_at = [&](double delta) {
          at::Tensor moved = lp_new.detach().clone();
          moved[b][t] += delta;
          return rtorch::ppo_clip_loss(moved, lp_old, adv, x.segs, p).loss.item<double>();
        };
        const double fd = (loss_at(h) - loss_at(-h)) / (2 * h);
        EXPECT_NEAR(grad[b][t].item<double>(), fd, 1e-8) << b << " " << t;
        ++checked;
      }
    EXPECT_GT(checked, 20);
  }
}

TEST(TorchPpo, FloatGradientMatchesTheDoubleGradient) {
  const ppo_data x(24, 8, 40, 0.5);
  const at::Tensor lp_old = tensor_of(x.lp_old, {x.B, x.N}), adv = tensor_of(x.adv, {x.B, x.N});
  for (auto agg : kAggregations) {
    const at::Tensor f = tensor_of(x.lp_new, {x.B, x.N}).requires_grad_();
    const at::Tensor d = tensor_of(x.lp_new, {x.B, x.N}).to(at::kDouble).requires_grad_();
    rtorch::ppo_clip_loss(f, lp_old, adv, x.segs, {.aggregation = agg}).loss.backward();
    rtorch::ppo_clip_loss(d, lp_old.to(at::kDouble), adv.to(at::kDouble), x.segs, {.aggregation = agg}).loss.backward();
    EXPECT_TRUE(at::allclose(f.grad().to(at::kDouble), d.grad(), 1e-3, 1e-6));
    EXPECT_TRUE(at::allclose(f.grad().to(at::kDouble), d.grad(), 1e-5, 1e-8)) << "float is in fact much closer";
  }
}

TEST(TorchPpo, GradientIsZeroWhereClippedAndOutsideResponses) {
  // One sequence, positions 2..7 the response: A > 0 above 1 + eps_high, A < 0 below 1 - eps (clipped);
  // A > 0 below it, A < 0 above 1 - eps, A == 0 (not clipped, but A == 0 gives a zero gradient too).
  const std::vector<rhythm::segment> segs{{0, 2, 8}};
  const std::vector<double> log_ratio{0, 0, std::log(1.5), std::log(0.5), std::log(1.1), std::log(0.9), std::log(2.0), 0.3, 0, 0};
  const std::vector<double> a{kNaN, kNaN, 1.0, -1.0, 1.0, -1.0, 0.0, -2.0, kNaN, kNaN};
  const at::Tensor lp_old = at::full({1, 10}, -1.0, at::kDouble);
  at::Tensor lp_new = (lp_old + at::tensor(log_ratio, at::kDouble).reshape({1, 10})).detach();
  lp_new[0][0] = kNaN;  // padding may hold anything
  lp_new[0][9] = -std::numeric_limits<double>::infinity();
  lp_new.requires_grad_();
  const at::Tensor adv = at::tensor(a, at::kDouble).reshape({1, 10});
  const auto r = rtorch::ppo_clip_loss(lp_new, lp_old, adv, segs, {.epsilon = 0.2, .epsilon_high = 0.2});
  ASSERT_TRUE(std::isfinite(r.loss.item<double>()));
  r.loss.backward();
  const at::Tensor g = lp_new.grad();
  EXPECT_EQ(g[0][2].item<double>(), 0.0) << "A > 0, rho > 1 + eps_high: clipped";
  EXPECT_EQ(g[0][3].item<double>(), 0.0) << "A < 0, rho < 1 - eps: clipped";
  EXPECT_NEAR(g[0][4].item<double>(), -1.0 * 1.1 / 6, 1e-12);
  EXPECT_NEAR(g[0][5].item<double>(), 1.0 * 0.9 / 6, 1e-12);
  EXPECT_EQ(g[0][6].item<double>(), 0.0) << "A == 0";
  EXPECT_NEAR(g[0][7].item<double>(), 2.0 * std::exp(0.3) / 6, 1e-12) << "A < 0, rho > 1: not clipped";
  for (int t : {0, 1, 8, 9}) EXPECT_EQ(g[0][t].item<double>(), 0.0) << t;
  EXPECT_DOUBLE_EQ(r.clip_fraction, 2.0 / 6.0);
  EXPECT_NEAR(r.mean_ratio, (1.5 + 0.5 + 1.1 + 0.9 + 2.0 + std::exp(0.3)) / 6, 1e-12);
  EXPECT_NEAR(r.loss.item<double>(), -(1.2 - 0.8 + 1.1 - 0.9 + 0.0 - 2.0 * std::exp(0.3)) / 6, 1e-12);
}

TEST(TorchPpo, BatchWithoutResponsesGivesZeroLossAndZeroGradients) {
  const std::vector<rhythm::segment> segs{{0, 4, 4}, {1, 3, 3}};
  const at::Tensor lp_new = at::full({2, 4}, kNaN).requires_grad_();
  for (auto agg : kAggregations) {
    const auto r = rtorch::ppo_clip_loss(lp_new, at::zeros({2, 4}), at::zeros({2, 4}), segs, {.aggregation = agg});
    EXPECT_EQ(r.loss.item<double>(), 0.0);
    EXPECT_EQ(r.tokens, 0);
    EXPECT_EQ(r.clip_fraction, 0.0);
    EXPECT_EQ(r.mean_ratio, 0.0);
    ASSERT_TRUE(r.loss.requires_grad());
    r.loss.backward();
    EXPECT_TRUE(at::equal(lp_new.grad(), at::zeros({2, 4})));
  }
}

TEST(TorchPpo, RejectsBadInputs) {
  const at::Tensor x = at::zeros({2, 4});
  const std::vector<rhythm::segment> segs{{0, 1, 4}, {0, 2, 4}};
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::ppo_clip_loss(x, at::zeros({2, 5}), x, segs); }),
                      {"argument 'logp_old'", "expected the sizes of logp_new [2, 4]", "got sizes [2, 5]"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::ppo_clip_loss(x.to(at::kLong), x, x, segs); }),
                      {"argument 'logp_new'", "expected a floating dtype", "got dtype Long"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::ppo_clip_loss(x, x, x[0], segs); }),
                      {"argument 'shaped_adv'", "expected rank 2: [B, N]", "got rank 1"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::ppo_clip_loss(x, x, x, at::ones({2, 3}, at::kBool)); }),
                      {"argument 'response'", "expected a mask of the sizes of logp_new [2, 4]", "got sizes [2, 3]"}));
  EXPECT_TRUE(has_all(torch_error([&] { rtorch::ppo_clip_loss(x, x, x, at::ones({2, 4})); }),
                      {"argument 'response'", "bool or uint8 mask [B, N], or an int64 tensor of segments [B, 3]",
                       "got dtype Float"}));
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::ppo_clip_loss(x, x, x, segs, {.epsilon = 1.5}); },
                                   rhythm::errc::bad_parameter),
                      {"params.epsilon", "[0, 1]"}));
  EXPECT_TRUE(has_all(rhythm_error([&] { rtorch::ppo_clip_loss(x, x, x, std::vector<rhythm::segment>{{0, 1, 5}, {0, 0, 0}}); },
                                   rhythm::errc::bad_segment),
                      {"segments[0]"}));
}

}  // namespace
