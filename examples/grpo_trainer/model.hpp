#pragma once
/// The model and its tokenizer.
///
/// A character-level tokenizer over a fixed alphabet: one token per character, plus three special
/// tokens. Every task of tasks.hpp writes its prompts and solutions in this alphabet.
///
///   id 0        PAD  fills the left of short prompts and the right of finished responses
///   id 1        BOS  first token of every prompt
///   id 2        EOS  last token of every response (the model's "end")
///   id 3 ...    ' ', '0'-'9', "+-*/=()<>,;:.?!|", 'a'-'z'   (53 characters; vocab_size() = 56)
///
/// Sequences are laid out as BOS prompt response EOS (see sampling.hpp for batches).
///
/// A small decoder-only transformer in LibTorch's C++ frontend, Llama-shaped:
///
///   tokens [B, T] -> embedding [B, T, d]
///   N x { x += attention(rms_norm(x)) ; x += swiglu(rms_norm(x)) }     pre-norm blocks
///   rms_norm -> logits [B, T, V] = x W^T                                 own head W [V, d], not tied to E
///
/// Attention: Hq query heads, Hkv key/value heads (GQA: query head h reads kv head h / (Hq / Hkv)),
/// head_dim = d / Hq, rotary position embedding (RoPE) on Q and K, scale 1 / sqrt(head_dim), causal.
///
/// Padding. Batches are left-padded: a `valid` mask [B, T] (true = real token) says where each
/// sequence starts. Pad keys are masked out of every row (a pad query attends to itself only, so
/// that its row stays finite; its output is never read by a real token). RoPE positions count real
/// tokens only: the first real token of each sequence has position 0, so a left-padded sequence gets
/// the logits of the same sequence unpadded (up to float rounding). Right padding (after EOS) needs
/// no mask: causality already hides it from real tokens.
///
/// Three ways to run the same weights:
///   forward(tokens, valid)                 logits [B, T, V]; differentiable (training)
///   forward_with_qk(tokens, valid, layers) logits plus post-RoPE Q [B, L*Hq, T, hd] and K [B, L*Hkv, T, hd]
///                                          of the chosen layers, stacked on the head axis (rhythm's input)
///   forward_cached(cache, tokens, valid)   appends T tokens to a kv_cache and returns their logits
///                                          [B, T, V] (prefill with the prompt, then one token per step)
#include <torch/torch.h>

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <rhythm/heads/layer_selection.hpp>

namespace grpo {

class tokenizer {
 public:
  static constexpr std::int64_t pad = 0, bos = 1, eos = 2;
  static constexpr std::string_view alphabet = " 0123456789+-*/=()<>,;:.?!|abcdefghijklmnopqrstuvwxyz";

  constexpr tokenizer() {
    id_of_.fill(-1);
    for (std::size_t i = 0; i < alphabet.size(); ++i)
      id_of_[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int64_t>(i) + first_char_id;
  }

  /// Number of token ids: 3 special tokens + the alphabet.
  static constexpr std::int64_t vocab_size() { return first_char_id + static_cast<std::int64_t>(alphabet.size()); }

  /// True when every character of `text` is in the alphabet.
  constexpr bool can_encode(std::string_view text) const {
    for (char c : text)
      if (id_of_[static_cast<unsigned char>(c)] < 0) return false;
    return true;
  }

  /// One id per character; no special token is added. Throws std::invalid_argument naming the first
  /// character outside the alphabet and its position.
  std::vector<std::int64_t> encode(std::string_view text) const {
    std::vector<std::int64_t> ids;
    ids.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
      const std::int64_t id = id_of_[static_cast<unsigned char>(text[i])];
      if (id < 0)
        throw std::invalid_argument("tokenizer: character " + describe(text[i]) + " at position " + std::to_string(i) +
                                    " of \"" + std::string(text) + "\" is not in the alphabet \"" +
                                    std::string(alphabet) + "\"");
      ids.push_back(id);
    }
    return ids;
  }

  /// BOS followed by the characters of `prompt`: what the model is conditioned on.
  std::vector<std::int64_t> encode_prompt(std::string_view prompt) const {
    std::vector<std::int64_t> ids{bos};
    const auto body = encode(prompt);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }

  /// The characters of `response` followed by EOS: what the model is trained to write.
  std::vector<std::int64_t> encode_response(std::string_view response) const {
    auto ids = encode(response);
    ids.push_back(eos);
    return ids;
  }

