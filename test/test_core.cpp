// Core pieces: views and the tensor concept, 16-bit types, head groups, layer selection.
#include <bit>
#include <cstring>

#include "test_util.hpp"

namespace {
using namespace rt;

// A user's own tensor type (no memory_space member: it is host memory) satisfies the concept.
struct user_matrix {
  using value_type = float;
  static constexpr std::size_t rank() { return 2; }
  std::int64_t extent(std::size_t r) const { return r == 0 ? rows : cols; }
  std::int64_t stride(std::size_t r) const { return r == 0 ? cols : 1; }
  float* data_handle() const { return data; }
  float* data;
  std::int64_t rows, cols;
};
static_assert(rhythm::strided_tensor<user_matrix>);
static_assert(rhythm::is_host_accessible_v<user_matrix>);
static_assert(rhythm::strided_tensor<rhythm::view<const float, 3>>);
static_assert(!rhythm::is_host_accessible_v<rhythm::view<float, 2, rhythm::device_space>>);
static_assert(!rhythm::strided_tensor<std::vector<float>>);

TEST(View, RowMajorStridesAndIndexing) {
  std::vector<int> buf(24);
  for (int i = 0; i < 24; ++i) buf[i] = i;
  auto v = rhythm::make_view(buf, 2, 3, 4);
  static_assert(std::is_same_v<decltype(v), rhythm::view<int, 3>>);
  EXPECT_EQ(rhythm::make_view(buf, std::array<i64, 3>{2, 3, 4}).extents(), v.extents());  // the array form too
  EXPECT_EQ(v.stride(0), 12);
  EXPECT_EQ(v.stride(1), 4);
  EXPECT_EQ(v.stride(2), 1);
  EXPECT_EQ(v.size(), 24);
  EXPECT_EQ(v(1, 2, 3), 23);
  rhythm::view<const int, 2> transposed(buf.data(), {4, 6}, {1, 4});
  EXPECT_EQ(transposed(3, 1), 7);
  rhythm::view<const int, 3> as_const = v;
  EXPECT_EQ(as_const(1, 0, 0), 12);
}

TEST(View, TooSmallBufferIsRejected) {
  std::vector<float> buf(5);
  expect_error([&] { (void)rhythm::make_view(buf, 2, 3); }, rhythm::errc::shape_mismatch, {"6", "5"});
}

TEST(View, FromPointerIsRowMajorOverTheCallersBuffer) {
  const std::vector<float> buf{0, 1, 2, 3, 4, 5};
  const auto v = rhythm::make_view(buf.data(), 3, 2);
  static_assert(std::is_same_v<decltype(v), const rhythm::view<const float, 2>>);
  EXPECT_EQ(v.data_handle(), buf.data());
  EXPECT_EQ(v(2, 1), 5.0f);
  EXPECT_EQ(v.stride(0), 2);
}

TEST(View, UserTypeWorksWithPrimitives) {
  std::vector<float> spans{3, 1, 2, 9};
  std::vector<rhythm::head_role> roles(4);
  rhythm::head_groups(rhythm::exec::seq{}, user_matrix{spans.data(), 1, 4}, rhythm::make_view(roles, 1, 4),
                      {.fraction = 0.25});
  using enum rhythm::head_role;
  EXPECT_EQ(roles, (std::vector<rhythm::head_role>{none, local, none, global}));
}

TEST(Dtypes, Bfloat16RoundsToNearestEven) {
  EXPECT_EQ(float(rhythm::bfloat16(1.0f)), 1.0f);
  EXPECT_EQ(rhythm::bfloat16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0)
  EXPECT_EQ(float(rhythm::bfloat16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(float(rhythm::bfloat16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(float(rhythm::bfloat16(std::nanf("")))));
  EXPECT_TRUE(std::isinf(float(rhythm::bfloat16(INFINITY))));
}

TEST(Dtypes, HalfMatchesIeeeBinary16) {
  EXPECT_EQ(rhythm::half(1.0f).bits, 0x3c00);
  EXPECT_EQ(rhythm::half(-2.0f).bits, 0xc000);
  EXPECT_EQ(rhythm::half(65504.0f).bits, 0x7bff);
  EXPECT_EQ(rhythm::half(65520.0f).bits, 0x7c00);   // rounds to Inf
  EXPECT_EQ(rhythm::half(5.9604645e-8f).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(rhythm::half(6.1035156e-5f).bits, 0x0400);  // smallest normal
  EXPECT_EQ(float(rhythm::half(std::bit_cast<float>(0x3f801000u))), 1.0f);  // 1 + 2^-11 ties to even
  EXPECT_TRUE(std::isnan(float(rhythm::half(std::nanf("")))));
  // Every half value survives half -> float -> half.
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    rhythm::half h;
    h.bits = static_cast<std::uint16_t>(b);
    const float f = float(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(rhythm::half(f).bits, h.bits) << std::hex << b;
  }
}

TEST(HeadGroups, MatchReferenceOnRandomSpansWithTies) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const i64 B = 1 + trial % 3, H = 1 + trial % 13;
    const double f = std::uniform_real_distribution<double>(0.01, 1.0)(rng);
    std::vector<float> spans(B * H);
    for (auto& s : spans) s = float(std::uniform_int_distribution<int>(0, 4)(rng));  // many ties
    std::vector<rhythm::head_role> roles(B * H), pooled(H);
    rhythm::head_groups(rhythm::exec::seq{}, rhythm::make_view(spans, B, H),
                        rhythm::make_view(roles, B, H), {.fraction = f});
    rhythm::pooled_head_groups(rhythm::exec::seq{}, rhythm::make_view(spans, B, H),
                               rhythm::make_view(pooled), {.fraction = f});
    std::vector<double> mean(H, 0.0);
    for (i64 b = 0; b < B; ++b) {
      std::vector<double> row(spans.begin() + b * H, spans.begin() + (b + 1) * H);
      const auto want = ref::head_groups(row, f);
      for (i64 h = 0; h < H; ++h) {
        ASSERT_EQ(int(roles[b * H + h]), want[h]) << "trial " << trial << " b " << b << " h " << h;
        mean[h] += row[h];
      }
    }
    const auto want = ref::head_groups(mean, f);
    for (i64 h = 0; h < H; ++h) ASSERT_EQ(int(pooled[h]), want[h]) << "trial " << trial << " h " << h;
  }
}

TEST(HeadGroups, SizeIsRoundedShareWithAtLeastOne) {
  EXPECT_EQ(rhythm::head_group_size(16, 0.3), 5);  // round(4.8)
  EXPECT_EQ(rhythm::head_group_size(8, 0.3), 2);   // round(2.4)
  EXPECT_EQ(rhythm::head_group_size(1, 0.3), 1);
  EXPECT_EQ(rhythm::head_group_size(2, 0.01), 1);
}

TEST(LayerSelection, MiddleThird) {
  EXPECT_EQ(rhythm::middle_third_layers(36), (std::vector<std::int64_t>{12, 15, 18, 21, 24}));
  EXPECT_EQ(rhythm::middle_third_layers(28), (std::vector<std::int64_t>{9, 11, 14, 16, 18}));
  EXPECT_EQ(rhythm::middle_third_layers(4), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(rhythm::middle_third_layers(1), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(rhythm::middle_third_layers(36, 1), (std::vector<std::int64_t>{18}));
}

TEST(Version, HeaderAndMacrosAgree) {
  EXPECT_EQ(RHYTHM_VERSION, rhythm::version_major * 10000 + rhythm::version_minor * 100 + rhythm::version_patch);
  EXPECT_EQ(std::string(rhythm::version_string), std::to_string(rhythm::version_major) + "." +
                                                     std::to_string(rhythm::version_minor) + "." +
                                                     std::to_string(rhythm::version_patch));
}

}  // namespace
