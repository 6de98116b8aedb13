#pragma once
/// Batches, rollouts and per-token statistics.
///
/// Batch layout (every function here and rhythm's segments agree on it): prompts are left-padded to a
/// common width P, so every response starts at column P; responses are right-padded with PAD.
///
///   column:   0 ...        begin ...          P ...              end ...      N
///   tokens:   PAD PAD      BOS p r o m p t :  r e s p o n s e    EOS PAD ...
///   segment:  {begin, response_begin = P, end}   (rhythm::segment; real tokens [begin, end))
///
/// Per-token quantities are aligned with the token they score: logp[b, t] = log pi(tokens[b, t] |
/// tokens[b, < t]), computed from the logits at t - 1. This is the layout rhythm::torch::ppo_clip_loss
/// reads (response positions [response_begin, end)).
///
///   encode_prompts / encode_sequences   strings -> left-padded batches (+ segments)
///   sample                              G samples per prompt with the KV cache: tokens, logp, segments
///   token_statistics_of                 a full forward's per-token log-probs (differentiable) and entropies
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <rhythm/core/segments.hpp>

#include "model.hpp"

namespace grpo {

/// Left-padded prompts: tokens [B, P] int64 (PAD ... BOS prompt), valid [B, P] bool, begin[b] = P - length.
struct prompt_batch {
  ::torch::Tensor tokens, valid;
  std::vector<std::int64_t> begin;
  std::int64_t width() const { return tokens.size(1); }
};

/// Encodes BOS + prompt for each string, left-padded to max(longest, min_width) columns.
inline prompt_batch encode_prompts(const tokenizer& tok, std::span<const std::string> prompts, std::int64_t min_width = 0) {
  std::vector<std::vector<std::int64_t>> ids;
  std::int64_t width = min_width;
  for (const auto& p : prompts) {
    ids.push_back(tok.encode_prompt(p));
    width = std::max(width, static_cast<std::int64_t>(ids.back().size()));
  }
  const auto B = static_cast<std::int64_t>(prompts.size());
  prompt_batch out{::torch::full({B, width}, tokenizer::pad, ::torch::kInt64), {}, {}};
  auto acc = out.tokens.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& row = ids[static_cast<std::size_t>(b)];
    const std::int64_t begin = width - static_cast<std::int64_t>(row.size());
    for (std::size_t i = 0; i < row.size(); ++i) acc[b][begin + static_cast<std::int64_t>(i)] = row[i];
    out.begin.push_back(begin);
  }
  out.valid = out.tokens.ne(tokenizer::pad);
  return out;
}

/// Prompt + response sequences (supervised warm start): tokens [B, N] int64 and one segment per row.
struct sequence_batch {
  ::torch::Tensor tokens;
  std::vector<rhythm::segment> segments;
};

/// BOS prompt_b response_b EOS per row, prompts left-padded to a common width (>= min_prompt_width),
/// responses right-padded with PAD.
inline sequence_batch encode_sequences(const tokenizer& tok, std::span<const std::string> prompts,
                                       std::span<const std::string> responses, std::int64_t min_prompt_width = 0) {
  if (prompts.size() != responses.size())
    throw std::invalid_argument("encode_sequences: " + std::to_string(prompts.size()) + " prompts but " +
                                std::to_string(responses.size()) + " responses");
  const auto head = encode_prompts(tok, prompts, min_prompt_width);
  std::vector<std::vector<std::int64_t>> tails;
  std::int64_t longest = 0;
  for (const auto& r : responses) {
    tails.push_back(tok.encode_response(r));
    longest = std::max(longest, static_cast<std::int64_t>(tails.back().size()));
  }
  const std::int64_t B = head.tokens.size(0), P = head.width();
  sequence_batch out{::torch::full({B, P + longest}, tokenizer::pad, ::torch::kInt64), {}};
  out.tokens.narrow(1, 0, P).copy_(head.tokens);
  auto acc = out.tokens.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& tail = tails[static_cast<std::size_t>(b)];
    for (std::size_t i = 0; i < tail.size(); ++i) acc[b][P + static_cast<std::int64_t>(i)] = tail[i];
    out.segments.push_back({head.begin[static_cast<std::size_t>(b)], P, P + static_cast<std::int64_t>(tail.size())});
  }
  return out;
}