  /// Text of `ids`: PAD and BOS are skipped; EOS ends the text when `stop_at_eos` (else it is skipped).
  /// Throws std::out_of_range for an id outside [0, vocab_size()).
  std::string decode(std::span<const std::int64_t> ids, bool stop_at_eos = true) const {
    std::string text;
    text.reserve(ids.size());
    for (const std::int64_t id : ids) {
      if (id < 0 || id >= vocab_size())
        throw std::out_of_range("tokenizer: id " + std::to_string(id) + " outside [0, " +
                                std::to_string(vocab_size()) + ")");
      if (id == eos && stop_at_eos) break;
      if (id >= first_char_id) text.push_back(alphabet[static_cast<std::size_t>(id - first_char_id)]);
    }
    return text;
  }

  /// Readable form of one id: the character, or "<pad>", "<bos>", "<eos>" (for tables and debugging).
  std::string token_text(std::int64_t id) const {
    if (id == pad) return "<pad>";
    if (id == bos) return "<bos>";
    if (id == eos) return "<eos>";
    return decode(std::span<const std::int64_t>(&id, 1));
  }

 private:
  static constexpr std::int64_t first_char_id = 3;
  std::array<std::int64_t, 256> id_of_{};

  static std::string describe(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 32 && u < 127) return std::string("'") + c + "'";
    return "byte " + std::to_string(u);
  }
};

/// Shape of the model. mlp_hidden = 0 picks 8/3 d_model rounded up to a multiple of 8 (Llama's rule).
struct model_config {
  std::int64_t vocab_size = 0;
  std::int64_t d_model = 64;
  std::int64_t n_layers = 2;
  std::int64_t n_heads = 4;     ///< query heads Hq
  std::int64_t n_kv_heads = 2;  ///< key/value heads Hkv; Hq % Hkv == 0
  std::int64_t mlp_hidden = 0;
  std::int64_t max_seq_len = 512;  ///< longest sequence (prompt + response, padding included)
  double rope_base = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;  ///< N(0, init_std) weights; output projections of each block / sqrt(2 n_layers)

  std::int64_t head_dim() const { return d_model / n_heads; }
  std::int64_t mlp_hidden_size() const { return mlp_hidden > 0 ? mlp_hidden : (8 * d_model / 3 + 7) / 8 * 8; }

  /// Throws std::invalid_argument naming the first inconsistent field.
  void validate() const {
    auto require = [](bool ok, const std::string& what) {
      if (!ok) throw std::invalid_argument("model_config: " + what);
    };
    require(vocab_size > 0, "vocab_size must be > 0, got " + std::to_string(vocab_size));
    require(n_layers > 0 && n_heads > 0 && n_kv_heads > 0, "n_layers, n_heads and n_kv_heads must be > 0");
    require(d_model % n_heads == 0, "d_model (" + std::to_string(d_model) + ") must be a multiple of n_heads (" +
                                        std::to_string(n_heads) + ")");
    require(head_dim() % 2 == 0, "head_dim = d_model / n_heads must be even for RoPE, got " + std::to_string(head_dim()));
    require(n_heads % n_kv_heads == 0, "n_heads (" + std::to_string(n_heads) + ") must be a multiple of n_kv_heads (" +
                                           std::to_string(n_kv_heads) + ")");
    require(max_seq_len > 0 && rope_base > 1.0 && norm_eps > 0.0, "max_seq_len > 0, rope_base > 1, norm_eps > 0");
  }
};

/// Number of trainable parameters of a model of this shape.
inline std::int64_t parameter_count(const model_config& c) {
  const std::int64_t d = c.d_model, hd = c.head_dim(), ff = c.mlp_hidden_size();
  const std::int64_t attention = d * c.n_heads * hd + 2 * d * c.n_kv_heads * hd + c.n_heads * hd * d;
  const std::int64_t block = 2 * d + attention + 3 * d * ff;
  return 2 * c.vocab_size * d + c.n_layers * block + d;  // embedding and head, blocks, final norm
}

