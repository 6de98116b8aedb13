// rhythm::eigen: views of Eigen matrices, maps, refs, blocks and tensors; signals through them equal
// the same core run on rhythm::make_view; results written back into Eigen objects; every rejection.
#include <rhythm/eigen.hpp>

#include <cstring>

#include "../test_util.hpp"

namespace {
using namespace rt;
using outputs = head_outputs<rhythm::exec::seq>;

// Every element of a rank-2 view equals the Eigen coefficient, and writes through the view land there.
template <class V, class M>
void expect_same_2d(const V& v, M&& m) {
  ASSERT_EQ(v.extent(0), m.rows());
  ASSERT_EQ(v.extent(1), m.cols());
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) EXPECT_EQ(v(i, j), m(i, j)) << i << "," << j;
  if constexpr (!std::is_const_v<std::remove_pointer_t<decltype(v.data_handle())>>) {
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) v(i, j) = static_cast<float>(1000 + 10 * i + j);
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) EXPECT_EQ(m(i, j), static_cast<float>(1000 + 10 * i + j));
  }
}

template <class V, class M>
void expect_same_1d(const V& v, const M& m) {
  ASSERT_EQ(v.extent(0), m.size());
  for (Eigen::Index i = 0; i < m.size(); ++i) EXPECT_EQ(v(i), m.rows() == 1 ? m(0, i) : m(i, 0)) << i;
}

Eigen::MatrixXf counting(Eigen::Index r, Eigen::Index c) {
  Eigen::MatrixXf m(r, c);
  for (Eigen::Index i = 0; i < r; ++i)
    for (Eigen::Index j = 0; j < c; ++j) m(i, j) = float(10 * i + j);
  return m;
}

using RowMajorXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

TEST(EigenView, ColumnMajorMatrix) {
  Eigen::MatrixXf m = counting(3, 4);
  auto v = rhythm::eigen::view(m);
  static_assert(std::is_same_v<decltype(v), rhythm::view<float, 2>>);
  EXPECT_EQ(v.strides(), (std::array<i64, 2>{1, 3}));
  expect_same_2d(v, m);
}

TEST(EigenView, RowMajorMatrixAndArray) {
  RowMajorXf m = counting(3, 4);
  auto v = rhythm::eigen::view(m);
  EXPECT_EQ(v.strides(), (std::array<i64, 2>{4, 1}));
  expect_same_2d(v, m);
  Eigen::ArrayXXf a = counting(2, 5).array();
  auto va = rhythm::eigen::view(a);
  EXPECT_EQ(va.strides(), (std::array<i64, 2>{1, 2}));
  expect_same_2d(va, a);
}

TEST(EigenView, ConstObjectsGiveConstViews) {
  const Eigen::MatrixXf m = counting(3, 4);
  auto v = rhythm::eigen::view(m);
  static_assert(std::is_same_v<decltype(v), rhythm::view<const float, 2>>);
  expect_same_2d(v, m);
  Eigen::MatrixXf w = counting(3, 4);
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(std::as_const(w))), rhythm::view<const float, 2>>);
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(m.block(0, 0, 2, 2))), rhythm::view<const float, 2>>);
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(w.block(0, 0, 2, 2))), rhythm::view<float, 2>>);
  Eigen::Map<const Eigen::MatrixXf> cm(w.data(), 3, 4);
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(cm)), rhythm::view<const float, 2>>);
  Eigen::Ref<const Eigen::MatrixXf> cr(w);
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(cr)), rhythm::view<const float, 2>>);
}

TEST(EigenView, Blocks) {
  Eigen::MatrixXf m = counting(6, 7);
  auto b = m.block(1, 2, 3, 4);
  auto v = rhythm::eigen::view(b);
  EXPECT_EQ(v.data_handle(), &m(1, 2));
  EXPECT_EQ(v.strides(), (std::array<i64, 2>{1, 6}));
  expect_same_2d(v, b);
  // a block of a block of a row-major matrix, passed as a temporary
  RowMajorXf r = counting(6, 7);
  auto inner = r.block(1, 1, 5, 5);
  expect_same_2d(rhythm::eigen::view(inner.block(1, 2, 2, 3)), r.block(2, 3, 2, 3));
  // topRows / rightCols / middleCols are blocks too
  expect_same_2d(rhythm::eigen::view(m.rightCols(2)), m.rightCols(2));
  expect_same_2d(rhythm::eigen::view(r.middleRows(2, 3)), r.middleRows(2, 3));
}

