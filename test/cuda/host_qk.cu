// Host test of the CUDA head_signals_from_qk (rhythm/cuda/qk_signals.cuh), without a device:
//   - the m16n8k16 fragment index functions against the PTX ISA's documented layouts, by an
//     emulated warp whose product must equal a plain matrix product;
//   - a serial emulation of the kernels' arithmetic (the same per-lane helpers, tiles, quad
//     combine order and reductions as pass 1, pass 2 and the commit) against the CPU backend;
//   - the error keys (check units, logits) and their decode against the CPU's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <rhythm/cuda/mma.cuh>
#include <rhythm/cuda/qk_signals.cuh>
#include <rhythm/rhythm.hpp>

namespace {

using i64 = std::int64_t;
namespace qk = rhythm::cuda::detail::qk;
namespace mma = rhythm::cuda::detail::mma;

// ---- fragments --------------------------------------------------------------------------

// The PTX ISA's layouts, written out as in its figures (groupID, threadID_in_group), independently
// of mma.cuh: A element a_i, B element b_i, C element c_i of `lane`.
void documented_a(int lane, int i, int& row, int& col) {
  const int group = lane >> 2, tid = lane % 4;
  row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
  col = i < 4 ? tid * 2 + (i & 1) : tid * 2 + (i & 1) + 8;
}
void documented_b(int lane, int i, int& row, int& col) {
  const int group = lane >> 2, tid = lane % 4;
  row = i < 2 ? tid * 2 + (i & 1) : tid * 2 + (i & 1) + 8;
  col = group;
}
void documented_c(int lane, int i, int& row, int& col) {
  const int group = lane >> 2, tid = lane % 4;
  row = i < 2 ? group : group + 8;
  col = tid * 2 + (i & 1);
}

template <class T>
float lo16(std::uint32_t r) {
  T x;
  x.bits = static_cast<std::uint16_t>(r & 0xffffu);
  return rhythm::to_float(x);
}
template <class T>
float hi16(std::uint32_t r) {
  T x;
  x.bits = static_cast<std::uint16_t>(r >> 16);
  return rhythm::to_float(x);
}

// An emulated warp: every lane loads its A and B fragments from row-major tiles with mma.cuh's
// loaders (padded pitch, offsets), the product is formed from the registers by the documented
// layouts, and each lane's C elements, placed by mma.cuh's c_index, must equal A B.
template <class T>
void check_warp_product(std::mt19937& rng) {
  constexpr int pitch = 40, row0 = 16, k0 = 16, n0 = 8;
  std::uniform_int_distribution<int> small(-8, 8);
  std::vector<T> at(48 * pitch), bt(24 * pitch);  // A tile [rows][k]; B^T tile [n][k]
  for (auto& x : at) x = T(static_cast<float>(small(rng)) / 4.0f);
  for (auto& x : bt) x = T(static_cast<float>(small(rng)) / 4.0f);
  const auto A = [&](int r, int c) { return rhythm::to_float(at[(row0 + r) * pitch + k0 + c]); };
  const auto Bm = [&](int k, int n) { return rhythm::to_float(bt[(n0 + n) * pitch + k0 + k]); };
  float a_re[16][16] = {}, b_re[16][8] = {};
  int seen_a[16][16] = {}, seen_b[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    std::uint32_t a[4], b[2];
    mma::load_a(at.data(), pitch, row0, k0, lane, a);
    mma::load_b_rows(bt.data(), pitch, n0, k0, lane, b);
    for (int i = 0; i < 8; ++i) {
      int r, c;
      documented_a(lane, i, r, c);
      a_re[r][c] = i % 2 ? hi16<T>(a[i / 2]) : lo16<T>(a[i / 2]);
      ++seen_a[r][c];
      const mma::frag_index x = mma::a_index(lane, i);
      EXPECT_EQ(x.row, r);
      EXPECT_EQ(x.col, c);
    }
    for (int i = 0; i < 4; ++i) {
      int k, n;
      documented_b(lane, i, k, n);
      b_re[k][n] = i % 2 ? hi16<T>(b[i / 2]) : lo16<T>(b[i / 2]);
      ++seen_b[k][n];
      const mma::frag_index x = mma::b_index(lane, i);
      EXPECT_EQ(x.row, k);
      EXPECT_EQ(x.col, n);
    }
  }
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      ASSERT_EQ(seen_a[r][c], 1);
      ASSERT_EQ(a_re[r][c], A(r, c)) << r << " " << c;
    }
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < 8; ++n) {
      ASSERT_EQ(seen_b[k][n], 1);
      ASSERT_EQ(b_re[k][n], Bm(k, n)) << k << " " << n;
    }
  // the warp's product from the registers, handed out by the documented C layout
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      int r, c;
      documented_c(lane, i, r, c);
      float d = 0;
      for (int k = 0; k < 16; ++k) d += a_re[r][k] * b_re[k][c];
      const mma::frag_index x = mma::c_index(lane, i);
      float plain = 0;
      for (int k = 0; k < 16; ++k) plain += A(x.row, k) * Bm(k, x.col);
      EXPECT_EQ(d, plain) << "lane " << lane << " c" << i;
    }
  // the kernels' lane_column is the column of C element 2 (i / 2) + i % 2 of tile i / 2
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 16; ++i)
      EXPECT_EQ(qk::lane_column(lane % 4, i), 8 * (i / 2) + mma::c_index(lane, i % 2).col);
}

