// The trainer's transformer and sampler: a hand-written double-precision reference of the forward pass
// (RMSNorm, projections, RoPE, GQA attention with left padding, SwiGLU, head), the KV cache against
// the full forward, Q/K capture, and rollouts against a full forward's log-probabilities.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <rhythm/torch.hpp>

#include "model.hpp"
#include "sampling.hpp"

namespace {

using ::torch::Tensor;

grpo::model_config tiny_config() {
  grpo::model_config c;
  c.vocab_size = grpo::tokenizer::vocab_size();
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.max_seq_len = 64;
  return c;
}

grpo::transformer tiny_model(std::uint64_t seed = 0) {
  ::torch::manual_seed(seed);
  grpo::transformer model(tiny_config());
  // Untrained weights of std 0.02 give nearly uniform attention; larger ones make the tests sharper.
  ::torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters())
    if (p.key().find("norm") == std::string::npos) p.value().normal_(0.0, 0.15);
  return model;
}

/// Row b: pads[b] PAD tokens, BOS, then random characters; valid marks the real tokens.
struct padded_batch {
  Tensor tokens, valid;
};

padded_batch random_left_padded(std::int64_t T, const std::vector<std::int64_t>& pads, std::uint64_t seed) {
  ::torch::manual_seed(seed);
  const auto B = static_cast<std::int64_t>(pads.size());
  auto tokens = ::torch::randint(3, grpo::tokenizer::vocab_size(), {B, T}, ::torch::kInt64);
  for (std::int64_t b = 0; b < B; ++b) {
    tokens[b].narrow(0, 0, pads[static_cast<std::size_t>(b)]).fill_(grpo::tokenizer::pad);
    tokens[b][pads[static_cast<std::size_t>(b)]] = grpo::tokenizer::bos;
  }
  return {tokens, tokens.ne(grpo::tokenizer::pad)};
}

/// max |a - b| over the positions where mask [B, T] is true (a and b: [B, T, ...]).
double max_abs_diff_where(const Tensor& a, const Tensor& b, const Tensor& mask) {
  const auto diff = (a.to(::torch::kFloat64) - b.to(::torch::kFloat64)).abs();
  auto m = mask;
  while (m.dim() < diff.dim()) m = m.unsqueeze(-1);
  return diff.masked_select(m.expand_as(diff)).max().item<double>();
}

// ------------------------------------------------------------------------------- the manual reference

struct reference_output {
  Tensor logits;              // [B, T, V]
  std::vector<Tensor> q, k;   // per layer: post-RoPE [B, Hq, T, hd], [B, Hkv, T, hd]
  std::vector<Tensor> probs;  // per layer: attention [B, Hq, T, T]
};

Tensor weight(const ::torch::nn::Linear& l) { return l->weight.detach().to(::torch::kFloat64); }

Tensor reference_rms_norm(const Tensor& x, const Tensor& w, double eps) {
  return x / (x.pow(2).mean(-1, true) + eps).sqrt() * w.detach().to(::torch::kFloat64);
}

// Rotates pairs (i, i + hd/2) of x [B, H, T, hd] by position * base^(-2i/hd), in double.
Tensor reference_rope(const Tensor& x, const Tensor& positions, double base) {
  const std::int64_t half = x.size(3) / 2;
  const auto i = ::torch::arange(half, ::torch::kFloat64);
  const auto angle = positions.to(::torch::kFloat64).unsqueeze(-1) * ::torch::pow(base, -2.0 * i / double(x.size(3)));
  const auto c = angle.cos().unsqueeze(1), s = angle.sin().unsqueeze(1);
  const auto x1 = x.narrow(3, 0, half), x2 = x.narrow(3, half, half);
  return ::torch::cat({x1 * c - x2 * s, x2 * c + x1 * s}, 3);
}