TEST(EigenView, MapsWithStrides) {
  std::vector<float> buf(200);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  {  // column-major, outer stride 5 (rows 3): a padded leading dimension
    Eigen::Map<Eigen::MatrixXf, 0, Eigen::OuterStride<>> m(buf.data(), 3, 4, Eigen::OuterStride<>(5));
    auto v = rhythm::eigen::view(m);
    EXPECT_EQ(v.strides(), (std::array<i64, 2>{1, 5}));
    expect_same_2d(v, m);
  }
  {  // column-major, inner stride 2
    Eigen::Map<Eigen::MatrixXf, 0, Eigen::InnerStride<>> m(buf.data(), 3, 4, Eigen::InnerStride<>(2));
    auto v = rhythm::eigen::view(m);
    EXPECT_EQ(v.strides(), (std::array<i64, 2>{2, 6}));
    expect_same_2d(v, m);
  }
  {  // row-major, both strides dynamic
    using S = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
    Eigen::Map<RowMajorXf, 0, S> m(buf.data() + 1, 4, 3, S(17, 3));
    auto v = rhythm::eigen::view(m);
    EXPECT_EQ(v.strides(), (std::array<i64, 2>{17, 3}));
    expect_same_2d(v, m);
  }
  {  // compile-time strides, const map
    Eigen::Map<const Eigen::Matrix<float, 2, 3>, 0, Eigen::Stride<8, 2>> m(buf.data());
    auto v = rhythm::eigen::view(m);
    static_assert(std::is_same_v<decltype(v), rhythm::view<const float, 2>>);
    EXPECT_EQ(v.strides(), (std::array<i64, 2>{2, 8}));
    expect_same_2d(v, m);
  }
}

TEST(EigenView, Refs) {
  Eigen::MatrixXf m = counting(5, 6);
  Eigen::Ref<Eigen::MatrixXf> whole(m);
  expect_same_2d(rhythm::eigen::view(whole), m);
  Eigen::Ref<Eigen::MatrixXf, 0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>> strided(m.block(1, 1, 3, 4));
  auto v = rhythm::eigen::view(strided);
  EXPECT_EQ(v.data_handle(), &m(1, 1));
  expect_same_2d(v, m.block(1, 1, 3, 4));
  auto through_function = [](Eigen::Ref<const Eigen::MatrixXf> r) { return rhythm::eigen::view(r); };
  const Eigen::MatrixXf c = counting(4, 2);
  expect_same_2d(through_function(c), c);
}

TEST(EigenView, Transposes) {
  Eigen::MatrixXf m = counting(3, 4);
  auto v = rhythm::eigen::view(m.transpose());
  EXPECT_EQ(v.extents(), (std::array<i64, 2>{4, 3}));
  EXPECT_EQ(v.strides(), (std::array<i64, 2>{3, 1}));
  expect_same_2d(v, m.transpose());
  auto b = rhythm::eigen::view(m.block(1, 1, 2, 3).transpose());
  expect_same_2d(b, m.block(1, 1, 2, 3).transpose());
  RowMajorXf r = counting(3, 4);
  expect_same_2d(rhythm::eigen::view(r.transpose()), r.transpose());
}

TEST(EigenView, VectorsAreRankOne) {
  Eigen::VectorXf x = Eigen::VectorXf::LinSpaced(5, 0.0f, 4.0f);
  auto v = rhythm::eigen::view(x);
  static_assert(std::is_same_v<decltype(v), rhythm::view<float, 1>>);
  EXPECT_EQ(v.stride(0), 1);
  expect_same_1d(v, x);
  Eigen::RowVectorXf y = x.transpose();
  expect_same_1d(rhythm::eigen::view(y), y);
  Eigen::MatrixXf m = counting(3, 4);
  auto row = rhythm::eigen::view(m.row(1));
  EXPECT_EQ(row.stride(0), 3);
  expect_same_1d(row, m.row(1));
  RowMajorXf r = counting(3, 4);
  auto col = rhythm::eigen::view(r.col(2));
  EXPECT_EQ(col.stride(0), 4);
  expect_same_1d(col, r.col(2));
  expect_same_1d(rhythm::eigen::view(x.segment(1, 3)), x.segment(1, 3));
  // rank chosen explicitly
  auto as_matrix = rhythm::eigen::view<2>(x);
  EXPECT_EQ(as_matrix.extents(), (std::array<i64, 2>{5, 1}));
  Eigen::MatrixXf one_col = counting(4, 1), one_row = counting(1, 4);
  expect_same_1d(rhythm::eigen::view<1>(one_col), one_col);
  auto vr = rhythm::eigen::view<1>(one_row);
  EXPECT_EQ(vr.stride(0), 1);
  expect_same_1d(vr, one_row);
  auto vt = rhythm::eigen::view<1>(m.block(0, 1, 3, 1).transpose());
  expect_same_1d(vt, m.block(0, 1, 3, 1).transpose());
}

