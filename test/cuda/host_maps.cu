// Host test of the CUDA head_signals_from_maps (cuda/maps_signals.cuh), without a device: the
// kernels' RHYTHM_HOST_DEVICE pieces run on the CPU inside a serial emulation of the kernels
// (blocks, tiles, row batches, 128 threads, the warp reduce-scatter, the commit), compared with the
// CPU backend (exec::seq): values, exact zeros, error keys and their decoded messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <rhythm/cuda/maps_signals.cuh>
#include <rhythm/rhythm.hpp>

#include "test_util.hpp"

namespace {

using rt::i64;
using rhythm::segment;
using namespace rhythm::cuda::detail;
using rhythm::cuda::error_key;
using rhythm::cuda::no_error;

constexpr int R = maps_rows, W = maps_warps, L = 32;

// The device's reduce_scatter<2R, 16> over the 32 lanes of a warp: lane l ends with the sum of value l / 2.
void reduce_scatter_lanes(float (&v)[L][2 * R]) {
  int width = 2 * R;
  for (int off = 16; off >= 1; off /= 2) {
    float next[L][2 * R];
    std::copy(&v[0][0], &v[0][0] + L * 2 * R, &next[0][0]);
    for (int lane = 0; lane < L; ++lane) {
      const int partner = lane ^ off;
      const bool upper = (lane & off) != 0;
      if (width > 1) {
        const int half = width / 2;
        for (int i = 0; i < half; ++i) {
          const float sent = !upper ? v[partner][i] : v[partner][i + half];  // the partner's `send`
          const float keep = upper ? v[lane][i + half] : v[lane][i];
          next[lane][i] = keep + sent;
        }
      } else {
        next[lane][0] = v[lane][0] + v[partner][0];
      }
    }
    std::copy(&next[0][0], &next[0][0] + L * 2 * R, &v[0][0]);
    width = width > 1 ? width / 2 : 1;
  }
}

struct emulated {
  error_key slot = no_error;
  std::vector<float> span, waad, fai;  // the outputs after the commit (empty if it wrote nothing)
  rhythm::value_error error;           // what the commit records
};

// The three kernels of detail::head_signals_from_maps, serially, with the same helpers and order.
template <class T>
emulated emulate(const rhythm::maps_signal_args<T, rhythm::host_space>& a) {
  constexpr int V = 16 / sizeof(T);
  constexpr i64 C = i64(maps_threads) * V;
  const i64 B = a.maps.extent(0), H = a.maps.extent(1), N = a.maps.extent(2);
  emulated out;
  // segments kernel
  for (i64 b = 0; b < B; ++b)
    if (!a.segments(b).fits(N)) out.slot = std::min<error_key>(out.slot, error_key(b));
  // compute kernel
  std::vector<float> span_stage(B * H, -1.0f), fai_stage(B * H * N, -1.0f);
  std::vector<double> waad_acc(B * H * N, -1.0);
  if (H > 0 && N > 0)
    for (i64 item = 0; item < B * H; ++item) {
      const maps_item<T> m = maps_item_of(a, item / H, item % H);
      if (!m.seg.fits(N)) continue;
      const segment& seg = m.seg;
      double* waad = waad_acc.data() + item * N;
      double span[R] = {};
      for (i64 c0 = 0; c0 < N; c0 += C) {
        std::vector<std::array<double, V>> columns(maps_threads);
        for (auto& c : columns) c.fill(0.0);
        const bool first_tile = c0 <= seg.begin;
        const i64 t_first = std::max(seg.response_begin, c0);
        if (c0 + C > seg.begin)
          for (i64 t0 = t_first; t0 < seg.end; t0 += R) {
            float lanes[W][L][2 * R];
            for (int tid = 0; tid < maps_threads; ++tid) {
              const i64 col0 = c0 + i64(tid) * V;
              raw16 raw[R];
              for (int r = 0; r < R; ++r) raw[r] = t0 + r < seg.end ? load_keys(m, t0 + r, col0) : raw16{{0, 0, 0, 0}};
              float* v = lanes[tid / L][tid % L];
              float band[V] = {};
              for (int r = 0; r < R; ++r) {
                v[2 * r] = 0.0f, v[2 * r + 1] = 0.0f;
                if (t0 + r < seg.end) add_row_keys(m, raw[r], t0 + r, col0, v[2 * r], v[2 * r + 1], band);
              }
              for (int k = 0; k < V; ++k) columns[tid][k] += static_cast<double>(band[k]);
            }
            float partials[W * 2 * R];
            for (int w = 0; w < W; ++w) {
              reduce_scatter_lanes(lanes[w]);
              for (int lane = 0; lane < L; lane += 2) partials[w * 2 * R + lane / 2] = lanes[w][lane][0];
            }
            for (int r = 0; r < R && t0 + r < seg.end; ++r) {
              const i64 t = t0 + r;
              const double before = first_tile ? 0.0 : waad[t];
              double row_span, row_waad;
              row_of_warps(partials, r, row_span, row_waad);
              if (a.params.check_finite && !(std::isfinite(row_span) && std::isfinite(row_waad)))
                out.slot = std::min(out.slot, row_key(B, item, N, t));
              waad[t] = before + row_waad;
              span[r] += row_span;
            }
          }
        for (int tid = 0; tid < maps_threads; ++tid)
          for (int k = 0; k < V; ++k) {
            const i64 s = c0 + i64(tid) * V + k;
            if (s < N) fai_stage[item * N + s] = fai_of_column(columns[tid][k], s, seg, a.params.horizon);
          }
      }
      double total = 0;
      for (int r = 0; r < R; ++r) total += span[r];
      const i64 n = seg.response_length();
      span_stage[item] = n > 0 ? static_cast<float>(total / static_cast<double>(n)) : 0.0f;
    }
  // commit kernel
  if (out.slot != no_error) {
    out.error = maps_signal_error(out.slot, a.segments, H, N);
    return out;
  }
  out.span.resize(B * H), out.waad.resize(B * H * N), out.fai.resize(B * H * N);
  for (i64 i = 0; i < B * H; ++i) out.span[i] = N > 0 ? span_stage[i] : 0.0f;
  for (i64 i = 0; i < B * H * N; ++i) {
    const i64 item = i / N, t = i % N, b = item / H;
    out.waad[i] = a.segments(b).in_response(t) ? static_cast<float>(waad_acc[i]) : 0.0f;
    out.fai[i] = fai_stage[i];
  }
  return out;
}

// Maps [B,H,N,N] of element type T in one of several memory layouts, over a float source.
enum class layout { contiguous, transposed, padded_rows, offset };

template <class T>
struct maps_of {
  std::vector<T> storage;
  rhythm::view<const T, 4> view;
  maps_of(const std::vector<float>& src, i64 B, i64 H, i64 N, layout how) {
    i64 offset = 0, row = N;
    if (how == layout::offset) offset = 1;
    if (how == layout::padded_rows) row = N + 3;
    const i64 head = N * row;
    storage.assign(offset + B * H * head + 8, T(std::numeric_limits<float>::quiet_NaN()));
    std::array<i64, 4> strides{H * head, head, row, 1};
    if (how == layout::transposed) strides = {H * head, head, 1, N};  // A[t,s] at s * N + t
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h)
        for (i64 t = 0; t < N; ++t)
          for (i64 s = 0; s < N; ++s)
            storage[offset + b * strides[0] + h * strides[1] + t * strides[2] + s * strides[3]] =
                T(src[((b * H + h) * N + t) * N + s]);
    view = rhythm::view<const T, 4>(storage.data() + offset, {B, H, N, N}, strides);
  }
};

