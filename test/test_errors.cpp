// One test per rejected input: the code, a message naming argument, expectation and what was given,
// and outputs left untouched. Metadata errors (extents, strides, parameters, overlap) are the same
// for every backend and run here on the host; value errors are the typed suite of
// suites/value_errors.hpp, instantiated here for the host backends.
#include "suites/value_errors.hpp"

namespace value_errors_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Host, ValueErrors, rt::host_policies);
}  // namespace value_errors_suite

namespace {
using namespace rt;

// A valid small problem; each test breaks one thing.
struct problem {
  static constexpr i64 B = 2, H = 4, Hkv = 2, N = 24, d = 8;
  std::vector<rhythm::segment> segs{{0, 6, 24}, {3, 10, 20}};
  std::vector<float> maps, q, k;
  head_outputs<rhythm::exec::seq> out{B, H, N};
  problem() {
    std::mt19937 rng(1);
    maps = random_maps(rng, B, H, N, segs).data;
    q = random_floats(rng, B * H * N * d);
    k = random_floats(rng, B * Hkv * N * d);
  }
  auto maps_view() { return rhythm::make_view(maps, B, H, N, N); }
  auto q_view() { return rhythm::make_view(q, B, H, N, d); }
  auto k_view() { return rhythm::make_view(k, B, Hkv, N, d); }
  void run_maps(const rhythm::signal_params& p = {}) {
    rhythm::head_signals_from_maps(rhythm::exec::par{2}, maps_view(), rhythm::make_view(segs), out.span,
                                   out.waad, out.fai, p);
  }
  void run_qk(const rhythm::signal_params& p = {}) {
    rhythm::head_signals_from_qk(rhythm::exec::par{2}, q_view(), k_view(), rhythm::make_view(segs), out.span,
                                 out.waad, out.fai, p);
  }
  bool untouched() const {
    const auto o = out.host();
    for (const auto* v : {&o.span, &o.waad, &o.fai})
      for (float x : *v)
        if (x != -7.0f) return false;
    return true;
  }
};

TEST(Errors, SegmentCountMismatch) {
  problem p;
  p.segs.pop_back();
  expect_error([&] { p.run_maps(); }, rhythm::errc::shape_mismatch, {"'segments'", "1 segments for a batch of 2"});
}

TEST(Errors, MapsNotSquare) {
  problem p;
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, rhythm::make_view(p.maps, 2, 4, 48, 12),
                                       rhythm::make_view(p.segs), p.out.span, p.out.waad,
                                       p.out.fai);
      },
      rhythm::errc::shape_mismatch, {"'maps'", "[2, 4, 48, 12]"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, KeyHeadsNotADivisor) {
  problem p;
  std::vector<float> k3(2 * 3 * 24 * 8, 0.0f);
  expect_error(
      [&] {
        rhythm::head_signals_from_qk(rhythm::exec::seq{}, p.q_view(), rhythm::make_view(k3, 2, 3, 24, 8),
                                     rhythm::make_view(p.segs), p.out.span, p.out.waad, p.out.fai);
      },
      rhythm::errc::shape_mismatch, {"'k'", "a divisor of 4", "[2, 3, 24, 8]"});
}

TEST(Errors, KeyDimMismatch) {
  problem p;
  expect_error(
      [&] {
        rhythm::head_signals_from_qk(rhythm::exec::seq{}, p.q_view(), rhythm::make_view(p.k, 2, 2, 12, 16),
                                     rhythm::make_view(p.segs), p.out.span, p.out.waad, p.out.fai);
      },
      rhythm::errc::shape_mismatch, {"'k'", "[2, 2, 12, 16]"});
}

TEST(Errors, OutputShapeMismatch) {
  problem p;
  std::vector<float> small(2 * 4 * 23);
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, p.maps_view(), rhythm::make_view(p.segs), p.out.span,
                                       rhythm::make_view(small, 2, 4, 23), p.out.fai);
      },
      rhythm::errc::shape_mismatch, {"'waad'", "[B, H, N] = [2, 4, 24]", "[2, 4, 23]"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, OutputsOverlap) {
  problem p;
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, p.maps_view(), rhythm::make_view(p.segs), p.out.span,
                                       p.out.waad, p.out.waad);
      },
      rhythm::errc::aliasing, {"overlapping"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, OutputWithZeroStride) {
  problem p;
  rhythm::view<float, 2> broadcast(p.out.span.data_handle(), {2, 4}, {0, 1});
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, p.maps_view(), rhythm::make_view(p.segs), broadcast,
                                       p.out.waad, p.out.fai);
      },
      rhythm::errc::bad_stride, {"'span'", "non-zero strides"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, WindowBelowOne) {
  problem p;
  expect_error([&] { p.run_maps({.window = 0}); }, rhythm::errc::bad_parameter, {"'params.window'", ">= 1", "got 0"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, HorizonLoAboveHi) {
  problem p;
  expect_error([&] { p.run_qk({.horizon = {.lo = 20, .hi = 5}}); }, rhythm::errc::bad_parameter,
               {"'params.horizon.hi'", ">= params.horizon.lo = 20", "got 5"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, NegativeHorizonLo) {
  problem p;
  expect_error([&] { p.run_maps({.horizon = {.lo = -1}}); }, rhythm::errc::bad_parameter, {"'params.horizon.lo'", "got -1"});
}

TEST(Errors, NegativeScale) {
  problem p;
  expect_error([&] { p.run_qk({.scale = -1.0f}); }, rhythm::errc::bad_parameter, {"'params.scale'"});
}

TEST(Errors, GroupFractionOutOfRange) {
  std::vector<float> spans(4, 1.0f);
  std::vector<rhythm::head_role> roles(4, rhythm::head_role{9});
  expect_error(
      [&] {
        rhythm::head_groups(rhythm::exec::seq{}, rhythm::make_view(spans, 1, 4),
                            rhythm::make_view(roles, 1, 4), {.fraction = 0.0});
      },
      rhythm::errc::bad_parameter, {"'params.fraction'", "(0, 1]"});
  EXPECT_EQ(roles, std::vector<rhythm::head_role>(4, rhythm::head_role{9}));
}

TEST(Errors, LayerSelection) {
  expect_error([] { rhythm::middle_third_layers(0); }, rhythm::errc::bad_parameter, {"'layers'", "got 0"});
  expect_error([] { rhythm::middle_third_layers(12, 0); }, rhythm::errc::bad_parameter, {"'count'"});
}

}  // namespace