TEST(EigenView, RankOneOfAMatrixIsRejected) {
  Eigen::MatrixXf m = counting(3, 4);
  expect_error([&] { (void)rhythm::eigen::view<1>(m, "rewards"); }, rhythm::errc::shape_mismatch,
               {"rhythm: argument 'rewards': expected a vector (one row or one column) for a rank-1 view, got a 3 x 4 "
                "matrix"});
  expect_error([&] { (void)rhythm::eigen::view<1>(m); }, rhythm::errc::shape_mismatch, {"argument 'matrix'"});
}

TEST(EigenView, TensorsColumnAndRowMajor) {
  Eigen::Tensor<float, 3> t(2, 3, 4);  // ColMajor by default
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) t(i, j, k) = float(100 * i + 10 * j + k);
  auto v = rhythm::eigen::view(t);
  static_assert(std::is_same_v<decltype(v), rhythm::view<float, 3>>);
  EXPECT_EQ(v.extents(), (std::array<i64, 3>{2, 3, 4}));
  EXPECT_EQ(v.strides(), (std::array<i64, 3>{1, 2, 6}));
  Eigen::Tensor<float, 3, Eigen::RowMajor> r = t.swap_layout().shuffle(Eigen::array<int, 3>{2, 1, 0});
  auto vr = rhythm::eigen::view(r);
  EXPECT_EQ(vr.strides(), (std::array<i64, 3>{12, 4, 1}));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        EXPECT_EQ(v(i, j, k), t(i, j, k));
        EXPECT_EQ(vr(i, j, k), t(i, j, k));
      }
  v(1, 2, 3) = -1.0f;
  EXPECT_EQ(t(1, 2, 3), -1.0f);
  const auto& ct = t;
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(ct)), rhythm::view<const float, 3>>);
  static_assert(std::is_same_v<decltype(rhythm::eigen::view<3>(r)), rhythm::view<float, 3>>);
}

TEST(EigenView, TensorMapsAndFixedSize) {
  std::vector<float> buf(2 * 3 * 4 * 5);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  Eigen::TensorMap<Eigen::Tensor<float, 4, Eigen::RowMajor>> m(buf.data(), 2, 3, 4, 5);
  auto v = rhythm::eigen::view(m);
  const auto contiguous = rhythm::make_view(buf, std::array<i64, 4>{2, 3, 4, 5});
  EXPECT_EQ(v.data_handle(), contiguous.data_handle());
  EXPECT_EQ(v.extents(), contiguous.extents());
  EXPECT_EQ(v.strides(), contiguous.strides());
  Eigen::TensorMap<const Eigen::Tensor<float, 2>> cm(buf.data(), 6, 20);
  auto cv = rhythm::eigen::view(cm);
  static_assert(std::is_same_v<decltype(cv), rhythm::view<const float, 2>>);
  EXPECT_EQ(cv.strides(), (std::array<i64, 2>{1, 6}));
  EXPECT_EQ(cv(5, 19), cm(5, 19));
  Eigen::TensorFixedSize<float, Eigen::Sizes<2, 3>, Eigen::RowMajor> f;
  f.setValues({{1, 2, 3}, {4, 5, 6}});
  auto fv = rhythm::eigen::view(f);
  EXPECT_EQ(fv.strides(), (std::array<i64, 2>{3, 1}));
  EXPECT_EQ(fv(1, 2), 6.0f);
  Eigen::Tensor<float, 1> t1(4);
  t1.setValues({1, 2, 3, 4});
  EXPECT_EQ(rhythm::eigen::view(t1)(3), 4.0f);
}