TEST(HostQk, FragmentLayoutsMatchThePtxIsa) {
  std::mt19937 rng(7);
  for (int rep = 0; rep < 4; ++rep) {
    check_warp_product<rhythm::bfloat16>(rng);
    check_warp_product<rhythm::half>(rng);
  }
}

// ---- emulation of the kernels -----------------------------------------------------------

template <class T>
using dargs = rhythm::qk_signal_args<T, rhythm::device_space>;

struct emulated {
  std::vector<float> span, waad, fai;
  rhythm::cuda::error_key key = rhythm::cuda::no_error;
};

// The score the kernels compute for query row t of head h and key s: float: unfused f32
// multiply-add over c of the pre-scaled q (as the CPU); 16-bit: f32 sum of the exact products (what mma accumulates, in some
// order), scaled afterwards.
template <class T>
float score(const dargs<T>& a, float scale, i64 b, i64 h, i64 t, i64 kvh, i64 s) {
  const i64 d = a.q.extent(3);
  float acc = 0;
  for (i64 c = 0; c < d; ++c) {
    const float qv = rhythm::to_float(a.q(b, h, t, c)), kv = rhythm::to_float(a.k(b, kvh, s, c));
    if constexpr (std::is_same_v<T, float>) acc += (qv * scale) * kv;  // unfused, as the kernel
    else acc = std::fma(qv, kv, acc);
  }
  return std::is_same_v<T, float> ? acc : acc * scale;
}