/// Layers whose Q and K feed rhythm: all of them when n_layers <= 5, else rhythm::middle_third_layers(n_layers, 5).
inline std::vector<std::int64_t> default_capture_layers(std::int64_t n_layers) {
  if (n_layers > 5) return rhythm::middle_third_layers(n_layers, 5);
  std::vector<std::int64_t> all(static_cast<std::size_t>(n_layers));
  std::iota(all.begin(), all.end(), std::int64_t{0});
  return all;
}

/// RoPE tables cos, sin [max_seq_len, head_dim / 2]: angle(p, i) = p * base^(-2i / head_dim), computed in double.
inline std::pair<::torch::Tensor, ::torch::Tensor> rope_tables(std::int64_t max_seq_len, std::int64_t head_dim,
                                                                double base) {
  const auto opts = ::torch::TensorOptions().dtype(::torch::kFloat64);
  const auto inv_freq = ::torch::pow(base, -::torch::arange(0, head_dim, 2, opts) / double(head_dim));
  const auto angles = ::torch::outer(::torch::arange(max_seq_len, opts), inv_freq);
  return {angles.cos().to(::torch::kFloat32), angles.sin().to(::torch::kFloat32)};
}

/// Rotates x [B, H, T, hd] by per-token angles (cos, sin [B, 1, T, hd / 2]); the pairs are (x_i, x_{i + hd/2})
/// (the "rotate half" layout of GPT-NeoX and Llama).
inline ::torch::Tensor apply_rope(const ::torch::Tensor& x, const ::torch::Tensor& cos, const ::torch::Tensor& sin) {
  const auto halves = x.chunk(2, -1);
  return ::torch::cat({halves[0] * cos - halves[1] * sin, halves[0] * sin + halves[1] * cos}, -1);
}

/// x / rms(x) * weight over the last axis.
struct rms_norm_impl : ::torch::nn::Module {
  rms_norm_impl(std::int64_t dim, double eps) : eps(eps) { weight = register_parameter("weight", ::torch::ones({dim})); }
  ::torch::Tensor forward(const ::torch::Tensor& x) {
    return x * ::torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
  }
  ::torch::Tensor weight;
  double eps;
};
TORCH_MODULE_IMPL(rms_norm, rms_norm_impl);

/// Keys and values of every layer for incremental decoding (inference only: no autograd).
struct kv_cache {
  std::vector<::torch::Tensor> keys, values;  ///< per layer [B, Hkv, capacity, hd]; keys post-RoPE
  ::torch::Tensor key_valid;                  ///< [B, capacity] bool: real tokens among the cached ones
  ::torch::Tensor next_position;              ///< [B] int64: RoPE position of each sequence's next real token
  std::int64_t length = 0;                    ///< positions filled so far

  std::int64_t capacity() const { return key_valid.size(1); }

  /// Keeps only the sequences `rows` (int64 indices, in that order); copies the cache.
  void keep_rows(const ::torch::Tensor& rows) {
    for (auto& k : keys) k = k.index_select(0, rows);
    for (auto& v : values) v = v.index_select(0, rows);
    key_valid = key_valid.index_select(0, rows);
    next_position = next_position.index_select(0, rows);
  }
};

/// What one forward pass shares between layers: RoPE angles of the new tokens and the attention mask.
struct attention_context {
  ::torch::Tensor cos, sin;  ///< [B, 1, T, hd / 2]
  ::torch::Tensor bias;      ///< [B, 1, 1, T, S]: 0 where query t may read key s, -inf where not (S = cached + T)
};

/// Post-RoPE Q [B, Hq, T, hd] and K [B, Hkv, T, hd] of one layer.
struct layer_qk {
  ::torch::Tensor q, k;
};

/// Causal self-attention with RoPE and grouped key/value heads.
struct attention_impl : ::torch::nn::Module {
  explicit attention_impl(const model_config& c)
      : n_heads(c.n_heads), n_kv_heads(c.n_kv_heads), head_dim(c.head_dim()) {
    auto linear = [&](const char* name, std::int64_t in, std::int64_t out) {
      return register_module(name, ::torch::nn::Linear(::torch::nn::LinearOptions(in, out).bias(false)));
    };
    q_proj = linear("q_proj", c.d_model, n_heads * head_dim);
    k_proj = linear("k_proj", c.d_model, n_kv_heads * head_dim);
    v_proj = linear("v_proj", c.d_model, n_kv_heads * head_dim);
    o_proj = linear("o_proj", n_heads * head_dim, c.d_model);
  }