struct cpu_result {
  std::vector<float> span, waad, fai;
  bool threw = false;
  rhythm::errc code{};
  std::string message;
};

template <class T>
cpu_result run_cpu(const rhythm::view<const T, 4>& maps, const std::vector<segment>& segs,
                   const rhythm::signal_params& params) {
  const i64 B = maps.extent(0), H = maps.extent(1), N = maps.extent(2);
  cpu_result r;
  r.span.assign(B * H + 1, -7.0f), r.waad.assign(B * H * N + 1, -7.0f), r.fai.assign(B * H * N + 1, -7.0f);
  const i64 h1 = std::max<i64>(H, 1), n1 = std::max<i64>(N, 1);  // non-zero strides also for H = 0 or N = 0
  try {
    rhythm::head_signals_from_maps(rhythm::exec::seq{}, maps, rhythm::make_view(segs),
                                   rhythm::view<float, 2>(r.span.data(), {B, H}, {h1, 1}),
                                   rhythm::view<float, 3>(r.waad.data(), {B, H, N}, {h1 * n1, n1, 1}),
                                   rhythm::view<float, 3>(r.fai.data(), {B, H, N}, {h1 * n1, n1, 1}), params);
  } catch (const rhythm::error& e) {
    r.threw = true, r.code = e.code(), r.message = e.what();
  }
  return r;
}