template <class T>
emulated emulate(const dargs<T>& a) {
  const i64 B = a.q.extent(0), Hq = a.q.extent(1), Hkv = a.k.extent(1), N = a.q.extent(2), d = a.q.extent(3);
  const rhythm::signal_params& p = a.params;
  emulated out;
  out.span.assign(B * Hq, 0.0f), out.waad.assign(B * Hq * N, 0.0f), out.fai.assign(B * Hq * N, 0.0f);
  const auto report = [&](rhythm::cuda::error_key k) { out.key = std::min(out.key, k); };
  // check kernel
  const i64 units = qk::check_units(B, Hq, Hkv, N, p.check_finite);
  for (i64 u = 0; u < units; ++u) {
    rhythm::cuda::error_key k;
    if (qk::check_unit(a, u, 0, 1, k)) report(k);
  }
  if (Hq == 0 || N == 0) return out;
  const float scale = qk::score_scale(p, d), W = static_cast<float>(p.window);
  const int lo = static_cast<int>(std::min<i64>(p.horizon.lo, N + 1)), hi = static_cast<int>(std::min(p.horizon.hi, N));
  const i64 G = Hq / Hkv;
  std::vector<float> lse(B * Hq * N), span_term(B * Hq * N);
  for (i64 b = 0; b < B; ++b) {
    const rhythm::segment seg = a.segments(b);
    if (!seg.fits(N)) continue;
    for (i64 h = 0; h < Hq; ++h) {
      const i64 item = b * Hq + h, kvh = h / G;
      // pass 1
      for (i64 t = seg.response_begin; t < seg.end; ++t) {
        qk::row_state st;
        for (i64 k0 = seg.begin; k0 <= t; k0 += qk::key_tile) {
          float sc[64] = {};
          for (int j = 0; j < 64 && k0 + j <= t; ++j) sc[j] = score(a, scale, b, h, t, kvh, k0 + j);
          const int last = static_cast<int>(t - k0);
          float lane_s[4][16], lm[4], l[4], pp[4], w[4];
          for (int ql = 0; ql < 4; ++ql) {
            for (int i = 0; i < 16; ++i) lane_s[ql][i] = sc[qk::lane_column(ql, i)];
            lm[ql] = qk::lane_max(lane_s[ql], ql, last);
          }
          const float m_new = std::fmax(st.m, std::fmax(std::fmax(lm[0], lm[1]), std::fmax(lm[2], lm[3])));
          for (int ql = 0; ql < 4; ++ql) qk::lane_sums(lane_s[ql], ql, last, m_new, W, l[ql], pp[ql], w[ql]);
          qk::row_update(st, m_new, qk::quad_order(l[0], l[1], l[2], l[3]), qk::quad_order(pp[0], pp[1], pp[2], pp[3]),
                         qk::quad_order(w[0], w[1], w[2], w[3]), k0 - seg.begin);
        }
        float ls, wd, sp;
        qk::row_finish(st, t - seg.begin, ls, wd, sp);
        lse[item * N + t] = ls, out.waad[item * N + t] = wd, span_term[item * N + t] = sp;
        if (!rhythm::detail::is_finite_bits(ls)) report(qk::row_key(B, N, item, 2, t));
      }
      // pass 2
      for (i64 s0 = seg.begin; s0 < seg.end; s0 += qk::block_rows) {
        const i64 t_first = std::max(seg.response_begin, s0 + lo), t_last = std::min(seg.end - 1, s0 + 63 + hi);
        if (t_first > t_last) continue;
        for (i64 key = s0; key < std::min(seg.end, s0 + 64); ++key) {
          double col[4] = {};
          for (i64 tq0 = t_first; tq0 <= t_last; tq0 += qk::query_tile) {
            float sc[64] = {}, lt[64] = {};
            const int cols = static_cast<int>(std::min<i64>(64, t_last - tq0 + 1));
            for (int j = 0; j < cols; ++j) sc[j] = score(a, scale, b, h, tq0 + j, kvh, key), lt[j] = lse[item * N + tq0 + j];
            for (int ql = 0; ql < 4; ++ql) {
              float lane_s[16];
              for (int i = 0; i < 16; ++i) lane_s[i] = sc[qk::lane_column(ql, i)];
              col[ql] += qk::lane_band(lane_s, ql, lt, static_cast<int>(tq0 - key), lo, hi, cols);
            }
          }
          const i64 receivers = rhythm::detail::fai_receiver_count(key, seg.response_begin, seg.end, p.horizon);
          if (receivers > 0)
            out.fai[item * N + key] = static_cast<float>(qk::quad_order(col[0], col[1], col[2], col[3]) / double(receivers));
        }
      }
      // commit: thread sums then the tree
      double partial[qk::commit_threads] = {};
      for (int th = 0; th < qk::commit_threads; ++th)
        for (i64 t = seg.response_begin + th; t < seg.end; t += qk::commit_threads) partial[th] += span_term[item * N + t];
      for (int half = qk::commit_threads / 2; half > 0; half /= 2)
        for (int th = 0; th < half; ++th) partial[th] += partial[th + half];
      if (seg.end > seg.response_begin) out.span[item] = static_cast<float>(partial[0] / double(seg.response_length()));
      for (i64 t = 0; t < N; ++t) {
        if (!seg.in_response(t)) out.waad[item * N + t] = 0.0f;
        const bool eligible = t >= seg.begin && t < seg.end &&
                              rhythm::detail::fai_receiver_count(t, seg.response_begin, seg.end, p.horizon) > 0;
        if (!eligible) out.fai[item * N + t] = 0.0f;
      }
    }
  }
  return out;
}