  /// x [B, T, d] -> [B, T, d]. With `cache_keys`/`cache_values` ([B, Hkv, capacity, hd]), the new keys and
  /// values are written at [cached, cached + T) and attention reads [0, cached + T). `capture` receives Q, K.
  ::torch::Tensor forward(const ::torch::Tensor& x, const attention_context& ctx, ::torch::Tensor* cache_keys,
                          ::torch::Tensor* cache_values, std::int64_t cached, layer_qk* capture) {
    const std::int64_t B = x.size(0), T = x.size(1), group = n_heads / n_kv_heads;
    auto heads = [&](const ::torch::Tensor& y, std::int64_t h) { return y.view({B, T, h, head_dim}).transpose(1, 2); };
    const auto q = apply_rope(heads(q_proj(x), n_heads), ctx.cos, ctx.sin);
    auto k = apply_rope(heads(k_proj(x), n_kv_heads), ctx.cos, ctx.sin);
    auto v = heads(v_proj(x), n_kv_heads);
    if (capture) *capture = {q, k};
    if (cache_keys) {
      cache_keys->narrow(2, cached, T).copy_(k);
      cache_values->narrow(2, cached, T).copy_(v);
      k = cache_keys->narrow(2, 0, cached + T);
      v = cache_values->narrow(2, 0, cached + T);
    }
    // Query heads grouped under their kv head ([B, Hkv, group, T, hd]); K and V are never repeated.
    const std::int64_t S = k.size(2);
    const auto q_grouped = (q * (1.0 / std::sqrt(double(head_dim)))).reshape({B, n_kv_heads, group, T, head_dim});
    ::torch::Tensor out;
    if (T == 1) {  // decoding: elementwise products beat bmm, which loops over the B * Hkv tiny matrices
      const auto scores = (q_grouped * k.unsqueeze(2)).sum(-1).unsqueeze(3) + ctx.bias;  // [B, Hkv, group, 1, S]
      const auto probs = ::torch::softmax(scores, -1).squeeze(3).unsqueeze(-1);          // [B, Hkv, group, S, 1]
      out = (probs * v.unsqueeze(2)).sum(-2).view({B, n_heads, T, head_dim});
    } else {
      const auto scores = ::torch::matmul(q_grouped.view({B, n_kv_heads, group * T, head_dim}), k.transpose(-2, -1));
      const auto probs = ::torch::softmax(scores.view({B, n_kv_heads, group, T, S}) + ctx.bias, -1);
      out = ::torch::matmul(probs.view({B, n_kv_heads, group * T, S}), v).view({B, n_heads, T, head_dim});
    }
    return o_proj(out.transpose(1, 2).reshape({B, T, n_heads * head_dim}));
  }

  std::int64_t n_heads, n_kv_heads, head_dim;
  ::torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE_IMPL(attention, attention_impl);

/// down(silu(gate(x)) * up(x)).
struct swiglu_impl : ::torch::nn::Module {
  swiglu_impl(std::int64_t d_model, std::int64_t hidden) {
    auto linear = [&](const char* name, std::int64_t in, std::int64_t out) {
      return register_module(name, ::torch::nn::Linear(::torch::nn::LinearOptions(in, out).bias(false)));
    };
    gate = linear("gate", d_model, hidden);
    up = linear("up", d_model, hidden);
    down = linear("down", hidden, d_model);
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return down(::torch::silu(gate(x)) * up(x)); }
  ::torch::nn::Linear gate{nullptr}, up{nullptr}, down{nullptr};
};
TORCH_MODULE_IMPL(swiglu, swiglu_impl);

/// x + attention(rms_norm(x)), then + swiglu(rms_norm(.)).
struct decoder_block_impl : ::torch::nn::Module {
  explicit decoder_block_impl(const model_config& c)
      : attention_norm(register_module("attention_norm", rms_norm(c.d_model, c.norm_eps))),
        attn(register_module("attention", attention(c))),
        mlp_norm(register_module("mlp_norm", rms_norm(c.d_model, c.norm_eps))),
        mlp(register_module("mlp", swiglu(c.d_model, c.mlp_hidden_size()))) {}

  ::torch::Tensor forward(const ::torch::Tensor& x, const attention_context& ctx, ::torch::Tensor* cache_keys,
                          ::torch::Tensor* cache_values, std::int64_t cached, layer_qk* capture) {
    const auto h = x + attn->forward(attention_norm(x), ctx, cache_keys, cache_values, cached, capture);
    return h + mlp(mlp_norm(h));
  }

