// rhythm::xt: views of xtensor containers and strided views; .npy load and save; signals through the
// adapter equal the same core run on rhythm::make_view; results written back into xtensors; every
// rejection.
#include <rhythm/xtensor.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xfixed.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xview.hpp>

#include "../test_util.hpp"

namespace {
using namespace rt;
namespace fs = std::filesystem;
using ::xt::placeholders::_;
using outputs = head_outputs<rhythm::exec::seq>;

// Every element of the view equals the xtensor element; writes through a mutable view land there.
template <class V, class E>
void expect_same(const V& v, E&& e) {
  ASSERT_EQ(V::rank(), e.dimension());
  for (std::size_t r = 0; r < V::rank(); ++r) ASSERT_EQ(v.extent(r), static_cast<i64>(e.shape()[r])) << r;
  std::array<i64, V::rank()> idx{};
  const i64 n = v.size();
  for (i64 i = 0; i < n; ++i) {
    i64 rest = i;
    for (std::size_t r = V::rank(); r-- > 0;) idx[r] = rest % v.extent(r), rest /= v.extent(r);
    const auto want = std::apply([&](auto... j) { return e(static_cast<std::size_t>(j)...); }, idx);
    const auto got = std::apply([&](auto... j) { return v(j...); }, idx);
    ASSERT_EQ(got, want) << "flat index " << i;
    if constexpr (!std::is_const_v<std::remove_pointer_t<decltype(v.data_handle())>>) {
      std::apply([&](auto... j) { v(j...) = static_cast<typename V::value_type>(-1 - i); }, idx);
      const auto back = std::apply([&](auto... j) { return e(static_cast<std::size_t>(j)...); }, idx);
      ASSERT_EQ(back, static_cast<typename V::value_type>(-1 - i));
    }
  }
}

::xt::xarray<float> counting(std::vector<std::size_t> shape) {
  ::xt::xarray<float> a = ::xt::xarray<float>::from_shape(shape);
  for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = float(i);
  return a;
}

TEST(XtensorView, XarrayWithRuntimeRank) {
  ::xt::xarray<float> a = counting({2, 3, 4});
  auto v = rhythm::xt::view<3>(a);
  static_assert(std::is_same_v<decltype(v), rhythm::view<float, 3>>);
  EXPECT_EQ(v.strides(), (std::array<i64, 3>{12, 4, 1}));
  EXPECT_EQ(v.data_handle(), a.data());
  expect_same(v, a);
  const auto& ca = a;
  static_assert(std::is_same_v<decltype(rhythm::xt::view<3>(ca)), rhythm::view<const float, 3>>);
  expect_same(rhythm::xt::view<3>(ca), ca);
}

TEST(XtensorView, WrongRankIsRejected) {
  ::xt::xarray<float> a = counting({2, 5});
  expect_error([&] { (void)rhythm::xt::view<4>(a, "maps"); }, rhythm::errc::shape_mismatch,
               {"rhythm: argument 'maps': expected rank 4, got rank 2 (shape [2, 5])"});
  expect_error([&] { (void)rhythm::xt::view<1>(::xt::transpose(a)); }, rhythm::errc::shape_mismatch,
               {"argument 'array'", "expected rank 1, got rank 2 (shape [5, 2])"});
}

TEST(XtensorView, XtensorAndFixedHaveStaticRank) {
  ::xt::xtensor<float, 3> t = counting({3, 2, 4});
  auto v = rhythm::xt::view(t);
  static_assert(std::is_same_v<decltype(v), rhythm::view<float, 3>>);
  expect_same(v, t);
  static_assert(std::is_same_v<decltype(rhythm::xt::view<3>(t)), rhythm::view<float, 3>>);
  ::xt::xtensor_fixed<float, ::xt::xshape<2, 3>> f = {{1, 2, 3}, {4, 5, 6}};
  auto fv = rhythm::xt::view(f);
  static_assert(std::is_same_v<decltype(fv), rhythm::view<float, 2>>);
  EXPECT_EQ(fv.strides(), (std::array<i64, 2>{3, 1}));
  expect_same(fv, f);
}

TEST(XtensorView, ColumnMajorArrays) {
  ::xt::xarray<float, ::xt::layout_type::column_major> a = counting({2, 3, 4});
  auto v = rhythm::xt::view<3>(a);
  EXPECT_EQ(v.strides(), (std::array<i64, 3>{1, 2, 6}));
  expect_same(v, a);
}

TEST(XtensorView, SlicedViews) {
  ::xt::xarray<float> a = counting({4, 5, 6});
  auto s = ::xt::view(a, ::xt::range(1, 4), 2, ::xt::range(0, 6, 2));  // rank 2, strided, offset
  auto v = rhythm::xt::view<2>(s);
  EXPECT_EQ(v.data_handle(), &a(1, 2, 0));
  EXPECT_EQ(v.strides(), (std::array<i64, 2>{30, 2}));
  expect_same(v, s);
  auto rev = ::xt::view(a, ::xt::all(), ::xt::all(), ::xt::range(_, _, -1));  // negative step
  auto vr = rhythm::xt::view<3>(rev);
  EXPECT_EQ(vr.stride(2), -1);
  EXPECT_EQ(vr.data_handle(), &a(0, 0, 5));
  expect_same(vr, rev);
  ::xt::xtensor<float, 3> t = counting({4, 5, 6});
  auto ts = ::xt::view(t, 3, ::xt::range(1, _), ::xt::all());  // static rank 2
  auto vt = rhythm::xt::view(ts, "slice");
  static_assert(decltype(vt)::rank() == 2);
  expect_same(vt, ts);
  const auto& ct = t;
  auto cs = ::xt::view(ct, 1);
  static_assert(std::is_same_v<decltype(rhythm::xt::view(cs)), rhythm::view<const float, 2>>);
  expect_same(rhythm::xt::view(cs), cs);
}

TEST(XtensorView, StridedViewsAndTransposes) {
  ::xt::xarray<float> a = counting({3, 4, 5});
  auto sv = ::xt::strided_view(a, {::xt::range(0, 3, 2), ::xt::all(), 1});
  expect_same(rhythm::xt::view<2>(sv), sv);
  auto tr = ::xt::transpose(a);
  auto vt = rhythm::xt::view<3>(tr);
  EXPECT_EQ(vt.strides(), (std::array<i64, 3>{1, 5, 20}));
  expect_same(vt, tr);
  auto sw = ::xt::transpose(a, {0, 2, 1});
  expect_same(rhythm::xt::view<3>(sw), sw);
  ::xt::xtensor<float, 2> t = counting({3, 4});
  auto tt = ::xt::transpose(t);
  expect_same(rhythm::xt::view<2>(tt), tt);
}

TEST(XtensorView, ExtentOneDimensionsGetRowMajorStrides) {
  ::xt::xarray<float> a = counting({2, 1, 4});
  EXPECT_EQ(a.strides()[1], 0);  // xtensor's convention
  auto v = rhythm::xt::view<3>(a);
  EXPECT_EQ(v.strides(), (std::array<i64, 3>{4, 4, 1}));
  const auto made = rhythm::make_view(std::span<float>(a.data(), a.size()), std::array<i64, 3>{2, 1, 4});
  EXPECT_EQ(v.strides(), made.strides());
  ::xt::xtensor<float, 2> one = counting({1, 1});
  EXPECT_EQ(rhythm::xt::view(one).strides(), (std::array<i64, 2>{1, 1}));
  expect_same(v, a);
}

TEST(XtensorView, ElementTypes) {
  ::xt::xarray<std::int64_t> ids = {3, 4, 5};
  static_assert(std::is_same_v<decltype(rhythm::xt::view<1>(ids)), rhythm::view<std::int64_t, 1>>);
  EXPECT_EQ(rhythm::xt::view<1>(ids)(2), 5);
  ::xt::xtensor<std::uint8_t, 2> roles = ::xt::zeros<std::uint8_t>({2, 3});
  rhythm::xt::view(roles)(1, 2) = 2;
  EXPECT_EQ(roles(1, 2), 2);
  ::xt::xtensor<rhythm::bfloat16, 1> b = ::xt::xtensor<rhythm::bfloat16, 1>::from_shape({2});
  b(0) = rhythm::bfloat16(1.5f);
  static_assert(std::is_same_v<decltype(rhythm::xt::view(b)), rhythm::view<rhythm::bfloat16, 1>>);
  EXPECT_EQ(static_cast<float>(rhythm::xt::view(b)(0)), 1.5f);
}

TEST(XtensorView, ViewableTrait) {
  ::xt::xarray<float> a = counting({2, 3});
  static_assert(rhythm::xt::viewable<::xt::xarray<float>>);
  static_assert(rhythm::xt::viewable<const ::xt::xtensor<float, 2>&>);
  static_assert(rhythm::xt::viewable<decltype(::xt::view(a, 1, ::xt::all()))>);
  static_assert(rhythm::xt::viewable<decltype(::xt::transpose(a))>);
  static_assert(!rhythm::xt::viewable<decltype(a + a)>);
  static_assert(!rhythm::xt::viewable<decltype(::xt::view(a, ::xt::all(), ::xt::keep(0, 2)))>);
  static_assert(!rhythm::xt::viewable<decltype(::xt::broadcast(a, {4, 2, 3}))>);
  static_assert(!rhythm::xt::viewable<std::vector<float>>);
  SUCCEED();
}

// ---- .npy ----------------------------------------------------------------------------------

struct temp_dir {
  fs::path path;
  temp_dir() {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           (std::string("rhythm_test_xtensor_") + test->name() + "_" + std::to_string(std::random_device{}()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  std::string file(const char* name) const { return (path / name).string(); }
};

TEST(XtensorNpy, RoundTrips) {
  temp_dir dir;
  ::xt::xarray<float> a = counting({2, 3, 4});
  rhythm::xt::save_npy(dir.file("a.npy"), a);
  const ::xt::xarray<float> back = rhythm::xt::load_npy<float>(dir.file("a.npy"));
  EXPECT_EQ(back, a);
  ::xt::xtensor<std::int64_t, 2> segs = {{0, 3, 10}, {2, 5, 9}};
  rhythm::xt::save_npy(dir.file("segs.npy"), segs);
  EXPECT_EQ(rhythm::xt::load_npy<std::int64_t>(dir.file("segs.npy")), segs);
  ::xt::xarray<std::uint8_t> roles = {1, 2, 3, 0};
  rhythm::xt::save_npy(dir.file("roles.npy"), roles);
  EXPECT_EQ(rhythm::xt::load_npy<std::uint8_t>(dir.file("roles.npy")), roles);
  // a column-major array is written in Fortran order and read back with the same elements
  ::xt::xarray<double, ::xt::layout_type::column_major> f = counting({3, 5});
  rhythm::xt::save_npy(dir.file("f.npy"), f);
  const auto fb = rhythm::xt::load_npy<double>(dir.file("f.npy"));
  EXPECT_EQ(fb.layout(), ::xt::layout_type::row_major);
  EXPECT_EQ(fb, f);
  // a strided view and a transposed rhythm::view are saved by value
  rhythm::xt::save_npy(dir.file("slice.npy"), ::xt::view(a, 1, ::xt::range(_, _, -1)));
  EXPECT_EQ(rhythm::xt::load_npy<float>(dir.file("slice.npy")), ::xt::view(a, 1, ::xt::range(_, _, -1)));
  std::vector<float> buf(12);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  const rhythm::view<const float, 2> transposed(buf.data(), {4, 3}, {1, 4});
  rhythm::xt::save_npy(dir.file("view.npy"), transposed);
  const auto vb = rhythm::xt::load_npy<float>(dir.file("view.npy"));
  ASSERT_EQ(vb.shape(), (std::vector<std::size_t>{4, 3}));
  for (i64 i = 0; i < 4; ++i)
    for (i64 j = 0; j < 3; ++j) EXPECT_EQ(vb(i, j), transposed(i, j));
}

TEST(XtensorNpy, MissingFileIsRejected) {
  temp_dir dir;
  const std::string path = dir.file("nothing_here.npy");
  expect_error([&] { (void)rhythm::xt::load_npy<float>(path); }, rhythm::errc::bad_parameter,
               {"rhythm: argument 'path': expected a readable .npy file, got '", "nothing_here.npy' (cannot open",
                "No such file or directory"});
}

TEST(XtensorNpy, WrongDtypeIsRejected) {
  temp_dir dir;
  ::xt::xarray<double> a = {1.0, 2.0};
  rhythm::xt::save_npy(dir.file("d.npy"), a);
  expect_error([&] { (void)rhythm::xt::load_npy<float>(dir.file("d.npy")); }, rhythm::errc::bad_parameter,
               {"argument 'path': expected a .npy file of dtype '<f4' (float32), got dtype '<f8' (float64) in '",
                "d.npy'"});
  ::xt::xarray<std::int64_t> i = {1, 2};
  rhythm::xt::save_npy(dir.file("i.npy"), i);
  expect_error([&] { (void)rhythm::xt::load_npy<std::uint8_t>(dir.file("i.npy")); }, rhythm::errc::bad_parameter,
               {"dtype '|u1' (uint8), got dtype '<i8' (int64)"});
}

TEST(XtensorNpy, NotNpyAndTruncatedFilesAreRejected) {
  temp_dir dir;
  {
    std::ofstream(dir.file("text.npy")) << "this is not numpy\n";
  }
  expect_error([&] { (void)rhythm::xt::load_npy<float>(dir.file("text.npy")); }, rhythm::errc::bad_parameter,
               {"argument 'path': expected a .npy file, got '", "text.npy' (xtensor: "});
  {
    std::ofstream(dir.file("empty.npy"));
  }
  expect_error([&] { (void)rhythm::xt::load_npy<float>(dir.file("empty.npy")); }, rhythm::errc::bad_parameter,
               {"expected a .npy file, got '"});
  ::xt::xarray<float> a = counting({10, 10});
  rhythm::xt::save_npy(dir.file("full.npy"), a);
  fs::resize_file(dir.file("full.npy"), fs::file_size(dir.file("full.npy")) - 8);
  expect_error([&] { (void)rhythm::xt::load_npy<float>(dir.file("full.npy")); }, rhythm::errc::bad_parameter,
               {"argument 'path': expected a complete .npy file", "truncated"});
}

TEST(XtensorNpy, UnwritablePathIsRejected) {
  temp_dir dir;
  ::xt::xarray<float> a = counting({2});
  const std::string path = dir.file("no_such_dir/a.npy");
  expect_error([&] { rhythm::xt::save_npy(path, a); }, rhythm::errc::bad_parameter,
               {"argument 'path': expected a writable file path, got '", "no_such_dir/a.npy'"});
}

TEST(XtensorNpy, Segments) {
  ::xt::xarray<std::int64_t> s = {{0, 3, 10}, {2, 5, 9}};
  const auto segs = rhythm::xt::to_segments(s);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[1], (rhythm::segment{2, 5, 9}));
  ::xt::xtensor<std::int32_t, 2> t = {{1, 1, 4}};
  EXPECT_EQ(rhythm::xt::to_segments(t)[0], (rhythm::segment{1, 1, 4}));
  ::xt::xarray<std::int64_t> bad = {{0, 3}, {2, 5}};
  expect_error([&] { (void)rhythm::xt::to_segments(bad); }, rhythm::errc::shape_mismatch,
               {"argument 'segments': expected [B, 3] rows of {begin, response_begin, end}, got [2, 2]"});
  ::xt::xarray<std::int64_t> flat = {0, 3, 10};
  expect_error([&] { (void)rhythm::xt::to_segments(flat, "segs"); }, rhythm::errc::shape_mismatch,
               {"argument 'segs': expected rank 2, got rank 1 (shape [3])"});
}

// ---- signals through the adapter equal the same core on rhythm::make_view ----------------------

struct maps_problem {
  static constexpr i64 B = 2, H = 4, N = 40;
  std::vector<rhythm::segment> segs{{0, 9, 40}, {4, 15, 36}};
  std::vector<float> maps;  // [B, H, N, N] row-major, NaN outside what the library reads
  rhythm::signal_params params{.window = 6, .horizon = {.lo = 3, .hi = 20}};
  maps_problem() {
    std::mt19937 rng(42);
    maps = random_maps(rng, B, H, N, segs).data;
  }
  template <class Maps>
  outputs run(const Maps& m) const {
    outputs out(B, H, N);
    rhythm::head_signals_from_maps(rhythm::exec::seq{}, m, rhythm::make_view(segs), out.span, out.waad, out.fai,
                                   params);
    return out;
  }
  ::xt::xarray<float> as_xarray() const {
    ::xt::xarray<float> a = ::xt::xarray<float>::from_shape(
        {std::size_t(B), std::size_t(H), std::size_t(N), std::size_t(N)});
    std::copy(maps.begin(), maps.end(), a.data());
    return a;
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

TEST(XtensorSignals, MapsThroughXarrayEqualMakeView) {
  maps_problem p;
  const auto want = p.run(rhythm::make_view(std::as_const(p.maps), std::array<i64, 4>{p.B, p.H, p.N, p.N}));
  const ::xt::xarray<float> maps = p.as_xarray();
  // outputs: a column-major xarray and xtensors, one with a leading extent-1 view
  ::xt::xarray<float, ::xt::layout_type::column_major> span = ::xt::zeros<float>({p.B, p.H});
  ::xt::xtensor<float, 3> waad = ::xt::zeros<float>({p.B, p.H, p.N}), fai = ::xt::zeros<float>({p.B, p.H, p.N});
  rhythm::head_signals_from_maps(rhythm::exec::par{2}, rhythm::xt::view<4>(maps, "maps"), rhythm::make_view(p.segs),
                                 rhythm::xt::view<2>(span), rhythm::xt::view(waad), rhythm::xt::view(fai), p.params);
  expect_equal_outputs(want, span, waad, fai);
  const auto r = rhythm::xt::head_signals_from_maps(rhythm::exec::seq{}, maps, p.segs, p.params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
}

TEST(XtensorSignals, MapsThroughTransposedViewEqualTheSameStrides) {
  maps_problem p;
  // the maps stored as [B, H, s, t], read as [B, H, t, s] through xt::transpose
  ::xt::xarray<float> stored = ::xt::transpose(p.as_xarray(), {0, 1, 3, 2});
  auto maps = ::xt::transpose(stored, {0, 1, 3, 2});
  const rhythm::view<const float, 4> same_strides(stored.data(), {p.B, p.H, p.N, p.N},
                                                  {p.H * p.N * p.N, p.N * p.N, 1, p.N});
  const auto want = p.run(same_strides);
  const auto r = rhythm::xt::head_signals_from_maps(rhythm::exec::par{3}, maps, p.segs, p.params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
}

TEST(XtensorSignals, SingleSequenceSliceOfABatch) {
  // one sequence of the batch through xt::view(maps, range(1, 2)): offset data, B = 1
  maps_problem p;
  ::xt::xtensor<float, 4> maps = p.as_xarray();
  auto second = ::xt::view(maps, ::xt::range(1, 2));
  std::vector<float> copy(maps.data() + p.H * p.N * p.N, maps.data() + 2 * p.H * p.N * p.N);
  outputs want(1, p.H, p.N);
  std::vector<rhythm::segment> seg{p.segs[1]};
  const auto copy_view = rhythm::make_view(std::as_const(copy), std::array<i64, 4>{1, p.H, p.N, p.N});
  rhythm::head_signals_from_maps(rhythm::exec::seq{}, copy_view, rhythm::make_view(seg), want.span, want.waad,
                                 want.fai, p.params);
  const auto r = rhythm::xt::head_signals_from_maps(rhythm::exec::seq{}, second, seg, p.params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);
}

TEST(XtensorSignals, QKAndHeadGroupsWriteIntoXtensor) {
  const i64 B = 2, H = 4, Hkv = 2, N = 30, d = 8;
  std::vector<rhythm::segment> segs{{0, 7, 30}, {2, 12, 27}};
  std::mt19937 rng(5);
  std::vector<float> q = random_floats(rng, B * H * N * d), k = random_floats(rng, B * Hkv * N * d);
  const rhythm::signal_params params{.window = 5, .horizon = {.lo = 2, .hi = 15}};
  outputs want(B, H, N);
  rhythm::head_signals_from_qk(rhythm::exec::seq{}, rhythm::make_view(std::as_const(q), std::array<i64, 4>{B, H, N, d}),
                               rhythm::make_view(std::as_const(k), std::array<i64, 4>{B, Hkv, N, d}),
                               rhythm::make_view(segs), want.span, want.waad, want.fai, params);
  ::xt::xtensor<float, 4> qt = ::xt::adapt(q, std::array<std::size_t, 4>{B, H, N, d});
  ::xt::xarray<float> kt = ::xt::adapt(k, std::vector<std::size_t>{B, Hkv, N, d});
  const auto r = rhythm::xt::head_signals_from_qk(rhythm::exec::par{2}, qt, kt, segs, params);
  expect_equal_outputs(want, r.span, r.waad, r.fai);

  ::xt::xtensor<std::uint8_t, 2> roles = ::xt::zeros<std::uint8_t>({B, H});
  rhythm::head_groups(rhythm::exec::seq{}, rhythm::xt::view(r.span), rhythm::xt::view(roles));
  std::vector<std::uint8_t> roles_v(B * H);
  rhythm::head_groups(rhythm::exec::seq{}, want.span, rhythm::make_view(roles_v, B, H));
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < H; ++h) EXPECT_EQ(roles(b, h), roles_v[b * H + h]);
}

TEST(XtensorSignals, CoreErrorsNameTheArgumentAndLeaveXtensorOutputsUntouched) {
  maps_problem p;
  const ::xt::xarray<float> maps = p.as_xarray();
  ::xt::xtensor<float, 2> span = ::xt::zeros<float>({p.B, p.H});
  ::xt::xtensor<float, 3> waad = ::xt::zeros<float>({p.B, p.H, p.N}), fai = ::xt::zeros<float>({p.B, p.H, p.N - 1});
  expect_error(
      [&] {
        rhythm::head_signals_from_maps(rhythm::exec::seq{}, rhythm::xt::view<4>(maps), rhythm::make_view(p.segs),
                                       rhythm::xt::view(span), rhythm::xt::view(waad), rhythm::xt::view(fai));
      },
      rhythm::errc::shape_mismatch, {"argument 'fai'", "got [2, 4, 39]"});
  EXPECT_EQ(::xt::amax(::xt::abs(span))(), 0.0f);
  EXPECT_EQ(::xt::amax(::xt::abs(waad))(), 0.0f);
  ::xt::xarray<float> rank3 = ::xt::zeros<float>({2, 3, 3});
  expect_error([&] { (void)rhythm::xt::head_signals_from_maps(rhythm::exec::seq{}, rank3, p.segs); },
               rhythm::errc::shape_mismatch, {"argument 'maps': expected rank 4, got rank 3 (shape [2, 3, 3])"});
}

}  // namespace