TEST(EigenView, TensorRefWithoutStorageIsRejected) {
  Eigen::Tensor<float, 2> a(3, 4), b(3, 4);
  a.setConstant(1.0f), b.setConstant(2.0f);
  Eigen::TensorRef<Eigen::Tensor<float, 2>> stored(a);
  EXPECT_EQ(rhythm::eigen::view(stored)(2, 3), 1.0f);
  Eigen::TensorRef<Eigen::Tensor<float, 2>> sum(a + b);
  expect_error([&] { (void)rhythm::eigen::view(sum, "maps"); }, rhythm::errc::bad_stride,
               {"argument 'maps'", "expected a tensor with storage", "without direct access"});
}

TEST(EigenView, ElementTypes) {
  Eigen::Matrix<Eigen::bfloat16, Eigen::Dynamic, Eigen::Dynamic> b(2, 2);
  b << Eigen::bfloat16(1.5f), Eigen::bfloat16(-2.0f), Eigen::bfloat16(0.1f), Eigen::bfloat16(3e8f);
  auto vb = rhythm::eigen::view(b);
  static_assert(std::is_same_v<decltype(vb), rhythm::view<rhythm::bfloat16, 2>>);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      EXPECT_EQ(static_cast<float>(vb(i, j)), static_cast<float>(b(i, j)));
      EXPECT_EQ(vb(i, j).bits, rhythm::bfloat16(static_cast<float>(b(i, j))).bits);
    }
  Eigen::Tensor<Eigen::half, 2> h(2, 3);
  h.setConstant(Eigen::half(0.333f));
  h(1, 2) = Eigen::half(-65504.0f);
  const auto& ch = h;
  auto vh = rhythm::eigen::view(ch);
  static_assert(std::is_same_v<decltype(vh), rhythm::view<const rhythm::half, 2>>);
  EXPECT_EQ(static_cast<float>(vh(0, 0)), static_cast<float>(h(0, 0)));
  EXPECT_EQ(static_cast<float>(vh(1, 2)), -65504.0f);
  std::uint16_t raw;
  std::memcpy(&raw, &h(0, 0), 2);
  EXPECT_EQ(vh(0, 0).bits, raw);
  Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> ids(3);
  ids << 7, 7, 9;
  static_assert(std::is_same_v<decltype(rhythm::eigen::view(ids)), rhythm::view<std::int64_t, 1>>);
  EXPECT_EQ(rhythm::eigen::view(ids)(2), 9);
  Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic> roles(2, 3);
  roles.setZero();
  rhythm::eigen::view(roles)(1, 2) = 3;
  EXPECT_EQ(roles(1, 2), 3);
}

TEST(EigenView, ViewableTrait) {
  Eigen::MatrixXf a(2, 2), b(2, 2);
  Eigen::Tensor<float, 2> t(2, 2);
  static_assert(rhythm::eigen::viewable<Eigen::MatrixXf>);
  static_assert(rhythm::eigen::viewable<const Eigen::Map<Eigen::MatrixXf, 0, Eigen::OuterStride<>>&>);
  static_assert(rhythm::eigen::viewable<decltype(a.block(0, 0, 1, 1).transpose())>);
  static_assert(rhythm::eigen::viewable<Eigen::TensorMap<Eigen::Tensor<float, 3>>>);
  static_assert(!rhythm::eigen::viewable<decltype(a + b)>);
  static_assert(!rhythm::eigen::viewable<decltype(a * b)>);
  static_assert(!rhythm::eigen::viewable<decltype(a.reverse())>);
  static_assert(!rhythm::eigen::viewable<decltype(a.cwiseAbs())>);
  static_assert(!rhythm::eigen::viewable<decltype((a + b).block(0, 0, 1, 1))>);
  static_assert(!rhythm::eigen::viewable<decltype(t.slice(Eigen::array<Eigen::Index, 2>{0, 0},
                                                           Eigen::array<Eigen::Index, 2>{1, 1}))>);
  static_assert(!rhythm::eigen::viewable<std::vector<float>>);
  SUCCEED();
}

// ---- signals through the adapter equal the same core on rhythm::make_view ----------------------