template <class T>
rhythm::maps_signal_args<T, rhythm::host_space> args_of(const rhythm::view<const T, 4>& maps,
                                                         const std::vector<segment>& segs,
                                                         const rhythm::signal_params& params) {
  rhythm::maps_signal_args<T, rhythm::host_space> a{};
  a.maps = maps, a.segments = rhythm::make_view(segs), a.params = params;
  return a;
}

// Emulation against the CPU backend: same error (code and message) or the same values within
// 1e-5 max(1, |cpu|), with exact zeros outside the response (WAAD) and the eligible keys (FAI).
template <class T>
void expect_match(const rhythm::view<const T, 4>& maps, const std::vector<segment>& segs,
                  const rhythm::signal_params& params, const std::string& what) {
  SCOPED_TRACE(what);
  const i64 B = maps.extent(0), H = maps.extent(1), N = maps.extent(2);
  const cpu_result cpu = run_cpu(maps, segs, params);
  const emulated gpu = emulate(args_of(maps, segs, params));
  ASSERT_EQ(cpu.threw, gpu.slot != no_error) << cpu.message;
  if (cpu.threw) {
    try {
      rhythm::raise(gpu.error);
      ADD_FAILURE() << "the decoded key raised nothing";
    } catch (const rhythm::error& e) {
      EXPECT_EQ(e.code(), cpu.code);
      EXPECT_EQ(std::string(e.what()), cpu.message);
    }
    return;
  }
  for (i64 i = 0; i < B * H; ++i) {
    EXPECT_TRUE(rt::close(gpu.span[i], cpu.span[i], 1e-5)) << "span " << i;
    if (segs[i / H].response_length() == 0) EXPECT_EQ(gpu.span[i], 0.0f);
  }
  int bad = 0;
  for (i64 i = 0; i < B * H * N && bad < 5; ++i) {
    const i64 b = i / N / H, t = i % N;
    const segment& s = segs[b];
    const bool ok_w = rt::close(gpu.waad[i], cpu.waad[i], 1e-5), ok_f = rt::close(gpu.fai[i], cpu.fai[i], 1e-5);
    EXPECT_TRUE(ok_w) << "waad " << i << " t " << t;
    EXPECT_TRUE(ok_f) << "fai " << i << " s " << t;
    if (!s.in_response(t)) EXPECT_EQ(gpu.waad[i], 0.0f) << i;
    if (!rhythm::fai_eligible(t, s.response_begin, s.end, params.horizon)) EXPECT_EQ(gpu.fai[i], 0.0f) << i;
    bad += !(ok_w && ok_f);
  }
}

std::vector<segment> random_segments(std::mt19937& rng, i64 B, i64 N) {
  std::vector<segment> segs;
  for (i64 b = 0; b < B; ++b) segs.push_back(rt::random_segment(rng, N));
  return segs;
}

