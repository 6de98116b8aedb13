// Signals from maps and from Q/K against the double-precision reference, on the host backends; the
// Q/K kernel on every instruction set this build and CPU have.
#include <rhythm/cpu/qk_signals.hpp>

#include "suites/signals.hpp"

namespace signals_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Host, Signals, rt::host_policies);

// Each compiled instruction set (baseline 4 lanes, AVX2 8, AVX-512 16) against the reference, and
// seq against par bit for bit on each.
TEST(QKKernelIsa, EverySupportedSetMatchesTheReferenceAndParMatchesSeq) {
  using rhythm::cpu::kernel_isa;
  int tested = 0;
  for (const auto isa : {kernel_isa::baseline, kernel_isa::avx2, kernel_isa::avx512}) {
    if (!rhythm::cpu::force_kernel_isa(isa)) continue;
    SCOPED_TRACE("kernel_isa " + std::to_string(static_cast<int>(isa)));
    ++tested;
    EXPECT_EQ(rhythm::cpu::active_kernel_isa(), isa);
    // Segments of up to single_pass_keys keys take the single pass (all of these by default); at 64 the
    // longer ones take the two passes.
    for (const std::int64_t single_pass_keys : {std::int64_t{4096}, std::int64_t{64}})
    for (const auto policy : {rhythm::exec::par{2}, rhythm::exec::par{1}}) {
      rhythm::cpu::detail::single_pass_keys = single_pass_keys;
      SCOPED_TRACE("single_pass_keys " + std::to_string(single_pass_keys));
      check_qk_against_reference<float>(2, 4, 4, 70, 16, {0, 0, 0, 10, 10, 100}, 1.0, 1, policy);
      check_qk_against_reference<float>(1, 2, 2, 150, 64, {0, 0, 0, 10, 10, 100}, 1.0, 2, policy);  // crosses tiles
      check_qk_against_reference<float>(3, 1, 1, 1, 8, {0, 0, 0, 10, 10, 100}, 1.0, 3, policy);     // N = 1
      check_qk_against_reference<float>(2, 3, 3, 66, 65, {0, 0, 0, 1, 30, 31}, 0.5, 5, policy);     // odd d, 3 rows
      check_qk_against_reference<float>(2, 8, 2, 60, 8, {0, 0, 0, 10, 10, 100}, 1.0, 11, policy);   // GQA
      check_qk_against_reference<rhythm::bfloat16>(2, 4, 2, 80, 32, {0, 0, 0, 10, 10, 100}, 1.0, 21, policy);
      check_qk_against_reference<float>(1, 2, 1, 97, 3, {0, 0, 0, 200, 0, -1}, 2.0, 4, policy);     // W > N
    }
    std::mt19937 rng(7);
    const i64 B = 3, H = 4, N = 120, d = 16;
    std::vector<rhythm::segment> segs;
    for (i64 b = 0; b < B; ++b) segs.push_back(random_segment(rng, N));
    random_qk<float> x(rng, B, H, 2, N, d, 1.5);
    head_outputs<rhythm::exec::seq> seq_out(B, H, N), par_out(B, H, N);
    rhythm::head_signals_from_qk(rhythm::exec::seq{}, in<rhythm::exec::seq>(x.q, B, H, N, d),
                                 in<rhythm::exec::seq>(x.k, B, 2, N, d), in<rhythm::exec::seq>(segs), seq_out.span,
                                 seq_out.waad, seq_out.fai, rhythm::signal_params{});
    rhythm::head_signals_from_qk(rhythm::exec::par{2}, in<rhythm::exec::seq>(x.q, B, H, N, d),
                                 in<rhythm::exec::seq>(x.k, B, 2, N, d), in<rhythm::exec::seq>(segs), par_out.span,
                                 par_out.waad, par_out.fai, rhythm::signal_params{});
    const auto s = seq_out.host(), p = par_out.host();
    EXPECT_EQ(s.span, p.span);
    EXPECT_EQ(s.waad, p.waad);
    EXPECT_EQ(s.fai, p.fai);
  }
  rhythm::cpu::force_kernel_isa(std::nullopt);
  rhythm::cpu::detail::single_pass_keys = 4096;
  EXPECT_GE(tested, 1);
  std::printf("kernel instruction sets tested: %d (active by default: %d)\n", tested,
              static_cast<int>(rhythm::cpu::active_kernel_isa()));
}

}  // namespace signals_suite
