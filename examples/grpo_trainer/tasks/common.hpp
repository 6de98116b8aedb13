#pragma once
/// What every task shares: train/test splits by hashing, exact rational evaluation of expressions, and
/// reading the final answer of a response.
///
/// Splits. A problem's split is a fixed function of its canonical key (the problem up to presentation,
/// e.g. a Countdown problem's sorted numbers and target): FNV-1a 64 of the key, one key in 8 is `test`.
/// Generators draw until the drawn problem belongs to the requested split, so train and test are
/// disjoint by construction for every seed, and the split of a problem never depends on the seed.
///
/// Final answers. A response ends with "ans <answer>" (Countdown, arithmetic) or "path <nodes>"
/// (planning); verifiers read only the text after the last marker and evaluate it themselves. Every
/// intermediate claim of the chain of thought is ignored: a trace may say "=30 ok" and still get 0.
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace grpo {

enum class split { train, test };

inline const char* split_name(split s) { return s == split::train ? "train" : "test"; }

/// FNV-1a 64-bit hash (stable across platforms and standard libraries, unlike std::hash).
constexpr std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

/// The split a problem with this canonical key belongs to: 1 in 8 keys are held out.
constexpr split split_of(std::string_view canonical_key) {
  return fnv1a(canonical_key) % 8 == 0 ? split::test : split::train;
}

/// Uniform integer in [lo, hi] (std::uniform_int_distribution is not portable across libraries; this is).
inline std::int64_t uniform_int(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  return lo + static_cast<std::int64_t>(rng() % span);
}

/// Fisher-Yates shuffle driven by uniform_int (std::shuffle's sequence differs between libraries).
template <class T>
void shuffle(std::mt19937_64& rng, std::vector<T>& items) {
  for (std::size_t i = items.size(); i > 1; --i)
    std::swap(items[i - 1], items[static_cast<std::size_t>(uniform_int(rng, 0, static_cast<std::int64_t>(i) - 1))]);
}

/// num / den in lowest terms, den > 0.
struct rational {
  std::int64_t num = 0, den = 1;
  friend bool operator==(const rational&, const rational&) = default;
};

namespace detail {

/// Recursive-descent evaluator: expr = term (('+'|'-') term)*, term = factor (('*'|'/') factor)*,
/// factor = digits | '(' expr ')'. Exact rationals; fails on anything else, division by zero or overflow.
class expression_evaluator {
 public:
  expression_evaluator(std::string_view text, std::vector<std::int64_t>* literals) : text_(text), literals_(literals) {}

  std::optional<rational> run() {
    auto value = expr(0);
    if (!value || pos_ != text_.size()) return std::nullopt;
    return value;
  }

 private:
  static constexpr int max_depth = 32;
  static constexpr std::int64_t max_magnitude = 1'000'000'000'000;

  std::string_view text_;
  std::vector<std::int64_t>* literals_;
  std::size_t pos_ = 0;

  bool eat(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) return ++pos_, true;
    return false;
  }

  static std::optional<rational> make(std::int64_t num, std::int64_t den) {
    if (den == 0) return std::nullopt;
    if (den < 0) num = -num, den = -den;
    const std::int64_t g = std::gcd(num, den);
    num /= g, den /= g;
    if (num > max_magnitude || num < -max_magnitude || den > max_magnitude) return std::nullopt;
    return rational{num, den};
  }

  static std::optional<rational> apply(char op, rational a, rational b) {
    std::int64_t x = 0, y = 0, z = 0;
    switch (op) {
      case '+':
      case '-':
        if (__builtin_mul_overflow(a.num, b.den, &x) || __builtin_mul_overflow(b.num, a.den, &y) ||
            __builtin_mul_overflow(a.den, b.den, &z))
          return std::nullopt;
        if (op == '+' ? __builtin_add_overflow(x, y, &x) : __builtin_sub_overflow(x, y, &x)) return std::nullopt;
        return make(x, z);
      case '*':
        if (__builtin_mul_overflow(a.num, b.num, &x) || __builtin_mul_overflow(a.den, b.den, &z)) return std::nullopt;
        return make(x, z);
      default:  // '/'
        if (__builtin_mul_overflow(a.num, b.den, &x) || __builtin_mul_overflow(a.den, b.num, &z)) return std::nullopt;
        return make(x, z);
    }
  }

  std::optional<rational> expr(int depth) {
    auto value = term(depth);
    while (value && pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
      const char op = text_[pos_++];
      const auto rhs = term(depth);
      value = rhs ? apply(op, *value, *rhs) : std::nullopt;
    }
    return value;
  }

  std::optional<rational> term(int depth) {
    auto value = factor(depth);
    while (value && pos_ < text_.size() && (text_[pos_] == '*' || text_[pos_] == '/')) {
      const char op = text_[pos_++];
      const auto rhs = factor(depth);
      value = rhs ? apply(op, *value, *rhs) : std::nullopt;
    }
    return value;
  }

  std::optional<rational> factor(int depth) {
    if (depth > max_depth) return std::nullopt;
    if (eat('(')) {
      auto value = expr(depth + 1);
      return value && eat(')') ? value : std::nullopt;
    }
    std::int64_t n = 0;
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9' && pos_ - start < 12)
      n = 10 * n + (text_[pos_++] - '0');
    if (pos_ == start || (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9')) return std::nullopt;
    if (literals_) literals_->push_back(n);
    return rational{n, 1};
  }
};

}  // namespace detail

/// Exact value of an expression over non-negative integer literals with + - * /, parentheses, the usual
/// precedence and left associativity, no spaces and no unary minus. nullopt when the text does not parse
/// completely, divides by zero or leaves |values| <= 1e12. Literals are appended to `literals` in order.
inline std::optional<rational> evaluate_expression(std::string_view text, std::vector<std::int64_t>* literals = nullptr) {
  return detail::expression_evaluator(text, literals).run();
}

/// The text after the last occurrence of `marker` in `response`, or nullopt when there is none.
inline std::optional<std::string_view> final_answer(std::string_view response, std::string_view marker) {
  const auto at = response.rfind(marker);
  if (at == std::string_view::npos) return std::nullopt;
  return response.substr(at + marker.size());
}

/// An integer literal with an optional leading '-' (at most 15 digits), or nullopt.
inline std::optional<std::int64_t> parse_integer(std::string_view text) {
  const bool negative = !text.empty() && text.front() == '-';
  if (negative) text.remove_prefix(1);
  if (text.empty() || text.size() > 15) return std::nullopt;
  std::int64_t n = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = 10 * n + (c - '0');
  }
  return negative ? -n : n;
}

}  // namespace grpo