/// [B, N] bool, true on the real tokens [begin, end) of each segment.
/// [B, N] bool on the CPU, true on [begin + skip_first, end) of each segment (skip_first 0: the real tokens).
inline ::torch::Tensor valid_mask(std::span<const rhythm::segment> segments, std::int64_t N, std::int64_t skip_first = 0) {
  auto mask = ::torch::zeros({static_cast<std::int64_t>(segments.size()), N}, ::torch::kBool);
  auto acc = mask.accessor<bool, 2>();
  for (std::size_t b = 0; b < segments.size(); ++b)
    for (std::int64_t t = segments[b].begin + skip_first; t < segments[b].end; ++t) acc[static_cast<std::int64_t>(b)][t] = true;
  return mask;
}

struct sampling_options {
  std::int64_t samples_per_prompt = 8;  ///< G
  std::int64_t max_new_tokens = 256;
  double temperature = 1.0;  ///< 1 for rollouts; 0 = greedy (argmax)
  std::optional<::at::Generator> generator;  ///< none: torch's default generator (torch::manual_seed)
  /// Layers whose post-RoPE Q and K the rollout records as it decodes (rollout_batch::q, k); empty: none.
  std::vector<std::int64_t> capture_layers;
};

/// A batch of sampled responses. Row r holds sample r % G of prompt r / G (rows prompt-major).
struct rollout_batch {
  ::torch::Tensor tokens;  ///< [R, P + M] int64, M = the longest response (EOS included)
  ::torch::Tensor logp;    ///< [R, P + M] float32: log pi_T(token | prefix) on responses (T: the sampling temperature), 0 elsewhere
  std::vector<rhythm::segment> segments;  ///< {first real prompt token, P, one past the last response token}
  ::torch::Tensor group_ids;              ///< [R] int64: the prompt of each row (GRPO groups)
  std::vector<bool> finished;             ///< the row wrote EOS (else it stopped at max_new_tokens)
  ::torch::Tensor entropy;  ///< [R, P + M] float32: entropy (nats) of the distribution each response
                            ///< token was drawn from; 0 elsewhere
  /// With sampling_options::capture_layers: Q [R, L*Hq, P + M, hd] and K [R, L*Hkv, P + M, hd] of those layers,
  /// stacked as forward_with_qk stacks them and equal to its output on `tokens` up to float rounding at
  /// every position a row was decoding, prompt included for K, response only for Q (the attention pass,
  /// recorded while decoding instead of run again); zero elsewhere. Views of time-major storage
  /// (qk_recorder), not contiguous.
  /// Undefined otherwise.
  ::torch::Tensor q, k;
  double recording_seconds = 0.0;  ///< time spent recording Q and K (copies and the last tokens' forward);
                                   ///< exact on the CPU, launch time only on CUDA
  std::int64_t prompt_width = 0;          ///< P

  std::int64_t rows() const { return tokens.size(0); }
};