struct maps_problem {
  static constexpr i64 B = 2, H = 4, N = 40, d = 8;
  std::vector<rhythm::segment> segs{{0, 9, 40}, {4, 15, 36}};
  std::vector<float> maps;  // [B, H, N, N] row-major, NaN outside what the library reads
  rhythm::signal_params params{.window = 6, .horizon = {.lo = 3, .hi = 20}};
  maps_problem() {
    std::mt19937 rng(42);
    maps = random_maps(rng, B, H, N, segs).data;
  }
  outputs reference(rhythm::view<const float, 4> m) const {
    outputs out(B, H, N);
    rhythm::head_signals_from_maps(rhythm::exec::seq{}, m, rhythm::make_view(segs), out.span, out.waad, out.fai,
                                   params);
    return out;
  }
};

template <class Span, class Waad, class Fai>
void expect_equal_outputs(const outputs& want, const Span& span, const Waad& waad, const Fai& fai) {
  const auto w = want.host();
  for (i64 b = 0; b < want.B; ++b)
    for (i64 h = 0; h < want.H; ++h) {
      EXPECT_EQ(span(b, h), w.span[b * want.H + h]) << b << "," << h;
      for (i64 t = 0; t < want.N; ++t) {
        EXPECT_EQ(waad(b, h, t), w.waad[(b * want.H + h) * want.N + t]) << b << "," << h << "," << t;
        EXPECT_EQ(fai(b, h, t), w.fai[(b * want.H + h) * want.N + t]) << b << "," << h << "," << t;
      }
    }
}

TEST(EigenSignals, MapsThroughRowMajorTensorEqualMakeView) {
  maps_problem p;
  const auto want = p.reference(rhythm::make_view(std::as_const(p.maps), std::array<i64, 4>{p.B, p.H, p.N, p.N}));
  Eigen::TensorMap<const Eigen::Tensor<float, 4, Eigen::RowMajor>> maps(p.maps.data(), p.B, p.H, p.N, p.N);
  // outputs: a column-major matrix and column-major tensors, written through strided views
  Eigen::MatrixXf span = Eigen::MatrixXf::Constant(p.B, p.H, -7.0f);
  Eigen::Tensor<float, 3> waad(p.B, p.H, p.N), fai(p.B, p.H, p.N);
  rhythm::head_signals_from_maps(rhythm::exec::par{2}, rhythm::eigen::view(maps), rhythm::make_view(p.segs),
                                 rhythm::eigen::view(span), rhythm::eigen::view(waad), rhythm::eigen::view(fai),
                                 p.params);
  expect_equal_outputs(want, span, waad, fai);
  // the convenience returns the same in Eigen objects
  Eigen::Tensor<float, 4, Eigen::RowMajor> owned = maps;
  const auto r = rhythm::eigen::head_signals_from_maps(rhythm::exec::seq{}, owned, p.segs, p.params);
  EXPECT_EQ(r.span.rows(), p.B);
  EXPECT_EQ(r.waad.dimension(2), p.N);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
}