std::vector<rhythm::signal_params> param_sets(i64 N) {
  std::vector<rhythm::signal_params> ps(6);
  ps[1].window = N + 5, ps[1].horizon = {0, rhythm::unbounded_horizon};  // W > N, H_lo = 0, H_hi unbounded
  ps[2].window = 1, ps[2].horizon = {0, 0};
  ps[3].window = 3, ps[3].horizon = {3, 3};
  ps[4].window = std::numeric_limits<i64>::max(), ps[4].horizon = {N + 10, rhythm::unbounded_horizon};  // no receivers
  ps[5].window = 37, ps[5].horizon = {1, 700};
  return ps;
}

template <class T>
class HostMaps : public ::testing::Test {};
using element_types = ::testing::Types<float, rhythm::bfloat16, rhythm::half>;
TYPED_TEST_SUITE(HostMaps, element_types);

TYPED_TEST(HostMaps, RandomMapsMatchCpu) {
  using T = TypeParam;
  std::mt19937 rng(20240611);
  for (const i64 N : {1, 2, 7, 37, 64, 300}) {
    const i64 B = 3, H = 2;
    auto segs = random_segments(rng, B, N);
    if (N > 4) segs[1] = {N / 4, N / 2, N / 2};  // an empty response after a prompt
    const rt::random_maps src(rng, B, H, N, segs);
    for (const layout how : {layout::contiguous, layout::transposed, layout::padded_rows, layout::offset}) {
      const maps_of<T> maps(src.data, B, H, N, how);
      const auto ps = param_sets(N);
      for (std::size_t p = 0; p < ps.size(); ++p)
        expect_match<T>(maps.view, segs, ps[p],
                        "N " + std::to_string(N) + " layout " + std::to_string(int(how)) + " params " + std::to_string(p));
    }
  }
}

// Several column tiles (C = 512 float or 1024 16-bit keys), long rows, both padding sides.
TYPED_TEST(HostMaps, ManyTilesMatchCpu) {
  using T = TypeParam;
  std::mt19937 rng(7);
  const i64 N = 1100, B = 3, H = 1;
  const std::vector<segment> segs{{0, 5, N}, {530, 600, 1090}, {13, 1025, 1099}};
  const rt::random_maps src(rng, B, H, N, segs);
  for (const layout how : {layout::contiguous, layout::offset}) {
    const maps_of<T> maps(src.data, B, H, N, how);
    for (std::size_t p : {0, 1, 5}) expect_match<T>(maps.view, segs, param_sets(N)[p], "layout " + std::to_string(int(how)) + " params " + std::to_string(p));
  }
}

TYPED_TEST(HostMaps, EdgeSegments) {
  using T = TypeParam;
  std::mt19937 rng(3);
  const i64 N = 40, H = 3;
  const std::vector<segment> segs{{0, 0, 0}, {0, 0, 1}, {0, 39, 40}, {40, 40, 40}, {5, 5, 6}, {0, 0, N}, {17, 18, 33}};
  const i64 B = static_cast<i64>(segs.size());
  const rt::random_maps src(rng, B, H, N, segs);
  const maps_of<T> maps(src.data, B, H, N, layout::contiguous);
  for (const auto& p : param_sets(N)) expect_match<T>(maps.view, segs, p, "edge segments");
}

// All-equal rows (ties, uniform attention) and a map that is 1 on the diagonal.
TYPED_TEST(HostMaps, HandMadeMaps) {
  using T = TypeParam;
  const i64 N = 50, B = 2, H = 2;
  const std::vector<segment> segs{{0, 10, N}, {4, 4, 45}};
  std::vector<float> src(B * H * N * N, std::numeric_limits<float>::quiet_NaN());
  for (i64 b = 0; b < B; ++b)
    for (i64 t = segs[b].begin; t < segs[b].end; ++t)
      for (i64 s = segs[b].begin; s <= t; ++s) {
        src[((b * H + 0) * N + t) * N + s] = 1.0f / float(t - segs[b].begin + 1);
        src[((b * H + 1) * N + t) * N + s] = s == t ? 1.0f : 0.0f;
      }
  const maps_of<T> maps(src, B, H, N, layout::contiguous);
  for (const auto& p : param_sets(N)) expect_match<T>(maps.view, segs, p, "hand-made");
}