// ---- cases ------------------------------------------------------------------------------

struct problem {
  i64 B, Hq, Hkv, N, d;
  std::vector<rhythm::segment> segs;
  rhythm::signal_params params;
  double sd = 1.0;  // of q and k entries
};

template <class T>
struct inputs {
  std::vector<T> q, k;
  std::vector<rhythm::segment> segs;
};

template <class T>
inputs<T> make_inputs(const problem& pr, std::mt19937& rng) {
  inputs<T> in;
  std::normal_distribution<float> g(0.0f, static_cast<float>(pr.sd));
  in.q.resize(pr.B * pr.Hq * pr.N * pr.d), in.k.resize(pr.B * pr.Hkv * pr.N * pr.d);
  for (auto& x : in.q) x = T(g(rng));
  for (auto& x : in.k) x = T(g(rng));
  in.segs = pr.segs;
  return in;
}

template <class T>
dargs<T> device_args(const problem& pr, const inputs<T>& in) {
  return {rhythm::view<const T, 4, rhythm::device_space>(in.q.data(), {pr.B, pr.Hq, pr.N, pr.d}),
          rhythm::view<const T, 4, rhythm::device_space>(in.k.data(), {pr.B, pr.Hkv, pr.N, pr.d}),
          rhythm::view<const rhythm::segment, 1, rhythm::device_space>(in.segs.data(), {pr.B}),
          {},
          {},
          {},
          pr.params};
}

struct cpu_result {
  std::vector<float> span, waad, fai;
  std::optional<rhythm::error> err;
};

template <class T>
cpu_result run_cpu(const problem& pr, const inputs<T>& in) {
  cpu_result r;
  r.span.assign(pr.B * pr.Hq, -1.0f), r.waad.assign(pr.B * pr.Hq * pr.N, -1.0f), r.fai.assign(pr.B * pr.Hq * pr.N, -1.0f);
  rhythm::view<const T, 4> q(in.q.data(), {pr.B, pr.Hq, pr.N, pr.d}), k(in.k.data(), {pr.B, pr.Hkv, pr.N, pr.d});
  rhythm::view<const rhythm::segment, 1> s(in.segs.data(), {pr.B});
  rhythm::view<float, 2> span(r.span.data(), {pr.B, pr.Hq});
  rhythm::view<float, 3> waad(r.waad.data(), {pr.B, pr.Hq, pr.N}), fai(r.fai.data(), {pr.B, pr.Hq, pr.N});
  // The CPU kernel's 4-lane baseline, whose arithmetic (no FMA) the emulated device kernel shares: the
  // wider sets with FMA land closer to the double reference (9e-6 against 1.2e-5 on the extreme-logit
  // cases), so against them the emulation differs by both errors; QKKernelIsa checks those sets.
  rhythm::cpu::force_kernel_isa(rhythm::cpu::kernel_isa::baseline);
  try {
    rhythm::head_signals_from_qk(rhythm::exec::seq{}, q, k, s, span, waad, fai, pr.params);
  } catch (const rhythm::error& e) {
    r.err = e;
  }
  rhythm::cpu::force_kernel_isa(std::nullopt);
  return r;
}

double max_rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - double(want[i])) / std::max(1.0, std::abs(double(want[i]))));
  return worst;
}

