#pragma once
/// Multi-step arithmetic: evaluate an expression, one operation at a time, writing every intermediate.
///
///   prompt     "(12+7)*3-18/6:"
///   response   "12+7=19 so 19*3-18/6;19*3=57 so 57-18/6;18/6=3 so 57-3;57-3=54;ans 54"  then EOS
///
/// Problems: a random expression tree with `operations` operators over integers in [1, max_number]; every
/// intermediate value is an integer in [1, max_value] (- only with a positive result, / only when exact),
/// printed with the fewest parentheses that keep the tree (a right operand of equal precedence is always
/// parenthesised). Split key: the printed expression.
///
/// Solution writer: reduces the tree in evaluation order (post-order: the leftmost operation whose
/// operands are both numbers), writing "a op b=c so <the rewritten expression>" per step and "a op b=c"
/// for the last, then "ans <value>".
///
/// Verifier: reward 1 when the text after the last "ans " is exactly the integer value of the expression
/// (computed from the problem, never read from the trace); 0 otherwise.
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace grpo::arithmetic {

/// Difficulty knobs.
struct params {
  int operations = 5;    ///< operators per expression
  int max_number = 20;   ///< leaves in [1, max_number]
  int max_value = 200;   ///< every intermediate value in [1, max_value]
};

/// Level 0: 5 operations; level 1: 6; level 2: 8 with leaves up to 30 and values up to 500.
inline params params_for_level(int level) {
  switch (level) {
    case 0: return {5, 20, 200};
    case 1: return {6, 20, 200};
    case 2: return {8, 30, 500};
    default: throw std::invalid_argument("arithmetic: difficulty level " + std::to_string(level) + " outside [0, 2]");
  }
}

/// An expression tree: a leaf (op == 0) or op applied to left and right.
struct node {
  char op = 0;
  std::int64_t value = 0;
  std::shared_ptr<const node> left, right;
};
using tree = std::shared_ptr<const node>;

struct instance {
  tree root;
  std::string expression;  ///< as printed in the prompt
  std::int64_t value = 0;
};

inline int precedence(char op) { return op == '+' || op == '-' ? 1 : op == '*' || op == '/' ? 2 : 3; }

/// The fewest parentheses that keep the tree: a child of lower precedence, or a right child of equal precedence.
inline std::string print(const tree& t) {
  if (!t->op) return std::to_string(t->value);
  auto side = [&](const tree& child, bool right) {
    const bool parens = precedence(child->op) < precedence(t->op) || (right && precedence(child->op) == precedence(t->op));
    return parens ? "(" + print(child) + ")" : print(child);
  };
  return side(t->left, false) + t->op + side(t->right, true);
}

namespace detail {

/// A random tree with `ops` operators, or nullptr when the drawn operands admit no valid operator.
inline tree random_tree(std::mt19937_64& rng, int ops, const params& prm) {
  if (ops == 0) return std::make_shared<const node>(node{0, uniform_int(rng, 1, prm.max_number), nullptr, nullptr});
  const int left_ops = static_cast<int>(uniform_int(rng, 0, ops - 1));
  auto left = random_tree(rng, left_ops, prm), right = random_tree(rng, ops - 1 - left_ops, prm);
  if (!left || !right) return nullptr;
  std::vector<char> choices{'+', '-', '*', '/'};
  shuffle(rng, choices);
  const std::int64_t a = left->value, b = right->value;
  for (const char op : choices) {
    std::int64_t v = 0;
    if (op == '+') v = a + b;
    else if (op == '-') v = a - b;
    else if (op == '*') v = a * b;
    else if (b > 1 && a % b == 0) v = a / b;
    if (v >= 1 && v <= prm.max_value) return std::make_shared<const node>(node{op, v, left, right});
  }
  return nullptr;
}

/// The tree with its first reducible operation in post-order replaced by its value; `step` gets "a op b=c".
inline tree reduce_once(const tree& t, std::string& step) {
  if (!t->op) return t;
  if (t->left->op) return std::make_shared<const node>(node{t->op, t->value, reduce_once(t->left, step), t->right});
  if (t->right->op) return std::make_shared<const node>(node{t->op, t->value, t->left, reduce_once(t->right, step)});
  step = std::to_string(t->left->value) + t->op + std::to_string(t->right->value) + "=" + std::to_string(t->value);
  return std::make_shared<const node>(node{0, t->value, nullptr, nullptr});
}

}  // namespace detail

inline std::string prompt_of(const instance& p) { return p.expression + ":"; }
inline std::string canonical_key(const instance& p) { return "arithmetic:" + p.expression; }
inline std::string reference_answer(const instance& p) { return std::to_string(p.value); }

/// A problem of split `s`: deterministic in the state of `rng`.
inline instance generate(std::mt19937_64& rng, split s, const params& prm) {
  if (prm.operations < 1 || prm.max_number < 1 || prm.max_value < prm.max_number)
    throw std::invalid_argument("arithmetic: operations >= 1, max_number >= 1, max_value >= max_number");
  for (;;) {
    auto root = detail::random_tree(rng, prm.operations, prm);
    if (!root) continue;
    instance p{root, print(root), root->value};
    if (split_of(canonical_key(p)) == s) return p;
  }
}

/// "a op b=c so <rest>;" per operation (the last without "so"), then "ans <value>". Deterministic.
inline std::string write_solution(const instance& p, std::mt19937_64& /*rng*/, const params& /*prm*/) {
  std::string text;
  for (tree t = p.root; t->op;) {
    std::string step;
    t = detail::reduce_once(t, step);
    text += step + (t->op ? " so " + print(t) : std::string()) + ";";
  }
  return text + "ans " + std::to_string(p.value);
}

/// 1 when the text after the last "ans " is exactly the expression's value, else 0.
inline float verify(const instance& p, std::string_view response) {
  const auto answer = final_answer(response, "ans ");
  if (!answer) return 0.0f;
  const auto value = parse_integer(*answer);
  return value && *value == p.value ? 1.0f : 0.0f;
}

}  // namespace grpo::arithmetic