reference_output reference_forward(grpo::transformer& model, const Tensor& tokens, const Tensor& valid) {
  ::torch::NoGradGuard no_grad;
  const auto& c = model->config;
  const std::int64_t B = tokens.size(0), T = tokens.size(1), hd = c.head_dim();
  // Positions count real tokens from 0; pads get 0. Keys: real and not in the future; a pad row sees itself.
  auto positions = ::torch::zeros({B, T}, ::torch::kInt64);
  auto allowed = ::torch::zeros({B, 1, T, T}, ::torch::kBool);
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t real = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      if (valid[b][t].item<bool>()) positions[b][t] = real++;
      for (std::int64_t s = 0; s <= t; ++s)
        if (s == t || valid[b][s].item<bool>()) allowed[b][0][t][s] = true;
    }
  }
  reference_output out;
  const auto embedding = model->embedding->weight.detach().to(::torch::kFloat64);
  auto x = embedding.index_select(0, tokens.reshape({-1})).view({B, T, c.d_model});
  for (auto& block : model->blocks) {
    const auto& a = block->attn;
    const auto h = reference_rms_norm(x, block->attention_norm->weight, c.norm_eps);
    auto heads = [&](const Tensor& y, std::int64_t n) { return y.view({B, T, n, hd}).transpose(1, 2); };
    const auto q = reference_rope(heads(h.matmul(weight(a->q_proj).t()), c.n_heads), positions, c.rope_base);
    const auto k = reference_rope(heads(h.matmul(weight(a->k_proj).t()), c.n_kv_heads), positions, c.rope_base);
    const auto v = heads(h.matmul(weight(a->v_proj).t()), c.n_kv_heads);
    const std::int64_t group = c.n_heads / c.n_kv_heads;  // query head h reads kv head h / group
    const auto scores = q.matmul(k.repeat_interleave(group, 1).transpose(2, 3)) / std::sqrt(double(hd));
    const auto probs = ::torch::softmax(scores.masked_fill(allowed.logical_not(), -INFINITY), -1);
    const auto attended = probs.matmul(v.repeat_interleave(group, 1)).transpose(1, 2).reshape({B, T, c.n_heads * hd});
    x = x + attended.matmul(weight(a->o_proj).t());
    const auto g = reference_rms_norm(x, block->mlp_norm->weight, c.norm_eps);
    const auto& m = block->mlp;
    x = x + (::torch::silu(g.matmul(weight(m->gate).t())) * g.matmul(weight(m->up).t())).matmul(weight(m->down).t());
    out.q.push_back(q), out.k.push_back(k), out.probs.push_back(probs);
  }
  out.logits = reference_rms_norm(x, model->final_norm->weight, c.norm_eps).matmul(weight(model->head).t());
  return out;
}

// ------------------------------------------------------------------------------------------- the model

TEST(Model, ParameterCount) {
  auto model = tiny_model();
  std::int64_t counted = 0;
  for (const auto& p : model->parameters()) counted += p.numel();
  EXPECT_EQ(counted, grpo::parameter_count(model->config));
  // 56 x 32 embedding + 56 x 32 head + 2 x (2 norms of 32, q 32x32, k and v 16x32, o 32x32, SwiGLU 3 x 32x88) + 32.
  EXPECT_EQ(model->config.mlp_hidden_size(), 88);
  EXPECT_EQ(counted, 2 * 56 * 32 + 2 * (2 * 32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 32 * 88) + 32);
  grpo::model_config calibration;  // the calibration notes' 2-layer d 64 model: ~0.10 M parameters (+ a 3.6 k head)
  calibration.vocab_size = grpo::tokenizer::vocab_size();
  EXPECT_NEAR(double(grpo::parameter_count(calibration)), 0.10e6, 0.01e6);
}

TEST(Model, ConfigErrorsNameTheField) {
  auto c = tiny_config();
  c.n_kv_heads = 3;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = tiny_config();
  c.d_model = 30;
  EXPECT_THROW(grpo::transformer{c}, std::invalid_argument);
}

TEST(Model, ForwardMatchesTheManualReferenceWithLeftPadding) {
  auto model = tiny_model();
  const auto batch = random_left_padded(16, {0, 3, 7}, 1);
  const auto logits = model->forward(batch.tokens, batch.valid);
  ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{3, 16, grpo::tokenizer::vocab_size()}));
  const auto ref = reference_forward(model, batch.tokens, batch.valid);
  const double diff = max_abs_diff_where(logits, ref.logits, batch.valid);
  std::printf("  forward vs double-precision reference: max |logit diff| %.2e\n", diff);
  EXPECT_LT(diff, 1e-5);
  EXPECT_GT(ref.logits.abs().max().item<double>(), 0.1);  // not trivially small
}