// WAAD in double from the softmax over the same float-rounded inputs (diagnostics).
template <class T>
std::vector<float> reference_waad(const problem& pr, const inputs<T>& in) {
  std::vector<float> w(pr.B * pr.Hq * pr.N, 0.0f);
  const double scale = double(qk::score_scale(pr.params, pr.d));
  for (i64 b = 0; b < pr.B; ++b)
    for (i64 h = 0; h < pr.Hq; ++h) {
      const auto sg = in.segs[b];
      const i64 kvh = h / (pr.Hq / pr.Hkv);
      for (i64 t = sg.response_begin; t < sg.end; ++t) {
        std::vector<double> sc;
        double mx = -1e300;
        for (i64 s = sg.begin; s <= t; ++s) {
          double acc = 0;
          for (i64 c = 0; c < pr.d; ++c)
            acc += double(rhythm::to_float(in.q[((b * pr.Hq + h) * pr.N + t) * pr.d + c])) *
                   double(rhythm::to_float(in.k[((b * pr.Hkv + kvh) * pr.N + s) * pr.d + c]));
          sc.push_back(acc * scale);
          mx = std::max(mx, acc * scale);
        }
        double l = 0, ww = 0;
        for (i64 s = sg.begin; s <= t; ++s) {
          const double e = std::exp2(sc[s - sg.begin] - mx);
          l += e, ww += e * double(std::min<i64>(t - s, pr.params.window));
        }
        w[(b * pr.Hq + h) * pr.N + t] = float(ww / l);
      }
    }
  return w;
}

template <class T>
void expect_matches_cpu(const problem& pr, std::uint32_t seed, double* worst = nullptr, double tol = 1e-5) {
  std::mt19937 rng(seed);
  const inputs<T> in = make_inputs<T>(pr, rng);
  const cpu_result cpu = run_cpu(pr, in);
  ASSERT_FALSE(cpu.err) << cpu.err->what();
  const emulated em = emulate(device_args(pr, in));
  ASSERT_EQ(em.key, rhythm::cuda::no_error);
  const double es = max_rel_error(em.span, cpu.span), ew = max_rel_error(em.waad, cpu.waad),
               ef = max_rel_error(em.fai, cpu.fai);
  if (std::max({es, ew, ef}) > tol) {
    const auto ref = reference_waad(pr, in);
    std::printf("case W=%lld lo=%lld hi=%lld sd=%g d=%lld N=%lld: |emu-ref| %.3g, |cpu-ref| %.3g\n", (long long)pr.params.window,
                (long long)pr.params.horizon.lo, (long long)pr.params.horizon.hi, pr.sd, (long long)pr.d, (long long)pr.N,
                max_rel_error(em.waad, ref), max_rel_error(cpu.waad, ref));
  }
  EXPECT_LE(es, tol) << "span";
  EXPECT_LE(ew, tol) << "waad";
  EXPECT_LE(ef, tol) << "fai";
  if (worst) *worst = std::max({*worst, es, ew, ef});
}

// Segments covering the edge cases: left and right padding, no prompt, empty response, length 1,
// full length, and random ones.
std::vector<rhythm::segment> segments_for(i64 B, i64 N, std::mt19937& rng) {
  std::vector<rhythm::segment> s;
  const std::vector<rhythm::segment> fixed = {
      {0, 0, N}, {N / 3, N / 2, N}, {0, N / 4, N - N / 5}, {2, 2, N - 1}, {N / 2, N - 1, N}, {1, 5, 5}, {0, 0, 1}};
  for (i64 b = 0; b < B; ++b) {
    rhythm::segment x;
    if (b < static_cast<i64>(fixed.size())) x = fixed[b];
    else {
      std::uniform_int_distribution<i64> pos(0, N);
      i64 v[3] = {pos(rng), pos(rng), pos(rng)};
      std::sort(v, v + 3);
      x = {v[0], v[1], v[2]};
    }
    x.end = std::min(x.end, N), x.response_begin = std::min(x.response_begin, x.end), x.begin = std::min(x.begin, x.response_begin);
    s.push_back(x);
  }
  return s;
}