/// dst[0, n) = src[0, n), with non-temporal stores where the CPU has them and dst is 16-byte aligned
/// (the recorded Q/K are read once, after the rollout: caching them now would only evict the model).
/// Call stream_fence() before the data is read.
inline void stream_copy(float* dst, const float* src, std::int64_t n) {
#if defined(__SSE__)
  if (reinterpret_cast<std::uintptr_t>(dst) % 16 == 0 && n % 4 == 0) {
    for (std::int64_t i = 0; i < n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    return;
  }
#endif
  std::memcpy(dst, src, sizeof(float) * std::size_t(n));
}
inline void stream_fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

/// Records the post-RoPE Q and K of `layers` while `sample` decodes, as forward_with_qk would give them
/// for the finished batch (Q at the response positions only: rhythm's queries; 0 at the prompt's):
/// Q [R, L*Hq, N, hd] and K [R, L*Hkv, N, hd], viewed (permuted) from time-major
/// buffers [capacity, R, L*H, hd], in which a decode step's rows land in one column of R*L*H*hd floats.
/// forward_cached fills slots() with the appended tokens' Q and K; prompt() copies the prefill's K, step()
/// a decode step's. On the CPU (float) both copy with memcpy at once, and finish() zeroes the positions
/// no step wrote (a row's columns after it left the cache). Elsewhere the steps' tensors are kept and
/// scattered by finish() with one index_put_ per layer and tensor into zeroed buffers, since per-step
/// copies cost more in launches than the copying itself. `seconds` is the time spent recording.
class qk_recorder {
 public:
  qk_recorder(const model_config& c, std::vector<std::int64_t> layers, std::int64_t rows, std::int64_t capacity,
              const ::torch::TensorOptions& options)
      : layers_(std::move(layers)), slots_(layers_.size()), steps_q_(layers_.size()), steps_k_(layers_.size()),
        hq_(c.n_heads), hkv_(c.n_kv_heads),
        on_host_(options.device().is_cpu() && options.dtype() == ::caffe2::TypeMeta::Make<float>()) {
    for (const auto l : layers_)
      if (l < 0 || l >= c.n_layers)
        throw std::out_of_range("sample: capture layer " + std::to_string(l) + " outside [0, " +
                                std::to_string(c.n_layers) + ")");
    timed([&] {
      const auto L = static_cast<std::int64_t>(layers_.size());
      auto make = [&](std::int64_t H) {
        const std::vector<std::int64_t> shape{capacity, rows, L * H, c.head_dim()};
        return on_host_ ? ::torch::empty(shape, options) : ::torch::zeros(shape, options);
      };
      q_ = make(hq_), k_ = make(hkv_);
    });
  }

  const std::vector<std::int64_t>& layers() const { return layers_; }
  layer_qk* slots() { return slots_.data(); }

  /// The prefill's K (every row, columns [0, P)); its Q is not kept (rhythm's queries are the response
  /// tokens), those columns of Q are zero.
  void prompt(std::int64_t P) {
    timed([&] {
      prompt_width_ = P;
      if (on_host_) {
        written_.assign(static_cast<std::size_t>((q_.size(0) - P) * q_.size(1)), 0);
        q_.narrow(0, 0, P).zero_();  // one contiguous block
      }
      for (std::size_t i = 0; i < layers_.size(); ++i) {  // slots [R, H, P, hd] -> columns [P, R, H, hd]
        if (on_host_) copy_prompt(k_, slots_[i].k, std::int64_t(i) * hkv_);
        else key_heads(i).narrow(0, 0, P).copy_(slots_[i].k.permute({2, 0, 1, 3}));
      }
    });
  }

  /// A decode step's Q and K: cache row j holds batch row rows[j], the token at `column`.
  void step(const ::torch::Tensor& rows, std::int64_t column) {
    timed([&] {
      if (on_host_) {
        const std::int64_t* row = rows.data_ptr<std::int64_t>();
        char* written = written_.data() + (column - prompt_width_) * q_.size(1);
        for (std::int64_t j = 0; j < rows.numel(); ++j) written[row[j]] = 1;
        for (std::size_t i = 0; i < layers_.size(); ++i) {
          copy_step(q_, slots_[i].q, row, column, std::int64_t(i) * hq_);
          copy_step(k_, slots_[i].k, row, column, std::int64_t(i) * hkv_);
        }
        return;
      }
      step_rows_.push_back(rows), step_columns_.push_back(column), step_sizes_.push_back(rows.numel());
      for (std::size_t i = 0; i < layers_.size(); ++i)
        steps_q_[i].push_back(slots_[i].q.squeeze(2)), steps_k_[i].push_back(slots_[i].k.squeeze(2));
    });
  }

  /// Q and K of columns [0, N).
  std::pair<::torch::Tensor, ::torch::Tensor> finish(std::int64_t N) {
    timed([&] {
      if (on_host_) return stream_fence(), zero_unwritten(N);
      if (step_rows_.empty()) return;
      const auto rows = ::torch::cat(step_rows_);
      const auto columns = ::torch::repeat_interleave(::torch::tensor(step_columns_, ::torch::kInt64),
                                                      ::torch::tensor(step_sizes_, ::torch::kInt64))
                               .to(rows.device());
      for (std::size_t i = 0; i < layers_.size(); ++i) {  // one (column, row) per item
        query_heads(i).index_put_({columns, rows}, ::torch::cat(steps_q_[i]));
        key_heads(i).index_put_({columns, rows}, ::torch::cat(steps_k_[i]));
      }
    });
    return {q_.narrow(0, 0, N).permute({1, 2, 0, 3}), k_.narrow(0, 0, N).permute({1, 2, 0, 3})};
  }

  /// Runs `work` and adds its time to `seconds`.
  template <class Work>
  void timed(Work&& work) {
    const auto start = std::chrono::steady_clock::now();
    work();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  double seconds = 0.0;

 private:
  /// all[p, r, heads_before + h, :] = x[r, h, p, :] for x [R, H, P, hd] (float, on the CPU).
  static void copy_prompt(::torch::Tensor& all, const ::torch::Tensor& slot, std::int64_t heads_before) {
    const auto x = slot.is_contiguous() ? slot : slot.contiguous();
    const std::int64_t R = x.size(0), H = x.size(1), P = x.size(2), hd = x.size(3), LH = all.size(2);
    const float* in = x.data_ptr<float>();
    float* out = all.data_ptr<float>() + heads_before * hd;
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t h = 0; h < H; ++h)
          stream_copy(out + ((p * R + r) * LH + h) * hd, in + ((r * H + h) * P + p) * hd, hd);
  }

  /// all[column, row[j], heads_before + h, :] = x[j, h, 0, :] for x [rows, H, 1, hd] (float, on the CPU).
  static void copy_step(::torch::Tensor& all, const ::torch::Tensor& slot, const std::int64_t* row, std::int64_t column,
                        std::int64_t heads_before) {
    const auto x = slot.is_contiguous() ? slot : slot.contiguous();  // (skips a dispatch per call)
    const std::int64_t R = all.size(1), per_row = all.size(2) * all.size(3), H_hd = x.size(1) * x.size(3);
    const float* in = x.data_ptr<float>();
    float* out = all.data_ptr<float>() + column * R * per_row + heads_before * all.size(3);
    for (std::int64_t j = 0; j < x.size(0); ++j)
      stream_copy(out + row[j] * per_row, in + j * H_hd, H_hd);
  }

  /// Zeroes the (column, row) pairs of columns [P, N) that no step wrote, in Q and K.
  void zero_unwritten(std::int64_t N) {
    const std::int64_t R = q_.size(1), P = prompt_width_;
    for (auto* all : {&q_, &k_}) {
      const std::int64_t per_row = all->size(2) * all->size(3);
      float* out = all->data_ptr<float>();
      for (std::int64_t c = P; c < N; ++c)
        for (std::int64_t r = 0; r < R; ++r)
          if (!written_[std::size_t((c - P) * R + r)]) std::fill_n(out + (c * R + r) * per_row, per_row, 0.0f);
    }
  }

  ::torch::Tensor query_heads(std::size_t i) { return q_.narrow(2, std::int64_t(i) * hq_, hq_); }
  ::torch::Tensor key_heads(std::size_t i) { return k_.narrow(2, std::int64_t(i) * hkv_, hkv_); }

  std::vector<std::int64_t> layers_;
  std::vector<layer_qk> slots_;
  ::torch::Tensor q_, k_;  ///< [capacity, R, L * H, hd]
  std::int64_t prompt_width_ = 0;
  std::vector<char> written_;  ///< [(capacity - P) * R]: column P + c of row r was written (on the CPU)
  std::vector<::torch::Tensor> step_rows_;                   ///< elsewhere: each step's rows,
  std::vector<std::int64_t> step_columns_, step_sizes_;      ///< its column and row count,
  std::vector<std::vector<::torch::Tensor>> steps_q_, steps_k_;  ///< and its Q and K per layer
  std::int64_t hq_, hkv_;
  bool on_host_;
};

/// Samples G responses per prompt with the KV cache, one token per step for all rows, until every
/// row wrote EOS or max_new_tokens were written. After its EOS a row is fed PAD (masked, not
/// recorded); whenever a quarter of the cached rows have finished, the finished rows leave the cache,
/// so that the cost follows the tokens written rather than rows x the longest response. With
/// capture_layers, each step's Q and K of those layers are copied into the batch's q and k (the last
/// token of every row is fed once more so that its Q and K are recorded too).
///
/// logp and entropy are those of the policy the tokens were drawn from, softmax(logits / temperature)
/// (of the model itself, temperature 1, when greedy): what token_statistics_of(..., temperature)
/// recomputes and what PPO's ratio needs. Runs without autograd on
/// the model's device; `tokens` and `logp` stay there, `group_ids` is on the CPU.
inline rollout_batch sample(transformer& model, const prompt_batch& prompts, const sampling_options& opt) {
  ::torch::NoGradGuard no_grad;
  const std::int64_t G = opt.samples_per_prompt, P = prompts.width(), M = opt.max_new_tokens;
  if (G < 1 || M < 1) throw std::invalid_argument("sample: samples_per_prompt and max_new_tokens must be >= 1");
  const auto device = model->embedding->weight.device();
  const auto prompt_tokens = prompts.tokens.to(device).repeat_interleave(G, 0);
  const auto prompt_valid = prompts.valid.to(device).repeat_interleave(G, 0);
  const std::int64_t R = prompt_tokens.size(0);

  std::optional<qk_recorder> recorder;
  if (!opt.capture_layers.empty())
    recorder.emplace(model->config, opt.capture_layers, R, P + M, model->embedding->weight.options());
  const std::vector<std::int64_t> no_layers;
  const auto& layers = recorder ? recorder->layers() : no_layers;
  layer_qk* capture = recorder ? recorder->slots() : nullptr;

  auto cache = model->new_cache(R, P + M);
  auto logits = model->forward_cached(cache, prompt_tokens, prompt_valid, layers, capture).select(1, P - 1);  // [R, V]
  if (recorder) recorder->prompt(P);
  auto generated = ::torch::full({R, M}, tokenizer::pad, prompt_tokens.options());
  auto generated_logp = ::torch::zeros({R, M}, logits.options().dtype(::torch::kFloat32));
  auto generated_entropy = ::torch::zeros({R, M}, logits.options().dtype(::torch::kFloat32));
  auto lengths = ::torch::zeros({R}, prompt_tokens.options());
  // The cache holds the rows still decoding: rows[i] is the batch row of cache row i, done[i] says it wrote EOS.
  auto rows = ::torch::arange(R, prompt_tokens.options());
  auto done = ::torch::zeros({R}, prompt_valid.options());
  std::int64_t live_after_compaction = R;
  const ::c10::optional<::at::Generator> generator =
      opt.generator ? ::c10::optional<::at::Generator>(*opt.generator) : ::c10::nullopt;
  std::int64_t steps = 0;
  while (steps < M) {
    const double temperature = opt.temperature > 0.0 ? opt.temperature : 1.0;
    const auto log_probs = ::torch::log_softmax(logits.to(::torch::kFloat32) / temperature, -1);
    auto next = opt.temperature <= 0.0 ? log_probs.argmax(-1)
                                       : ::torch::multinomial(log_probs.exp(), 1, false, generator).squeeze(1);
    next = next.masked_fill(done, tokenizer::pad);
    generated.select(1, steps).index_copy_(0, rows, next);
    const auto next_logp = log_probs.gather(1, next.unsqueeze(1)).squeeze(1).masked_fill(done, 0.0);
    generated_logp.select(1, steps).index_copy_(0, rows, next_logp);
    const auto entropy = (-(log_probs.exp() * log_probs).sum(-1)).masked_fill(done, 0.0);
    generated_entropy.select(1, steps).index_copy_(0, rows, entropy);
    lengths.index_add_(0, rows, done.logical_not().to(::torch::kInt64));
    auto was_done = done;
    done = done | next.eq(tokenizer::eos);
    ++steps;
    const std::int64_t live = done.logical_not().sum().item<std::int64_t>();
    if (steps == M || live == 0) {
      if (recorder) recorder->timed([&] {  // the last tokens' Q and K: feed them once more, for the rows that wrote one
        const auto keep = was_done.logical_not().nonzero().squeeze(1);
        cache.keep_rows(keep);
        rows = rows.index_select(0, keep);
        (void)model->forward_cached(cache, next.index_select(0, keep).unsqueeze(1), {}, layers, capture);
      });
      if (recorder) recorder->step(rows, P + steps - 1);
      break;
    }
    if (4 * live <= 3 * live_after_compaction) {  // a quarter fewer rows: drop those finished before this step
      // A row that just wrote EOS stays until its EOS is fed, so that its Q and K can be recorded; the
      // same rule without recording keeps the draws identical with and without it.
      const auto keep = was_done.logical_not().nonzero().squeeze(1);
      cache.keep_rows(keep);
      rows = rows.index_select(0, keep);
      next = next.index_select(0, keep);
      done = done.index_select(0, keep);
      was_done = was_done.index_select(0, keep);
      live_after_compaction = live;
    }
    logits = model->forward_cached(cache, next.unsqueeze(1), was_done.logical_not().unsqueeze(1), layers, capture)
                 .select(1, 0);
    if (recorder) recorder->step(rows, P + steps - 1);
  }
  rollout_batch out;
  out.prompt_width = P;
  out.tokens = ::torch::cat({prompt_tokens, generated.narrow(1, 0, steps)}, 1);
  out.logp = ::torch::cat({::torch::zeros({R, P}, generated_logp.options()), generated_logp.narrow(1, 0, steps)}, 1);
  out.entropy = ::torch::cat({::torch::zeros({R, P}, generated_entropy.options()), generated_entropy.narrow(1, 0, steps)}, 1);
  if (recorder) {
    std::tie(out.q, out.k) = recorder->finish(P + steps);
    out.recording_seconds = recorder->seconds;
  }
  out.group_ids = ::torch::arange(R, ::torch::kInt64).div(G, "floor");
  const auto lengths_host = lengths.cpu();
  const auto tokens_host = out.tokens.cpu();
  for (std::int64_t r = 0; r < R; ++r) {
    const std::int64_t end = P + lengths_host[r].item<std::int64_t>();
    out.segments.push_back({prompts.begin[static_cast<std::size_t>(r / G)], P, end});
    out.finished.push_back(end > P && tokens_host[r][end - 1].item<std::int64_t>() == tokenizer::eos);
  }
  return out;
}

/// Response text of each row (up to its EOS).
inline std::vector<std::string> decode_responses(const tokenizer& tok, const rollout_batch& batch) {
  const auto tokens = batch.tokens.cpu().contiguous();
  std::vector<std::string> out;
  for (std::int64_t r = 0; r < batch.rows(); ++r) {
    const auto& s = batch.segments[static_cast<std::size_t>(r)];
    const auto* row = tokens.data_ptr<std::int64_t>() + r * tokens.size(1);
    out.push_back(tok.decode(std::span<const std::int64_t>(row + s.response_begin, row + s.end)));
  }
  return out;
}

/// Per-token statistics [B, N] float32, aligned with the scored token; 0 outside (begin, end).
struct token_statistics {
  ::torch::Tensor logp;     ///< log pi(tokens[t] | tokens[< t]); carries the graph of `logits`
  ::torch::Tensor entropy;  ///< entropy of pi(. | tokens[< t]) in nats; detached (undefined if not asked)
};

/// Statistics from logits [B, N, V] of tokens [B, N] (e.g. those of forward_with_qk), of the policy
/// softmax(logits / temperature).
inline token_statistics token_statistics_from_logits(const ::torch::Tensor& logits, const ::torch::Tensor& tokens,
                                                     std::span<const rhythm::segment> segments, bool with_entropy = true,
                                                     double temperature = 1.0) {
  const std::int64_t B = tokens.size(0), N = tokens.size(1);
  // Position t is scored by the logits at t - 1; t = begin has no prefix inside the sequence.
  const auto scored = valid_mask(segments, N, /*skip_first=*/1).to(tokens.device());
  const auto log_probs = ::torch::log_softmax(logits.narrow(1, 0, N - 1).to(::torch::kFloat32) / temperature, -1);
  const auto picked = log_probs.gather(2, tokens.narrow(1, 1, N - 1).unsqueeze(2)).squeeze(2);
  const auto zero_column = ::torch::zeros({B, 1}, picked.options());
  token_statistics out;
  out.logp = ::torch::cat({zero_column, picked}, 1).masked_fill(scored.logical_not(), 0.0);
  if (with_entropy) {
    const auto lp = log_probs.detach();
    const auto entropy = -(lp.exp() * lp).sum(-1);
    out.entropy = ::torch::cat({zero_column, entropy}, 1).masked_fill(scored.logical_not(), 0.0);
  }
  return out;
}

/// One full forward of tokens [B, N] (valid = the segments' real tokens) and its statistics: logp is
/// differentiable (the PPO update's new log-probabilities), entropy is detached (the entropy policy).
inline token_statistics token_statistics_of(transformer& model, const ::torch::Tensor& tokens,
                                            std::span<const rhythm::segment> segments, bool with_entropy = true,
                                            double temperature = 1.0) {
  const auto logits = model->forward(tokens, valid_mask(segments, tokens.size(1)).to(tokens.device()));
  return token_statistics_from_logits(logits, tokens, segments, with_entropy, temperature);
}

}  // namespace grpo