// A NaN or Inf among the keys [begin, t] of a response row: the first (b, h, t) in order, decoded
// into the CPU's message; values outside the keys read (NaN-filled by random_maps) are ignored.
TYPED_TEST(HostMaps, NonFiniteRowKeyAndMessage) {
  using T = TypeParam;
  std::mt19937 rng(11);
  const i64 N = 600, B = 3, H = 2;
  const std::vector<segment> segs{{0, 3, 500}, {20, 30, 590}, {0, 0, N}};
  const rt::random_maps src(rng, B, H, N, segs);
  const auto at = [&](i64 b, i64 h, i64 t, i64 s) { return ((b * H + h) * N + t) * N + s; };
  struct plant { i64 b, h, t, s; float x; };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<std::vector<plant>> cases{
      {{1, 1, 31, 20, nan}, {2, 0, 5, 0, nan}},            // first key of a row; a later item too
      {{1, 0, 588, 588, inf}, {1, 1, 40, 25, -inf}},       // the diagonal; a later head
      {{0, 1, 400, 300, inf}, {0, 1, 499, 470, nan}},      // the earlier row wins within an item
      {{2, 1, 599, 599, -inf}},                            // the last row and key of the batch
      {{0, 0, 499, 0, inf}, {0, 0, 499, 1, -inf}},         // Inf - Inf in one row
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    std::vector<float> data = src.data;
    for (const plant& p : cases[c]) data[at(p.b, p.h, p.t, p.s)] = p.x;
    for (const layout how : {layout::contiguous, layout::transposed, layout::offset}) {
      const maps_of<T> maps(data, B, H, N, how);
      rhythm::signal_params params;
      expect_match<T>(maps.view, segs, params, "case " + std::to_string(c) + " layout " + std::to_string(int(how)));
      const emulated gpu = emulate(args_of(maps.view, segs, params));
      ASSERT_NE(gpu.slot, no_error);
      const plant& first = cases[c][0];
      EXPECT_EQ(gpu.slot, row_key(B, first.b * H + first.h, N, first.t));
      params.check_finite = false;  // nothing reported, outputs written
      const emulated unchecked = emulate(args_of(maps.view, segs, params));
      EXPECT_EQ(unchecked.slot, no_error);
      EXPECT_EQ(unchecked.span.size(), size_t(B * H));
    }
  }
  // NaN in rows and keys the CPU does not read: the prompt rows, padding, the upper triangle.
  std::vector<float> data = src.data;
  data[at(0, 0, 2, 1)] = nan, data[at(1, 0, 40, 10)] = inf, data[at(1, 1, 595, 590)] = nan, data[at(2, 1, 10, 11)] = nan;
  const maps_of<T> maps(data, B, H, N, layout::contiguous);
  expect_match<T>(maps.view, segs, {}, "unread NaN");
  EXPECT_EQ(emulate(args_of(maps.view, segs, rhythm::signal_params{})).slot, no_error);
}