template <class T>
void sweep(const char* name) {
  std::mt19937 rng(2024);
  double worst = 0;
  int cases = 0;
  for (const i64 G : {1, 4, 8})
    for (const i64 d : {3, 64, 65, 128})
      for (const i64 N : {1, 70, 100}) {
        if (N == 1 && d != 3) continue;
        problem pr{2, 2 * G, 2, N, d, {}, {}, 1.0};
        if (G == 8) pr.Hq = 8, pr.Hkv = 1;
        pr.segs = segments_for(pr.B, N, rng);
        expect_matches_cpu<T>(pr, 11 + cases, &worst);
        ++cases;
      }
  // parameters: unbounded H_hi, H_lo = 0, W = 1 and W > key tile, explicit scale, larger logits
  const std::vector<rhythm::signal_params> params = {
      {10, {10, rhythm::unbounded_horizon}, 0.0f, true}, {1, {0, 0}, 0.0f, true},
      {70, {0, 5}, 0.0f, true},                           {10, {3, 200}, 0.5f, true},
      {10, {200, 400}, 0.0f, false}};
  for (const auto& p : params) {
    problem pr{7, 4, 1, 130, 64, {}, p, 1.0};
    pr.segs = segments_for(pr.B, pr.N, rng);
    expect_matches_cpu<T>(pr, 100 + cases, &worst);
    ++cases;
  }
  std::printf("[ %s ] %d cases, worst |emulated - cpu| / max(1, |cpu|) = %.3g\n", name, cases, worst);
  // extreme logits (std ~ 36, max ~ 130): float scores are the CPU's, so 1e-5 holds; 16-bit scores
  // differ from the CPU's by a few ulp of |s| (mma order, scale after the product), which moves p by
  // ~|s| 2^-23 relative: the bound is 5e-5 there.
  double extreme = 0;
  for (const auto& p : params) {
    problem pr{4, 4, 1, 130, 64, {}, p, 2.5};
    pr.params.scale = 0.5f;
    pr.segs = segments_for(pr.B, pr.N, rng);
    expect_matches_cpu<T>(pr, 200 + cases, &extreme, std::is_same_v<T, float> ? 1e-5 : 5e-5);
    ++cases;
  }
  std::printf("[ %s ] extreme logits: worst %.3g\n", name, extreme);
}

TEST(HostQk, EmulationMatchesCpuFloat) { sweep<float>("float"); }
TEST(HostQk, EmulationMatchesCpuBfloat16) { sweep<rhythm::bfloat16>("bfloat16"); }
TEST(HostQk, EmulationMatchesCpuHalf) { sweep<rhythm::half>("half"); }

TEST(HostQk, LongSequenceSpanAgreement) {
  problem pr{1, 2, 1, 1100, 64, {{0, 100, 1100}}, {}, 1.0};
  double worst = 0;
  expect_matches_cpu<float>(pr, 5, &worst);
  expect_matches_cpu<rhythm::bfloat16>(pr, 6, &worst);
  std::printf("[ long ] worst %.3g\n", worst);
}

TEST(HostQk, WorkspaceSize) {
  for (const i64 B : {0, 1, 3})
    for (const i64 Hq : {0, 1, 8})
      for (const i64 N : {0, 1, 77, 4096}) {
        const std::size_t w = rhythm::cuda::head_signals_from_qk_workspace_size(B, Hq, 1, N, 128);
        EXPECT_LE(w, static_cast<std::size_t>(16 * B * Hq * N + 1024));
        EXPECT_GE(w, static_cast<std::size_t>(16 * B * Hq * N + 8));
      }
}

// ---- errors -----------------------------------------------------------------------------

template <class T>
void expect_same_error(const problem& pr, inputs<T> in, const char* what) {
  const cpu_result cpu = run_cpu(pr, in);
  ASSERT_TRUE(cpu.err) << what << ": the CPU raised nothing";
  const auto a = device_args(pr, in);
  const emulated em = emulate(a);
  ASSERT_NE(em.key, rhythm::cuda::no_error) << what;
  const rhythm::value_error e = qk::decode_key(em.key, a.segments, pr.Hq, pr.N);
  try {
    rhythm::raise(e);
    ADD_FAILURE() << what << ": the decoded key raised nothing";
  } catch (const rhythm::error& got) {
    EXPECT_EQ(got.code(), cpu.err->code()) << what;
    EXPECT_STREQ(got.what(), cpu.err->what()) << what;
  }
}

