#pragma once
/// A character-level tokenizer over a fixed alphabet: one token per character, plus three special
/// tokens. Every task of tasks.hpp writes its prompts and solutions in this alphabet.
///
///   id 0        PAD  fills the left of short prompts and the right of finished responses
///   id 1        BOS  first token of every prompt
///   id 2        EOS  last token of every response (the model's "end")
///   id 3 ...    ' ', '0'-'9', "+-*/=()<>,;:.?!|", 'a'-'z'   (53 characters; vocab_size() = 56)
///
/// Sequences are laid out as BOS prompt response EOS (see sampling.hpp for batches).
#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

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

}  // namespace grpo