TEST(EigenSignals, MapsThroughColumnMajorTensorEqualTheSameStrides) {
  maps_problem p;
  Eigen::Tensor<float, 4> maps(p.B, p.H, p.N, p.N);  // ColMajor: every key s is a stride of N*N*... apart
  for (i64 b = 0; b < p.B; ++b)
    for (i64 h = 0; h < p.H; ++h)
      for (i64 t = 0; t < p.N; ++t)
        for (i64 s = 0; s < p.N; ++s) maps(b, h, t, s) = p.maps[((b * p.H + h) * p.N + t) * p.N + s];
  const rhythm::view<const float, 4> same_strides(maps.data(), {p.B, p.H, p.N, p.N},
                                                  {1, p.B, p.B * p.H, p.B * p.H * p.N});
  const auto want = p.reference(same_strides);
  const auto r = rhythm::eigen::head_signals_from_maps(rhythm::exec::par{3}, maps, p.segs, p.params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
  // and, to float rounding, the contiguous result (the core's unit-stride path sums in another order)
  const auto contiguous = p.reference(rhythm::make_view(std::as_const(p.maps), p.B, p.H, p.N, p.N)).host();
  for (i64 b = 0; b < p.B; ++b)
    for (i64 h = 0; h < p.H; ++h) {
      EXPECT_TRUE(close(r.span(b, h), contiguous.span[b * p.H + h], 1e-5));
      for (i64 t = 0; t < p.N; ++t) EXPECT_TRUE(close(r.waad(b, h, t), contiguous.waad[(b * p.H + h) * p.N + t], 1e-5));
    }
}

TEST(EigenSignals, BFloat16MapsEqualRhythmBFloat16) {
  maps_problem p;
  std::vector<rhythm::bfloat16> mine(p.maps.size());
  Eigen::Tensor<Eigen::bfloat16, 4, Eigen::RowMajor> theirs(p.B, p.H, p.N, p.N);
  for (std::size_t i = 0; i < p.maps.size(); ++i) {
    mine[i] = rhythm::bfloat16(p.maps[i]);
    theirs.data()[i] = Eigen::bfloat16(p.maps[i]);
    ASSERT_TRUE(std::isnan(p.maps[i]) || mine[i].bits == rhythm::eigen::view(theirs).data_handle()[i].bits);
  }
  outputs want(p.B, p.H, p.N);
  rhythm::head_signals_from_maps(rhythm::exec::seq{}, rhythm::make_view(mine, std::array<i64, 4>{p.B, p.H, p.N, p.N}),
                                 rhythm::make_view(p.segs), want.span, want.waad, want.fai, p.params);
  const auto r = rhythm::eigen::head_signals_from_maps(rhythm::exec::seq{}, theirs, p.segs, p.params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
}

TEST(EigenSignals, QKThroughTensorsEqualMakeView) {
  const i64 B = 2, H = 4, Hkv = 2, N = 30, d = 8;
  std::vector<rhythm::segment> segs{{0, 7, 30}, {2, 12, 27}};
  std::mt19937 rng(5);
  std::vector<float> q = random_floats(rng, B * H * N * d), k = random_floats(rng, B * Hkv * N * d);
  const rhythm::signal_params params{.window = 5, .horizon = {.lo = 2, .hi = 15}};
  outputs want(B, H, N);
  rhythm::head_signals_from_qk(rhythm::exec::seq{}, rhythm::make_view(std::as_const(q), std::array<i64, 4>{B, H, N, d}),
                               rhythm::make_view(std::as_const(k), std::array<i64, 4>{B, Hkv, N, d}),
                               rhythm::make_view(segs), want.span, want.waad, want.fai, params);
  Eigen::TensorMap<Eigen::Tensor<float, 4, Eigen::RowMajor>> qt(q.data(), B, H, N, d), kt(k.data(), B, Hkv, N, d);
  const auto r = rhythm::eigen::head_signals_from_qk(rhythm::exec::par{2}, qt, kt, segs, params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
}

TEST(EigenSignals, HeadGroupsGroupMeanAndPipelineWriteIntoEigen) {
  maps_problem p;
  const auto maps_view = rhythm::make_view(std::as_const(p.maps), std::array<i64, 4>{p.B, p.H, p.N, p.N});
  Eigen::TensorMap<const Eigen::Tensor<float, 4, Eigen::RowMajor>> maps(p.maps.data(), p.B, p.H, p.N, p.N);
  const auto sig = rhythm::eigen::head_signals_from_maps(rhythm::exec::seq{}, maps, p.segs, p.params);
  // head groups into an Eigen uint8 matrix, group WAAD into a row-major Eigen matrix
  Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic> roles(p.B, p.H);
  rhythm::head_groups(rhythm::exec::seq{}, rhythm::eigen::view(sig.span), rhythm::eigen::view(roles));
  RowMajorXf local(p.B, p.N);
  rhythm::group_mean(rhythm::exec::seq{}, rhythm::eigen::view(sig.waad), rhythm::eigen::view(roles),
                     rhythm::head_role::local, rhythm::eigen::view(local));
  std::vector<std::uint8_t> roles_v(p.B * p.H);
  std::vector<float> span_v(sig.span.size()), local_v(p.B * p.N);
  for (i64 b = 0; b < p.B; ++b)
    for (i64 h = 0; h < p.H; ++h) span_v[b * p.H + h] = sig.span(b, h);
  rhythm::head_groups(rhythm::exec::seq{}, rhythm::make_view(span_v, std::array<i64, 2>{p.B, p.H}),
                      rhythm::make_view(roles_v, std::array<i64, 2>{p.B, p.H}));
  for (i64 b = 0; b < p.B; ++b)
    for (i64 h = 0; h < p.H; ++h) EXPECT_EQ(roles(b, h), roles_v[b * p.H + h]);
  std::vector<float> waad_v(sig.waad.data(), sig.waad.data() + sig.waad.size());
  rhythm::group_mean(rhythm::exec::seq{}, rhythm::make_view(waad_v, std::array<i64, 3>{p.B, p.H, p.N}),
                     rhythm::make_view(roles_v, std::array<i64, 2>{p.B, p.H}), rhythm::head_role::local,
                     rhythm::make_view(local_v, std::array<i64, 2>{p.B, p.N}));
  for (i64 b = 0; b < p.B; ++b)
    for (i64 t = 0; t < p.N; ++t) EXPECT_EQ(local(b, t), local_v[b * p.N + t]);

  // the whole pipeline: rewards as Eigen::VectorXf, group ids as an int64 vector, gamma/shaped into Eigen
  Eigen::VectorXf rewards(p.B);
  rewards << 1.0f, 0.0f;
  Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> groups(p.B);
  groups << 0, 0;
  Eigen::MatrixXf gamma(p.B, p.N), shaped(p.B, p.N);
  rhythm::pipeline_params pp;
  pp.signals = p.params;
  rhythm::credit_pipeline pipe;
  const auto diag = pipe.run_from_maps(rhythm::exec::seq{}, maps_view, rhythm::make_view(p.segs),
                                       rhythm::eigen::view(rewards), rhythm::eigen::view(groups),
                                       rhythm::shaping::coupled_rhythm{}, rhythm::eigen::view(gamma),
                                       rhythm::eigen::view(shaped), pp);
  std::vector<float> rewards_v{1.0f, 0.0f}, gamma_v(p.B * p.N), shaped_v(p.B * p.N);
  std::vector<std::int64_t> groups_v{0, 0};
  rhythm::credit_pipeline pipe_v;
  const auto diag_v = pipe_v.run_from_maps(rhythm::exec::seq{}, maps_view, rhythm::make_view(p.segs),
                                           rhythm::make_view(rewards_v), rhythm::make_view(groups_v),
                                           rhythm::shaping::coupled_rhythm{},
                                           rhythm::make_view(gamma_v, std::array<i64, 2>{p.B, p.N}),
                                           rhythm::make_view(shaped_v, std::array<i64, 2>{p.B, p.N}), pp);
  EXPECT_EQ(diag.anchor, diag_v.anchor);
  EXPECT_EQ(diag.mean_gamma, diag_v.mean_gamma);
  for (i64 b = 0; b < p.B; ++b)
    for (i64 t = 0; t < p.N; ++t) {
      EXPECT_EQ(gamma(b, t), gamma_v[b * p.N + t]);
      EXPECT_EQ(shaped(b, t), shaped_v[b * p.N + t]);
    }
}

TEST(EigenSignals, CoreErrorsNameTheArgumentAndLeaveEigenOutputsUntouched) {
  maps_problem p;
  Eigen::TensorMap<const Eigen::Tensor<float, 4, Eigen::RowMajor>> maps(p.maps.data(), p.B, p.H, p.N, p.N);
  Eigen::MatrixXf span = Eigen::MatrixXf::Constant(p.B, p.H + 1, -7.0f);  // wrong H
  Eigen::Tensor<float, 3> waad(p.B, p.H, p.N), fai(p.B, p.H, p.N);
  waad.setConstant(-7.0f), fai.setConstant(-7.0f);
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, rhythm::eigen::view(maps), rhythm::make_view(p.segs),
                                       rhythm::eigen::view(span), rhythm::eigen::view(waad), rhythm::eigen::view(fai));
      },
      rhythm::errc::shape_mismatch, {"argument 'span'", "[B, H] = [2, 4]", "got [2, 5]"});
  EXPECT_TRUE((span.array() == -7.0f).all());
  for (i64 i = 0; i < waad.size(); ++i) ASSERT_EQ(waad.data()[i], -7.0f);
  // a maps tensor whose last two extents differ, through the convenience
  Eigen::Tensor<float, 4, Eigen::RowMajor> bad(p.B, p.H, p.N, p.N - 1);
  bad.setZero();
  expect_error([&] { (void)rhythm::eigen::head_signals_from_maps(rhythm::exec::seq{}, bad, p.segs); },
               rhythm::errc::shape_mismatch, {"argument 'maps'", "got [2, 4, 40, 39]"});
}

}  // namespace
