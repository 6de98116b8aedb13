// rhythm with Eigen: post-RoPE queries and keys in Eigen tensors -> per-head signals (returned as
// Eigen objects) -> head groups and group WAAD / FAI written into Eigen matrices, printed.
// Q and K are made by hand. The response is written in chunks of 8 tokens, each opened by an
// "anchor". Heads 0-1 score keys of the query's own chunk high (and recent keys a little higher), so
// they look near; heads 2-3 score every anchor high, so they look far back at the anchors.
#include <cmath>
#include <cstdio>
#include <vector>

#include <rhythm/eigen.hpp>

int main() {
  const Eigen::Index B = 1, H = 4, N = 48, d = 8, prompt = 12;
  Eigen::Tensor<float, 4, Eigen::RowMajor> q(B, H, N, d), k(B, H, N, d);  // [B, H, N, d], like a model's layout
  q.setZero(), k.setZero();
  auto chunk_angle = [&](Eigen::Index t) { return 2.0944f * float(t < prompt ? -1 : (t - prompt) / 8); };  // 2 pi / 3
  for (Eigen::Index h = 0; h < H; ++h)
    for (Eigen::Index t = 0; t < N; ++t) {
      if (h < 2) {  // q_t.k_s = beta s + 6 cos(angle(t) - angle(s)): +6 in the own chunk, -3 in the neighbours
        q(0, h, t, 0) = h == 0 ? 0.05f : 0.3f, k(0, h, t, 0) = float(t);
        q(0, h, t, 1) = 6.0f * std::cos(chunk_angle(t)), q(0, h, t, 2) = 6.0f * std::sin(chunk_angle(t));
        k(0, h, t, 1) = std::cos(chunk_angle(t)), k(0, h, t, 2) = std::sin(chunk_angle(t));
      } else {  // every query looks for the anchors
        q(0, h, t, 4) = 6.0f;
        k(0, h, t, 4) = (t >= prompt && (t - prompt) % 8 == 0) ? 1.5f + 0.1f * float(h) : 0.0f;
      }
    }
  const std::vector<rhythm::segment> segments{{0, prompt, N}};
  const rhythm::signal_params params{.window = 10, .horizon = {.lo = 4, .hi = 100}, .scale = 1.0f};
  const auto policy = rhythm::exec::par{2};

  // span [B, H] as Eigen::MatrixXf, waad and fai [B, H, N] as row-major Eigen tensors
  const rhythm::eigen::head_signals sig = rhythm::eigen::head_signals_from_qk(policy, q, k, segments, params);

  // Outputs written straight into Eigen objects through views.
  Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic> roles(B, H);
  rhythm::head_groups(policy, rhythm::eigen::view(sig.span), rhythm::eigen::view(roles), {.fraction = 0.3});
  Eigen::MatrixXf local_waad(B, N), global_fai(B, N);
  rhythm::group_mean(policy, rhythm::eigen::view(sig.waad), rhythm::eigen::view(roles), rhythm::head_role::local,
                     rhythm::eigen::view(local_waad));
  rhythm::group_mean(policy, rhythm::eigen::view(sig.fai), rhythm::eigen::view(roles), rhythm::head_role::global,
                     rhythm::eigen::view(global_fai));

  std::printf("rhythm %s with Eigen %d.%d.%d: B=%ld H=%ld N=%ld d=%ld\n", rhythm::version_string, EIGEN_WORLD_VERSION,
              EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, long(B), long(H), long(N), long(d));
  for (Eigen::Index h = 0; h < H; ++h)
    std::printf("head %ld  span %6.2f  %s%s\n", long(h), sig.span(0, h),
                roles(0, h) & rhythm::bits(rhythm::head_role::local) ? "local " : "",
                roles(0, h) & rhythm::bits(rhythm::head_role::global) ? "global" : "");
  std::printf("\n  t  anchor  WAAD(local)  FAI(global)\n");
  for (Eigen::Index t = prompt; t < N; ++t) {
    std::printf("%3ld  %s  %9.3f  ", long(t), (t - prompt) % 8 == 0 ? "  *   " : "      ", local_waad(0, t));
    if (rhythm::fai_eligible(t, prompt, N, params.horizon)) std::printf("%9.4f\n", global_fai(0, t));
    else std::printf("      -\n");
  }
}