template <class T>
void error_cases() {
  std::mt19937 rng(99);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  problem pr{3, 4, 2, 40, 5, {{0, 10, 40}, {5, 5, 30}, {2, 20, 38}}, {}, 1.0};
  const auto at_q = [&](inputs<T>& in, i64 b, i64 h, i64 t, i64 c) -> T& { return in.q[((b * pr.Hq + h) * pr.N + t) * pr.d + c]; };
  const auto at_k = [&](inputs<T>& in, i64 b, i64 h, i64 t, i64 c) -> T& { return in.k[((b * pr.Hkv + h) * pr.N + t) * pr.d + c]; };
  const inputs<T> base = make_inputs<T>(pr, rng);
  {
    auto in = base;  // segments: the first bad one wins over everything
    in.segs[1] = {3, 2, 30}, in.segs[2] = {0, 0, 41};
    at_q(in, 0, 0, 12, 0) = T(nan);
    expect_same_error(pr, in, "segment");
  }
  {
    auto in = base;
    at_q(in, 1, 2, 17, 3) = T(inf), at_q(in, 1, 2, 9, 3) = T(nan);  // 9 is before the response: not read
    at_k(in, 1, 1, 25, 0) = T(nan);                                  // item (1, 2) checks q first
    at_q(in, 2, 0, 30, 1) = T(nan);
    expect_same_error(pr, in, "q before k, item order");
  }
  {
    auto in = base;
    at_k(in, 0, 1, 3, 4) = T(-inf);  // kv head 1: first read by query head 2
    at_q(in, 0, 3, 20, 0) = T(nan);  // later item
    expect_same_error(pr, in, "k");
  }
  {
    auto in = base;
    at_k(in, 2, 0, 1, 0) = T(nan);   // before begin = 2: not read
    at_q(in, 2, 1, 39, 0) = T(nan);  // padding after end: not read
    at_k(in, 2, 0, 37, 2) = T(nan);  // read
    expect_same_error(pr, in, "ranges");
  }
  {
    // logits overflow: huge q row with finite inputs; and with check_finite off, NaN q gives logits
    auto in = base;
    for (i64 c = 0; c < pr.d; ++c) at_q(in, 1, 3, 12, c) = T(std::is_same_v<T, rhythm::half> ? 60000.0f : 3e38f);
    for (i64 c = 0; c < pr.d; ++c) at_k(in, 1, 1, 6, c) = T(std::is_same_v<T, rhythm::half> ? 60000.0f : 3e38f);
    if (!std::is_same_v<T, rhythm::half>) expect_same_error(pr, in, "logits overflow");  // half cannot overflow
    problem off = pr;
    off.params.check_finite = false;
    auto in2 = base;
    at_q(in2, 0, 1, 25, 2) = T(nan);
    at_k(in2, 2, 1, 30, 0) = T(inf);
    expect_same_error(off, in2, "logits with check_finite off");
  }
}

TEST(HostQk, ErrorKeysDecodeToTheCpuErrors) {
  error_cases<float>();
  error_cases<rhythm::bfloat16>();
  error_cases<rhythm::half>();
}

TEST(HostQk, EmptyResponsesAreNotChecked) {
  // an empty response: the CPU reads nothing of that sequence, NaN or not
  problem pr{2, 2, 1, 20, 4, {{0, 7, 7}, {0, 5, 20}}, {}, 1.0};
  std::mt19937 rng(3);
  auto in = make_inputs<float>(pr, rng);
  in.k[3] = std::numeric_limits<float>::quiet_NaN();  // sequence 0, key row 0
  const cpu_result cpu = run_cpu(pr, in);
  ASSERT_FALSE(cpu.err);
  const emulated em = emulate(device_args(pr, in));
  EXPECT_EQ(em.key, rhythm::cuda::no_error);
  EXPECT_LE(max_rel_error(em.span, cpu.span), 1e-5);
  EXPECT_LE(max_rel_error(em.waad, cpu.waad), 1e-5);
  EXPECT_LE(max_rel_error(em.fai, cpu.fai), 1e-5);
}

}  // namespace