// A bad segment comes first (key b), before any NaN, decoded against N = maps.extent(2).
TYPED_TEST(HostMaps, BadSegmentKeyAndMessage) {
  using T = TypeParam;
  std::mt19937 rng(5);
  const i64 N = 30, B = 4, H = 2;
  std::vector<segment> segs{{0, 2, 30}, {1, 3, 20}, {0, 4, 25}, {2, 2, 9}};
  rt::random_maps src(rng, B, H, N, segs);
  src.data[((0 * H + 0) * N + 5) * N + 1] = std::numeric_limits<float>::quiet_NaN();  // a NaN in item 0 too
  const maps_of<T> maps(src.data, B, H, N, layout::contiguous);
  for (const segment bad : {segment{0, 4, 31}, segment{5, 4, 9}, segment{-1, 0, 3}, segment{0, 10, 9}}) {
    std::vector<segment> s = segs;
    s[2] = bad, s[3] = {0, 40, 41};  // two bad ones: the first is reported
    expect_match<T>(maps.view, s, {}, "bad segment");
    EXPECT_EQ(emulate(args_of(maps.view, s, rhythm::signal_params{})).slot, error_key(2));
  }
  // With H = 0 the segments are still checked.
  const rhythm::view<const T, 4> no_heads(maps.view.data_handle(), {B, 0, N, N});
  std::vector<segment> s = segs;
  s[1] = {0, 0, N + 1};
  expect_match<T>(no_heads, s, {}, "H = 0");
  EXPECT_EQ(emulate(args_of(no_heads, s, rhythm::signal_params{})).slot, error_key(1));
  // N = 0: empty segments are valid and every span is 0; a non-empty one is out of range.
  const rhythm::view<const T, 4> no_tokens(maps.view.data_handle(), {B, H, 0, 0});
  std::vector<segment> empty(B, segment{0, 0, 0});
  expect_match<T>(no_tokens, empty, {}, "N = 0");
  EXPECT_EQ(emulate(args_of(no_tokens, empty, rhythm::signal_params{})).span, std::vector<float>(B * H, 0.0f));
  empty[3] = {0, 0, 1};
  expect_match<T>(no_tokens, empty, {}, "N = 0, bad segment");
  EXPECT_EQ(emulate(args_of(no_tokens, empty, rhythm::signal_params{})).slot, error_key(3));
}

// The per-thread pieces: vector and element loads agree; element conversion matches to_float.
TYPED_TEST(HostMaps, LoadPaths) {
  using T = TypeParam;
  constexpr int V = 16 / sizeof(T);
  std::mt19937 rng(2);
  const i64 N = 64;
  std::vector<float> src(N * N);
  for (auto& x : src) x = std::uniform_real_distribution<float>(-2, 2)(rng);
  const maps_of<T> contiguous(src, 1, 1, N, layout::contiguous), transposed(src, 1, 1, N, layout::transposed);
  const rhythm::signal_params params;
  for (const segment seg : {segment{0, 0, N}, segment{3, 9, 61}}) {
    const std::vector<segment> segs{seg};
    const auto a = args_of(contiguous.view, segs, params), b = args_of(transposed.view, segs, params);
    const maps_item<T> mc = maps_item_of(a, 0, 0), mt = maps_item_of(b, 0, 0);
    for (i64 t = seg.response_begin; t < seg.end; ++t)
      for (i64 col0 = 0; col0 < N; col0 += V) {
        const raw16 rv = load_keys(mc, t, col0), rs = load_keys(mt, t, col0);
        float sv = 0, wv = 0, ss = 0, ws = 0, cv[V] = {}, cs[V] = {};
        add_row_keys(mc, rv, t, col0, sv, wv, cv);
        add_row_keys(mt, rs, t, col0, ss, ws, cs);
        EXPECT_EQ(sv, ss);
        EXPECT_EQ(wv, ws);
        for (int k = 0; k < V; ++k) {
          EXPECT_EQ(cv[k], cs[k]);
          const i64 s = col0 + k;
          if (s >= seg.begin && s <= t) EXPECT_EQ(element<T>(rs, k), rhythm::to_float(T(src[t * N + s])));
          else EXPECT_EQ(element<T>(rs, k), 0.0f);
        }
      }
  }
}

TEST(HostMapsWorkspace, SizeBound) {
  for (const i64 B : {1, 2, 7})
    for (const i64 H : {1, 3, 32})
      for (const i64 N : {1, 5, 64, 1000, 4096}) {
        const std::size_t bytes = rhythm::cuda::head_signals_from_maps_workspace_size(B, H, N);
        EXPECT_LE(bytes, std::size_t(16 * B * H * N + 1024)) << B << " " << H << " " << N;
        EXPECT_GE(bytes, std::size_t(12 * B * H * N + 4 * B * H + 8));
      }
  EXPECT_LE(rhythm::cuda::head_signals_from_maps_workspace_size(3, 4, 0), std::size_t(1024));
  EXPECT_LE(rhythm::cuda::head_signals_from_maps_workspace_size(0, 0, 0), std::size_t(1024));
}

}  // namespace