TEST(Model, LeftPaddingDoesNotChangeTheLogits) {
  auto model = tiny_model();
  const auto padded = random_left_padded(20, {5}, 2);
  const auto unpadded = padded.tokens.narrow(1, 5, 15);
  const auto a = model->forward(padded.tokens, padded.valid).narrow(1, 5, 15);
  const auto b = model->forward(unpadded);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
}

TEST(Model, CapturedQAndKEqualTheManualRecomputation) {
  auto model = tiny_model();
  const auto batch = random_left_padded(16, {0, 3, 7}, 3);
  const std::vector<std::int64_t> layers{1, 0};  // any order: stacked as given
  const auto out = model->forward_with_qk(batch.tokens, batch.valid, layers);
  const std::int64_t Hq = 4, Hkv = 2, hd = 8;
  ASSERT_EQ(out.q.sizes(), (std::vector<std::int64_t>{3, 2 * Hq, 16, hd}));
  ASSERT_EQ(out.k.sizes(), (std::vector<std::int64_t>{3, 2 * Hkv, 16, hd}));
  const auto ref = reference_forward(model, batch.tokens, batch.valid);
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto l = static_cast<std::size_t>(layers[i]);
    const auto all = ::torch::ones({3, 16}, ::torch::kBool);
    EXPECT_LT(max_abs_diff_where(out.q.narrow(1, std::int64_t(i) * Hq, Hq).permute({0, 2, 1, 3}),
                                 ref.q[l].permute({0, 2, 1, 3}), all), 1e-5) << "layer " << l;
    EXPECT_LT(max_abs_diff_where(out.k.narrow(1, std::int64_t(i) * Hkv, Hkv).permute({0, 2, 1, 3}),
                                 ref.k[l].permute({0, 2, 1, 3}), all), 1e-5) << "layer " << l;
  }
  EXPECT_TRUE(::torch::equal(out.logits, model->forward(batch.tokens, batch.valid)));
  EXPECT_THROW(model->forward_with_qk(batch.tokens, batch.valid, {2}), std::out_of_range);
}