  rms_norm attention_norm;
  attention attn;
  rms_norm mlp_norm;
  swiglu mlp;
};
TORCH_MODULE_IMPL(decoder_block, decoder_block_impl);

/// Logits plus the stacked post-RoPE Q and K of the chosen layers (in the order given).
struct qk_forward {
  ::torch::Tensor logits;  ///< [B, T, V]
  ::torch::Tensor q;       ///< [B, L * Hq, T, hd]: layer layers[i]'s head h at index i * Hq + h
  ::torch::Tensor k;       ///< [B, L * Hkv, T, hd]: layer layers[i]'s kv head j at index i * Hkv + j
};

/// The decoder (see the file comment). Parameters: embedding.weight [V, d],
/// block<l>.{attention_norm, attention.{q,k,v,o}_proj, mlp_norm, mlp.{gate, up, down}}, final_norm, head.weight [V, d].
/// The head is not tied to the embedding: tied, two tokens seen in the same contexts ('+' and '-' in the
/// chain task) were pulled onto one vector (distance 0.04 at norm 1.06 after 2000 warm-start steps) and
/// the model could never copy which one it read.
struct transformer_impl : ::torch::nn::Module {
  explicit transformer_impl(const model_config& c) : config(c) {
    config.validate();
    embedding = register_module("embedding", ::torch::nn::Embedding(c.vocab_size, c.d_model));
    for (std::int64_t l = 0; l < c.n_layers; ++l)
      blocks.push_back(register_module("block" + std::to_string(l), decoder_block(c)));
    final_norm = register_module("final_norm", rms_norm(c.d_model, c.norm_eps));
    head = register_module("head", ::torch::nn::Linear(::torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
    auto [cos, sin] = rope_tables(c.max_seq_len, c.head_dim(), c.rope_base);
    rope_cos = register_buffer("rope_cos", cos);
    rope_sin = register_buffer("rope_sin", sin);

    ::torch::NoGradGuard no_grad;
    const double out_std = c.init_std / std::sqrt(2.0 * double(c.n_layers));
    embedding->weight.normal_(0.0, c.init_std);
    head->weight.normal_(0.0, c.init_std);
    for (auto& block : blocks) {
      for (auto* lin : {&block->attn->q_proj, &block->attn->k_proj, &block->attn->v_proj, &block->mlp->gate,
                        &block->mlp->up})
        (*lin)->weight.normal_(0.0, c.init_std);
      block->attn->o_proj->weight.normal_(0.0, out_std);
      block->mlp->down->weight.normal_(0.0, out_std);
    }
  }

  /// tokens [B, T] int64, valid [B, T] bool (undefined: all real) -> logits [B, T, V].
  ::torch::Tensor forward(const ::torch::Tensor& tokens, const ::torch::Tensor& valid = {}) {
    return run(tokens, full_context(tokens, valid), nullptr, {}, nullptr);
  }

  /// forward() that also returns post-RoPE Q and K of `layers` (indices in [0, n_layers)), stacked on the
  /// head axis in the given order. Autograd follows the caller's grad mode (call it under NoGradGuard for
  /// rhythm's attention pass).
  qk_forward forward_with_qk(const ::torch::Tensor& tokens, const ::torch::Tensor& valid,
                             const std::vector<std::int64_t>& layers) {
    if (layers.empty()) throw std::invalid_argument("forward_with_qk: no layer to capture");
    for (const auto l : layers)
      if (l < 0 || l >= config.n_layers)
        throw std::out_of_range("forward_with_qk: layer " + std::to_string(l) + " outside [0, " +
                                std::to_string(config.n_layers) + ")");
    std::vector<layer_qk> captured(layers.size());
    qk_forward out;
    out.logits = run(tokens, full_context(tokens, valid), nullptr, layers, captured.data());
    std::vector<::torch::Tensor> qs, ks;
    for (const auto& c : captured) qs.push_back(c.q), ks.push_back(c.k);
    out.q = ::torch::cat(qs, 1);
    out.k = ::torch::cat(ks, 1);
    return out;
  }

  /// An empty cache for `batch` sequences of up to `capacity` tokens (<= max_seq_len) on the model's device.
  kv_cache new_cache(std::int64_t batch, std::int64_t capacity) const {
    if (capacity < 1 || capacity > config.max_seq_len)
      throw std::invalid_argument("new_cache: capacity " + std::to_string(capacity) + " outside [1, max_seq_len = " +
                                  std::to_string(config.max_seq_len) + "]");
    const auto opts = embedding->weight.options();
    kv_cache cache;
    for (std::int64_t l = 0; l < config.n_layers; ++l) {
      cache.keys.push_back(::torch::zeros({batch, config.n_kv_heads, capacity, config.head_dim()}, opts));
      cache.values.push_back(::torch::zeros({batch, config.n_kv_heads, capacity, config.head_dim()}, opts));
    }
    cache.key_valid = ::torch::zeros({batch, capacity}, opts.dtype(::torch::kBool));
    cache.next_position = ::torch::zeros({batch}, opts.dtype(::torch::kInt64));
    return cache;
  }

  /// Appends tokens [B, T] (valid [B, T] bool; undefined: all real) to `cache` and returns their logits
  /// [B, T, V]: the logits forward() gives at those positions for the whole sequence so far. Prefill = the
  /// left-padded prompts; decode = one token [B, 1] per step. Runs without autograd.
  /// With `layers` and `capture` (layers.size() slots), capture[i] receives layer layers[i]'s post-RoPE Q
  /// [B, Hq, T, hd] and K [B, Hkv, T, hd] of the appended tokens (what forward_with_qk gives at those positions).
  ::torch::Tensor forward_cached(kv_cache& cache, const ::torch::Tensor& tokens, const ::torch::Tensor& valid_in = {},
                                 const std::vector<std::int64_t>& layers = {}, layer_qk* capture = nullptr) {
    ::torch::NoGradGuard no_grad;
    const std::int64_t B = tokens.size(0), T = tokens.size(1), S = cache.length + T;
    if (B != cache.key_valid.size(0) || S > cache.capacity())
      throw std::invalid_argument("forward_cached: " + std::to_string(B) + " x " + std::to_string(T) +
                                  " tokens do not fit a cache of " + std::to_string(cache.key_valid.size(0)) + " x " +
                                  std::to_string(cache.capacity()) + " holding " + std::to_string(cache.length));
    const auto valid = valid_in.defined() ? valid_in.to(::torch::kBool) : ::torch::ones_like(tokens, ::torch::kBool);
    const auto positions = (cache.next_position.unsqueeze(1) + valid.cumsum(1) - 1).clamp_min(0);
    cache.key_valid.narrow(1, cache.length, T).copy_(valid);
    cache.next_position += valid.sum(1);
    const auto query_index = ::torch::arange(cache.length, S, tokens.options()).unsqueeze(1);  // [T, 1]
    const auto key_index = ::torch::arange(S, tokens.options()).unsqueeze(0);                  // [1, S]
    const auto key_valid = cache.key_valid.narrow(1, 0, S).unsqueeze(1);                        // [B, 1, S]
    const auto ctx = make_context(positions, (key_index > query_index) | key_valid.logical_not(), query_index, key_index);
    const auto logits = run(tokens, ctx, &cache, capture ? layers : std::vector<std::int64_t>{}, capture);
    cache.length = S;
    return logits;
  }

  model_config config;
  ::torch::nn::Embedding embedding{nullptr};
  ::torch::nn::Linear head{nullptr};
  std::vector<decoder_block> blocks;
  rms_norm final_norm{nullptr};
  ::torch::Tensor rope_cos, rope_sin;  ///< buffers [max_seq_len, hd / 2]

 private:
  /// RoPE angles at `positions` [B, T] and the mask from `blocked` [B, T, S] (diagonal always open).
  attention_context make_context(const ::torch::Tensor& positions, const ::torch::Tensor& blocked,
                                 const ::torch::Tensor& query_index, const ::torch::Tensor& key_index) const {
    const std::int64_t B = positions.size(0), T = positions.size(1);
    const auto flat = positions.reshape({-1});
    auto angles = [&](const ::torch::Tensor& table) {
      return table.index_select(0, flat).view({B, 1, T, table.size(1)});
    };
    const auto open_diagonal = (key_index == query_index).unsqueeze(0);
    const auto bias = ::torch::zeros(blocked.sizes(), rope_cos.options())
                          .masked_fill_(blocked & open_diagonal.logical_not(), -std::numeric_limits<float>::infinity());
    return {angles(rope_cos), angles(rope_sin), bias.view({B, 1, 1, T, -1})};
  }

  attention_context full_context(const ::torch::Tensor& tokens, const ::torch::Tensor& valid_in) const {
    const std::int64_t T = tokens.size(1);
    if (T > config.max_seq_len)
      throw std::invalid_argument("forward: " + std::to_string(T) + " tokens exceed max_seq_len " +
                                  std::to_string(config.max_seq_len));
    const auto valid = valid_in.defined() ? valid_in.to(::torch::kBool) : ::torch::ones_like(tokens, ::torch::kBool);
    const auto positions = (valid.cumsum(1) - 1).clamp_min(0);
    const auto index = ::torch::arange(T, tokens.options());
    const auto query_index = index.unsqueeze(1), key_index = index.unsqueeze(0);
    return make_context(positions, (key_index > query_index) | valid.logical_not().unsqueeze(1), query_index, key_index);
  }

  /// Embedding -> blocks -> final norm -> head. `capture[i]` receives layer layers[i]'s Q and K.
  ::torch::Tensor run(const ::torch::Tensor& tokens, const attention_context& ctx, kv_cache* cache,
                      const std::vector<std::int64_t>& layers, layer_qk* capture) {
    auto x = embedding(tokens);
    for (std::int64_t l = 0; l < config.n_layers; ++l) {
      layer_qk* slot = nullptr;
      for (std::size_t i = 0; i < layers.size(); ++i)
        if (layers[i] == l) slot = &capture[i];
      auto* keys = cache ? &cache->keys[static_cast<std::size_t>(l)] : nullptr;
      auto* values = cache ? &cache->values[static_cast<std::size_t>(l)] : nullptr;
      x = blocks[static_cast<std::size_t>(l)]->forward(x, ctx, keys, values, cache ? cache->length : 0, slot);
      for (std::size_t i = 0; i < layers.size(); ++i)  // a layer listed twice is captured twice
        if (layers[i] == l && slot != &capture[i]) capture[i] = *slot;
    }
    return ::torch::nn::functional::linear(final_norm(x), head->weight);
  }
};
TORCH_MODULE_IMPL(transformer, transformer_impl);

/// CPU threading for small models: `threads` intra-op threads for torch, and OpenBLAS (when it is the BLAS
/// loaded) single-threaded so that its pool does not compete with torch's. Returns a warning (empty if none)
/// when OMP_WAIT_POLICY is not "passive": torch's OpenMP threads then spin between parallel regions, and on
/// a machine whose cores are busy (other processes, or more threads than cores) the sampling loop's thousands
/// of small ops ran 10-25x slower in our measurements. The variable is read when the process starts.
inline std::string configure_cpu_threads(int threads) {
  ::torch::set_num_threads(threads);
  if (auto* set_openblas_threads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_openblas_threads(1);
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const std::string value = policy ? policy : "";
  if (threads > 1 && value != "passive" && value != "PASSIVE")
    return "OMP_WAIT_POLICY is '" + value + "': with " + std::to_string(threads) +
           " threads, run with OMP_WAIT_POLICY=passive (spinning OpenMP threads slow small ops 10x on a busy machine)";
  return {};
}

/// Keeps freed tensor memory in the process: glibc otherwise serves every block over its mmap threshold
/// with a fresh mmap and returns the heap's top on each free, and the page faults cost the kernel time
/// (200 chain warm-start steps, 1 thread: sys 6.5 s -> 0.2 s, 35.9 s -> 28.4 s; same losses).
inline void keep_freed_memory() {
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest accepted value: blocks up to 32 MiB come from the heap
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);   // never trim the heap's top below 1 GiB of free memory
  ::mallopt(M_TOP_PAD, 64 << 20);         // grow the heap 64 MiB at a time
}

/// Re-executes the program with OMP_WAIT_POLICY=passive when the variable is unset (OpenMP reads it at
/// start-up; see configure_cpu_threads). Call first thing in main. Returns when the variable was set
/// or the re-execution failed.
inline void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OMP_WAIT_POLICY");  // the re-execution failed: OpenMP keeps the value it read (none)
}

}  // namespace grpo
