// One test per rejected input: the code, a message naming argument, expectation and what was given,
// and outputs left untouched.
#include "test_util.hpp"

namespace {
using namespace rt;


// A valid small problem; each test breaks one thing.
struct problem {
  static constexpr i64 B = 2, H = 4, Hkv = 2, N = 24, d = 8;
  std::vector<rhythm::segment> segs{{0, 6, 24}, {3, 10, 20}};
  std::vector<float> maps, q, k;
  head_outputs out{B, H, N};
  problem() {
    std::mt19937 rng(1);
    maps = random_maps(rng, B, H, N, segs).data;
    q = random_floats(rng, B * H * N * d);
    k = random_floats(rng, B * Hkv * N * d);
  }
  auto maps_view() { return rhythm::make_view(maps, std::array<i64, 4>{B, H, N, N}); }
  auto q_view() { return rhythm::make_view(q, std::array<i64, 4>{B, H, N, d}); }
  auto k_view() { return rhythm::make_view(k, std::array<i64, 4>{B, Hkv, N, d}); }
  void run_maps(const rhythm::signal_params& p = {}) {
    rhythm::head_signals_from_maps(rhythm::exec::par{2}, maps_view(), rhythm::make_view(segs), out.span_view(),
                                   out.waad_view(), out.fai_view(), p);
  }
  void run_qk(const rhythm::signal_params& p = {}) {
    rhythm::head_signals_from_qk(rhythm::exec::par{2}, q_view(), k_view(), rhythm::make_view(segs), out.span_view(),
                                 out.waad_view(), out.fai_view(), p);
  }
  bool untouched() const {
    for (float x : out.span) if (x != -7.0f) return false;
    for (float x : out.waad) if (x != -7.0f) return false;
    for (float x : out.fai) if (x != -7.0f) return false;
    return true;
  }
};

TEST(Errors, ValidProblemPasses) {
  problem p;
  p.run_maps();
  EXPECT_FALSE(p.untouched());
  problem p2;
  p2.run_qk();
  EXPECT_FALSE(p2.untouched());
}

TEST(Errors, NaNInMaps) {
  problem p;
  p.maps[((1 * 4 + 2) * 24 + 15) * 24 + 7] = std::nanf("");  // sequence 1, head 2, row 15
  expect_error([&] { p.run_maps(); }, rhythm::errc::non_finite,
               {"'maps'", "finite", "sequence 1, head 2, row 15"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, InfInMaps) {
  problem p;
  p.maps[((0 * 4 + 0) * 24 + 6) * 24 + 0] = INFINITY;
  expect_error([&] { p.run_maps(); }, rhythm::errc::non_finite, {"'maps'", "sequence 0, head 0, row 6"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, NaNInQ) {
  problem p;
  p.q[((1 * 4 + 3) * 24 + 12) * 8 + 2] = std::nanf("");
  expect_error([&] { p.run_qk(); }, rhythm::errc::non_finite, {"'q'", "finite", "sequence 1, head 3"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, InfInK) {
  problem p;
  p.k[((0 * 2 + 1) * 24 + 3) * 8 + 0] = -INFINITY;  // kv head 1 is read by query heads 2 and 3
  expect_error([&] { p.run_qk(); }, rhythm::errc::non_finite, {"'k'", "finite", "sequence 0, head 2"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, NonFiniteInPaddingIsNotRead) {
  problem p;
  p.q[((1 * 4 + 0) * 24 + 22) * 8] = std::nanf("");  // sequence 1 ends at 20
  p.k[((1 * 2 + 0) * 24 + 1) * 8] = INFINITY;        // and begins at 3
  EXPECT_NO_THROW(p.run_qk());
}

TEST(Errors, CheckFiniteOffSkipsTheCheck) {
  problem p;
  p.maps[((0 * 4 + 0) * 24 + 6) * 24 + 0] = INFINITY;
  EXPECT_NO_THROW(p.run_maps({.check_finite = false}));
}

TEST(Errors, SegmentOutOfOrder) {
  problem p;
  p.segs[1] = {5, 4, 20};
  expect_error([&] { p.run_maps(); }, rhythm::errc::bad_segment,
               {"'segments[1]'", "begin <= response_begin <= end <= N = 24", "{5, 4, 20}"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, SegmentPastTheSequence) {
  problem p;
  p.segs[0] = {0, 6, 25};
  expect_error([&] { p.run_qk(); }, rhythm::errc::bad_segment, {"'segments[0]'", "{0, 6, 25}"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, SegmentCountMismatch) {
  problem p;
  p.segs.pop_back();
  expect_error([&] { p.run_maps(); }, rhythm::errc::shape_mismatch, {"'segments'", "1 segments for a batch of 2"});
}

TEST(Errors, MapsNotSquare) {
  problem p;
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, rhythm::make_view(p.maps, std::array<i64, 4>{2, 4, 48, 12}),
                                       rhythm::make_view(p.segs), p.out.span_view(), p.out.waad_view(),
                                       p.out.fai_view());
      },
      rhythm::errc::shape_mismatch, {"'maps'", "[2, 4, 48, 12]"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, KeyHeadsNotADivisor) {
  problem p;
  std::vector<float> k3(2 * 3 * 24 * 8, 0.0f);
  expect_error(
      [&] {
        rhythm::head_signals_from_qk(rhythm::exec::seq{}, p.q_view(), rhythm::make_view(k3, std::array<i64, 4>{2, 3, 24, 8}),
                                     rhythm::make_view(p.segs), p.out.span_view(), p.out.waad_view(), p.out.fai_view());
      },
      rhythm::errc::shape_mismatch, {"'k'", "a divisor of 4", "[2, 3, 24, 8]"});
}

TEST(Errors, KeyDimMismatch) {
  problem p;
  expect_error(
      [&] {
        rhythm::head_signals_from_qk(rhythm::exec::seq{}, p.q_view(), rhythm::make_view(p.k, std::array<i64, 4>{2, 2, 12, 16}),
                                     rhythm::make_view(p.segs), p.out.span_view(), p.out.waad_view(), p.out.fai_view());
      },
      rhythm::errc::shape_mismatch, {"'k'", "[2, 2, 12, 16]"});
}

TEST(Errors, OutputShapeMismatch) {
  problem p;
  std::vector<float> small(2 * 4 * 23);
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, p.maps_view(), rhythm::make_view(p.segs), p.out.span_view(),
                                       rhythm::make_view(small, std::array<i64, 3>{2, 4, 23}), p.out.fai_view());
      },
      rhythm::errc::shape_mismatch, {"'waad'", "[B, H, N] = [2, 4, 24]", "[2, 4, 23]"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, OutputsOverlap) {
  problem p;
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, p.maps_view(), rhythm::make_view(p.segs), p.out.span_view(),
                                       p.out.waad_view(), p.out.waad_view());
      },
      rhythm::errc::aliasing, {"overlapping"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, OutputWithZeroStride) {
  problem p;
  rhythm::view<float, 2> broadcast(p.out.span.data(), {2, 4}, {0, 1});
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, p.maps_view(), rhythm::make_view(p.segs), broadcast,
                                       p.out.waad_view(), p.out.fai_view());
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
  expect_error([&] { p.run_qk({.horizon_lo = 20, .horizon_hi = 5}); }, rhythm::errc::bad_parameter,
               {"'params.horizon_hi'", ">= params.horizon_lo = 20", "got 5"});
  EXPECT_TRUE(p.untouched());
}

TEST(Errors, NegativeHorizonLo) {
  problem p;
  expect_error([&] { p.run_maps({.horizon_lo = -1}); }, rhythm::errc::bad_parameter, {"'params.horizon_lo'", "got -1"});
}

TEST(Errors, NegativeScale) {
  problem p;
  expect_error([&] { p.run_qk({.scale = -1.0f}); }, rhythm::errc::bad_parameter, {"'params.scale'"});
}

TEST(Errors, GroupFractionOutOfRange) {
  std::vector<float> spans(4, 1.0f);
  std::vector<std::uint8_t> roles(4, 9);
  expect_error(
      [&] {
        rhythm::head_groups(rhythm::exec::seq{}, rhythm::make_view(spans, std::array<i64, 2>{1, 4}),
                            rhythm::make_view(roles, std::array<i64, 2>{1, 4}), {.fraction = 0.0});
      },
      rhythm::errc::bad_parameter, {"'params.fraction'", "(0, 1]"});
  EXPECT_EQ(roles, std::vector<std::uint8_t>(4, 9));
}

TEST(Errors, NaNSpan) {
  std::vector<float> spans{1.0f, std::nanf(""), 2.0f};
  std::vector<std::uint8_t> roles(3, 9);
  expect_error(
      [&] {
        rhythm::head_groups(rhythm::exec::seq{}, rhythm::make_view(spans, std::array<i64, 2>{1, 3}),
                            rhythm::make_view(roles, std::array<i64, 2>{1, 3}));
      },
      rhythm::errc::non_finite, {"'spans'", "head 1"});
  EXPECT_EQ(roles, std::vector<std::uint8_t>(3, 9));
}

TEST(Errors, EmptyGroupInGroupMean) {
  std::vector<float> per_head(2 * 5, 1.0f), out(5, -7.0f);
  std::vector<std::uint8_t> roles{rhythm::head_role::local, rhythm::head_role::local};
  expect_error(
      [&] {
        rhythm::group_mean(rhythm::exec::seq{}, rhythm::make_view(per_head, std::array<i64, 3>{1, 2, 5}),
                           rhythm::make_view(roles), rhythm::head_role::global,
                           rhythm::make_view(out, std::array<i64, 2>{1, 5}));
      },
      rhythm::errc::bad_parameter, {"'roles'", "none in sequence 0"});
  EXPECT_EQ(out, std::vector<float>(5, -7.0f));
}

TEST(Errors, LayerSelection) {
  expect_error([] { rhythm::middle_third_layers(0); }, rhythm::errc::bad_parameter, {"'layers'", "got 0"});
  expect_error([] { rhythm::middle_third_layers(12, 0); }, rhythm::errc::bad_parameter, {"'count'"});
}

}  // namespace
