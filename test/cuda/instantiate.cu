// Every CUDA kernel of the library instantiated through the public API, for every element type,
// so that ptxas compiles each one for every architecture: built with -Xptxas --warn-on-spills
// --warning-as-error, this object is the "no register spills" check. Nothing here runs.
#include <rhythm/cuda.cuh>

namespace {
using rhythm::device_space;
template <class T, std::size_t R>
using dv = rhythm::view<T, R, device_space>;

template <class T>
void signals_and_tokens(const rhythm::exec::cuda& p) {
  const dv<const T, 4> x;
  const dv<const rhythm::segment, 1> segments;
  const dv<float, 2> span, delta, threshold2;
  const dv<float, 3> waad, fai;
  rhythm::head_signals_from_maps(p, x, segments, span, waad, fai);
  rhythm::head_signals_from_qk(p, x, x, segments, span, waad, fai);
  const dv<const T, 2> values;
  const dv<std::uint8_t, 2> selected, flags;
  const dv<float, 1> threshold;
  rhythm::waad_jumps(p, values, segments, delta);
  rhythm::top_q(p, values, segments, selected, threshold);
  rhythm::top_q(p, values, dv<const std::uint8_t, 2>{}, segments, selected, threshold);
  rhythm::token_sets(p, values, values, segments, flags, threshold2);
  rhythm::token_sets(p, values, values, segments, flags);
  rhythm::local_peaks(p, values, dv<const std::uint8_t, 2>{}, segments, selected);
  const dv<const float, 1> advantages;
  rhythm::shaping_factors(p, rhythm::shaping::entropy{}, dv<const std::uint8_t, 2>{}, values, segments, advantages,
                          delta);
  rhythm::grpo_advantages(p, dv<const T, 1>{}, dv<const std::int64_t, 1>{}, threshold);
}
}  // namespace

void rhythm_instantiate_every_cuda_kernel(const rhythm::exec::cuda& p) {
  signals_and_tokens<float>(p);
  signals_and_tokens<rhythm::bfloat16>(p);
  signals_and_tokens<rhythm::half>(p);
  const dv<const float, 2> spans;
  const dv<const rhythm::segment, 1> segments;
  rhythm::head_groups(p, spans, dv<rhythm::head_role, 2>{});
  rhythm::pooled_head_groups(p, spans, dv<rhythm::head_role, 1>{});
  rhythm::group_mean(p, dv<const float, 3>{}, dv<const rhythm::head_role, 2>{}, rhythm::head_role::local,
                     dv<float, 2>{});
  const dv<const std::uint8_t, 2> flags;
  const dv<const float, 1> advantages;
  const dv<float, 2> gamma;
  rhythm::shaping_factors(p, rhythm::shaping::coupled_rhythm{}, flags, segments, advantages, gamma);
  rhythm::shaping_factors(p, rhythm::shaping::random{}, flags, segments, advantages, gamma);
  rhythm::shaped_advantages(p, dv<const float, 2>{}, advantages, segments, gamma);
}