TEST(Model, StackedLayersKeepTheGqaGroupingRhythmExpects) {
  EXPECT_EQ(grpo::default_capture_layers(2), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(grpo::default_capture_layers(5), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(grpo::default_capture_layers(36), (std::vector<std::int64_t>{12, 15, 18, 21, 24}));

  // rhythm maps stacked query head h to kv head h / (L Hq / L Hkv) = h / (Hq / Hkv): per layer, the
  // model's own grouping. Signals from the captured Q/K equal those from the model's attention maps.
  auto model = tiny_model();
  const std::vector<std::int64_t> pads{0, 3, 7};
  const std::int64_t T = 40, P = 12;
  const auto batch = random_left_padded(T, pads, 4);
  ::torch::NoGradGuard no_grad;  // as the trainer's attention pass
  const auto out = model->forward_with_qk(batch.tokens, batch.valid, {0, 1});
  const auto ref = reference_forward(model, batch.tokens, batch.valid);
  std::vector<rhythm::segment> segments;
  for (const auto pad : pads) segments.push_back({pad, P, T});
  const auto from_qk = rhythm::torch::head_signals_from_qk(out.q, out.k, segments);
  const auto maps = ::torch::cat({ref.probs[0], ref.probs[1]}, 1).to(::torch::kFloat32);
  const auto from_maps = rhythm::torch::head_signals_from_maps(maps, segments);
  ASSERT_EQ(from_qk.waad.sizes(), (std::vector<std::int64_t>{3, 8, T}));
  EXPECT_LT((from_qk.span - from_maps.span).abs().max().item<double>(), 1e-4);
  EXPECT_LT((from_qk.waad - from_maps.waad).abs().max().item<double>(), 1e-4);
  EXPECT_LT((from_qk.fai - from_maps.fai).abs().max().item<double>(), 1e-4);
}

// --------------------------------------------------------------------------------------------- KV cache

TEST(KvCache, IncrementalDecodingGivesTheFullForwardLogits) {
  auto model = tiny_model();
  const std::int64_t T = 24;
  const auto batch = random_left_padded(T, {0, 2, 6}, 5);
  const auto full = model->forward(batch.tokens, batch.valid);
  // Prefill 9 columns, append a chunk of 4, then one column at a time.
  auto cache = model->new_cache(3, T);
  std::vector<Tensor> pieces{model->forward_cached(cache, batch.tokens.narrow(1, 0, 9), batch.valid.narrow(1, 0, 9)),
                             model->forward_cached(cache, batch.tokens.narrow(1, 9, 4), batch.valid.narrow(1, 9, 4))};
  for (std::int64_t t = 13; t < T; ++t)
    pieces.push_back(model->forward_cached(cache, batch.tokens.narrow(1, t, 1), batch.valid.narrow(1, t, 1)));
  const auto incremental = ::torch::cat(pieces, 1);
  EXPECT_EQ(cache.length, T);
  const double diff = max_abs_diff_where(incremental, full, batch.valid);
  std::printf("  cached (prefill 9 + chunk 4 + 11 steps) vs full forward: max |logit diff| %.2e\n", diff);
  EXPECT_LT(diff, 1e-5);
  EXPECT_FALSE(incremental.requires_grad());
  EXPECT_THROW(model->forward_cached(cache, batch.tokens.narrow(1, 0, 1)), std::invalid_argument);  // full
  EXPECT_THROW(model->new_cache(3, 65), std::invalid_argument);                                     // > max_seq_len
}

// --------------------------------------------------------------------------------------------- sampling

std::vector<std::string> some_prompts() { return {"3,7,9->30:", "(12+7)*3-18/6:", "ab,bc,cd;a>d:"}; }

TEST(Sampling, BatchLayoutAndSegments) {
  const grpo::tokenizer tok;
  const std::vector<std::string> prompts{"1,2->3:", "10,20,30->60:"}, responses{"1+2=3;ans 1+2", "ans 10+20+30"};
  const auto batch = grpo::encode_sequences(tok, prompts, responses);
  const std::int64_t P = 1 + 13;  // BOS + the longer prompt; responses of 13 and 12 characters + EOS
  ASSERT_EQ(batch.tokens.size(1), P + 14);
  EXPECT_EQ(batch.segments[0], (rhythm::segment{P - 8, P, P + 14}));
  EXPECT_EQ(batch.segments[1], (rhythm::segment{0, P, P + 13}));
  EXPECT_EQ(batch.tokens[0][P - 9].item<std::int64_t>(), grpo::tokenizer::pad);
  EXPECT_EQ(batch.tokens[0][P - 8].item<std::int64_t>(), grpo::tokenizer::bos);
  EXPECT_EQ(batch.tokens[0][P + 13].item<std::int64_t>(), grpo::tokenizer::eos);
  EXPECT_EQ(batch.tokens[1][P + 12].item<std::int64_t>(), grpo::tokenizer::eos);
  EXPECT_EQ(batch.tokens[1][P + 13].item<std::int64_t>(), grpo::tokenizer::pad);
  const auto row = batch.tokens[0].contiguous();
  EXPECT_EQ(tok.decode(std::span<const std::int64_t>(row.data_ptr<std::int64_t>() + P, 14)), responses[0]);
}

TEST(Sampling, GreedyIsDeterministic) {
  auto model = tiny_model();
  const grpo::tokenizer tok;
  const auto prompts = grpo::encode_prompts(tok, some_prompts());
  grpo::sampling_options opt;
  opt.samples_per_prompt = 3;
  opt.max_new_tokens = 16;
  opt.temperature = 0.0;
  const auto a = grpo::sample(model, prompts, opt), b = grpo::sample(model, prompts, opt);
  EXPECT_TRUE(::torch::equal(a.tokens, b.tokens));
  EXPECT_TRUE(::torch::equal(a.logp, b.logp));
  for (std::int64_t r = 0; r < a.rows(); ++r)  // every sample of a prompt is the same
    EXPECT_TRUE(::torch::equal(a.tokens[r], a.tokens[r - r % 3]));
  // Greedy rows follow the full forward's argmax.
  const auto logits = model->forward(a.tokens, grpo::valid_mask(a.segments, a.tokens.size(1)));
  for (std::int64_t r = 0; r < a.rows(); ++r)
    for (std::int64_t t = a.prompt_width; t < a.segments[static_cast<std::size_t>(r)].end; ++t)
      EXPECT_EQ(logits[r][t - 1].argmax().item<std::int64_t>(), a.tokens[r][t].item<std::int64_t>());
}

/// 8 samples per prompt, at most 40 new tokens, a CPU generator seeded with `seed`.
grpo::sampling_options eight_samples(std::uint64_t seed) {
  grpo::sampling_options opt;
  opt.samples_per_prompt = 8;
  opt.max_new_tokens = 40;
  opt.generator = ::at::detail::createCPUGenerator(seed);
  return opt;
}

TEST(Sampling, LogProbsOfSampledTokensEqualAFullForward) {
  auto model = tiny_model(6);
  const grpo::tokenizer tok;
  const auto prompts = grpo::encode_prompts(tok, some_prompts());
  auto opt = eight_samples(99);
  const auto rollout = grpo::sample(model, prompts, opt);
  opt.generator = ::at::detail::createCPUGenerator(99);
  EXPECT_TRUE(::torch::equal(rollout.tokens, grpo::sample(model, prompts, opt).tokens));  // seeded

  const std::int64_t R = 24, P = prompts.width(), N = rollout.tokens.size(1);
  ASSERT_EQ(rollout.rows(), R);
  EXPECT_TRUE(::torch::equal(rollout.group_ids, ::torch::arange(R).div(8, "floor")));
  int finished = 0;
  for (std::int64_t r = 0; r < R; ++r) {
    const auto& s = rollout.segments[static_cast<std::size_t>(r)];
    EXPECT_EQ(s.begin, prompts.begin[static_cast<std::size_t>(r / 8)]);
    EXPECT_EQ(s.response_begin, P);
    EXPECT_TRUE(::torch::equal(rollout.tokens[r].narrow(0, 0, P), prompts.tokens[r / 8]));
    if (rollout.finished[static_cast<std::size_t>(r)]) {
      ++finished;
      EXPECT_EQ(rollout.tokens[r][s.end - 1].item<std::int64_t>(), grpo::tokenizer::eos);
      EXPECT_TRUE(rollout.tokens[r].narrow(0, s.end, N - s.end).eq(grpo::tokenizer::pad).all().item<bool>());
    } else {
      EXPECT_EQ(s.end, P + opt.max_new_tokens);
    }
    EXPECT_TRUE(rollout.tokens[r].narrow(0, P, s.end - P - 1).ne(grpo::tokenizer::eos).all().item<bool>());
  }
  std::printf("  %d of %lld rows wrote EOS within %lld tokens\n", finished, (long long)R, (long long)opt.max_new_tokens);
  EXPECT_GE(finished, R / 4);  // a random model ends enough rows for the cache to drop finished ones ...
  EXPECT_LT(finished, R);      // ... and not all
  const auto stats = grpo::token_statistics_of(model, rollout.tokens, rollout.segments);
  const auto response = rhythm::torch::response_mask(rollout.segments, N);
  const double diff = max_abs_diff_where(stats.logp, rollout.logp, response);
  std::printf("  sampled log-probs vs full forward: max |diff| %.2e\n", diff);
  EXPECT_LT(diff, 1e-5);
  EXPECT_TRUE(rollout.logp.masked_select(response.logical_not()).eq(0).all().item<bool>());
  EXPECT_TRUE(stats.logp.requires_grad());
  EXPECT_FALSE(stats.entropy.requires_grad());
  const auto entropy = stats.entropy.masked_select(response);
  EXPECT_GE(entropy.min().item<double>(), 0.0);
  EXPECT_LE(entropy.max().item<double>(), std::log(double(grpo::tokenizer::vocab_size())) + 1e-5);
  // The PPO update differentiates the new log-probabilities.
  stats.logp.masked_select(response).sum().backward();
  EXPECT_GT(model->embedding->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(grpo::decode_responses(tok, rollout).size(), static_cast<std::size_t>(R));
}

TEST(Sampling, AtATemperatureLogProbsAreTheTemperedPolicysInSamplingAndForwardAlike) {
  auto model = tiny_model(6);
  const grpo::tokenizer tok;
  const auto prompts = grpo::encode_prompts(tok, some_prompts());
  auto opt = eight_samples(99);
  opt.temperature = 0.5;
  const auto rollout = grpo::sample(model, prompts, opt);
  const auto response = rhythm::torch::response_mask(rollout.segments, rollout.tokens.size(1));
  const auto tempered = grpo::token_statistics_of(model, rollout.tokens, rollout.segments, true, 0.5);
  const auto plain = grpo::token_statistics_of(model, rollout.tokens, rollout.segments, true, 1.0);
  EXPECT_LT(max_abs_diff_where(tempered.logp, rollout.logp, response), 1e-5);
  EXPECT_LT(max_abs_diff_where(tempered.entropy, rollout.entropy, response), 1e-5);
  // The tempered policy is sharper: its sampled tokens are likelier under it than under the model itself.
  EXPECT_GT(tempered.logp.masked_select(response).sum().item<double>(), plain.logp.masked_select(response).sum().item<double>());
  EXPECT_LT(tempered.entropy.masked_select(response).mean().item<double>(), plain.entropy.masked_select(response).mean().item<double>());
}

/// The attention pass recorded while decoding (sampling_options::capture_layers) equals forward_with_qk
/// on the finished rollouts at every real position (Q: every response position; 0 on the prompt),
/// through cache compaction and the last token.
void expect_recorded_qk_equals_a_full_forward(::torch::Dtype dtype) {
  auto model = tiny_model(7);
  model->to(dtype);
  const grpo::tokenizer tok;
  const auto prompts = grpo::encode_prompts(tok, some_prompts());
  auto opt = eight_samples(5);
  opt.capture_layers = {1, 0};
  const auto rollout = grpo::sample(model, prompts, opt);
  opt.capture_layers.clear();
  opt.generator = ::at::detail::createCPUGenerator(5);
  EXPECT_TRUE(::torch::equal(rollout.tokens, grpo::sample(model, prompts, opt).tokens));  // capture changes nothing
  const std::int64_t N = rollout.tokens.size(1);
  const auto real = grpo::valid_mask(rollout.segments, N);
  ::torch::NoGradGuard no_grad;
  const auto full = model->forward_with_qk(rollout.tokens, real, {1, 0});
  ASSERT_EQ(rollout.q.sizes(), full.q.sizes());
  ASSERT_EQ(rollout.k.sizes(), full.k.sizes());
  const auto response = rhythm::torch::response_mask(rollout.segments, N);
  const auto q_diff = max_abs_diff_where(rollout.q.transpose(1, 2), full.q.transpose(1, 2), response);
  const auto k_diff = max_abs_diff_where(rollout.k.transpose(1, 2), full.k.transpose(1, 2), real);
  const auto P = rollout.prompt_width;
  EXPECT_TRUE(rollout.q.narrow(2, 0, P).eq(0).all().item<bool>());  // the prompt's queries are not kept
  std::printf("  %s: recorded vs full-forward Q, K: max |diff| %.2e, %.2e\n", ::c10::toString(dtype), q_diff, k_diff);
  EXPECT_LT(q_diff, 1e-5);
  EXPECT_LT(k_diff, 1e-5);
  EXPECT_TRUE(::torch::isfinite(rollout.q).all().item<bool>());  // positions after a row left the cache: 0
  EXPECT_TRUE(::torch::isfinite(rollout.k).all().item<bool>());
  const auto stats = grpo::token_statistics_of(model, rollout.tokens, rollout.segments);
  EXPECT_LT(max_abs_diff_where(rollout.entropy, stats.entropy, response), 1e-5);
  EXPECT_TRUE(rollout.entropy.masked_select(response.logical_not()).eq(0).all().item<bool>());
  opt.capture_layers = {2};
  EXPECT_THROW(grpo::sample(model, prompts, opt), std::out_of_range);
}

TEST(Sampling, RecordedQKAndEntropyEqualAFullForward) {
  expect_recorded_qk_equals_a_full_forward(::torch::kFloat32);  // copied at once (memcpy)
  expect_recorded_qk_equals_a_full_forward(::torch::kFloat64);  // scattered at the end, as on a device
}

}  // namespace
