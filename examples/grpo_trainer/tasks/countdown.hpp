#pragma once
/// Countdown (as in TinyZero): combine the given numbers with + - * / to reach the target, using
/// every number exactly once.
///
///   prompt     "3,7,9->30:"
///   response   "7+3=10,10*9=90 no;9+7=16,16*3=48 no;9-7=2,3*2=6 no;7*3=21,21+9=30 ok;ans (7*3)+9"  then EOS
///
/// Problems: numbers drawn from [1, max_number]; the target is drawn uniformly among the distinct values
/// in [1, max_target] that some derivation reaches (a derivation combines two numbers at a time with
/// + or *, - with a positive result, / when exact, until one number is left), so every problem is
/// solvable. Split key: the sorted numbers and the target.
///
/// Solution writer (warm start): a search trace, then the answer. It shows a few failed derivations
/// (between min_failed and max_failed, in search order), each step written "a op b=c" with the larger
/// operand first and closed by "no", then one derivation that reaches the target, closed by "ok", then
/// "ans " and the expression built from it (every compound operand in parentheses).
///
/// Verifier: reward 1 when the text after the last "ans " is an expression (digits, + - * /, parentheses,
/// nothing else) whose literals are exactly the given numbers (as a multiset) and whose exact rational
/// value is the target; 0 otherwise. The trace itself is never trusted.
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace grpo::countdown {

/// Difficulty knobs.
struct params {
  int count = 3;          ///< numbers per problem (2 to 5)
  int max_number = 20;    ///< numbers in [1, max_number]
  int max_target = 100;   ///< targets in [1, max_target]
  int min_failed = 1;     ///< failed derivations the writer shows before the right one, at least ...
  int max_failed = 2;     ///< ... and at most
};

/// Level 0: three numbers up to 20; level 1: four numbers up to 20; level 2: four numbers up to 40, targets up to 300.
inline params params_for_level(int level) {
  switch (level) {
    case 0: return {3, 20, 100, 1, 2};
    case 1: return {4, 20, 100, 2, 5};
    case 2: return {4, 40, 300, 2, 5};
    default: throw std::invalid_argument("countdown: difficulty level " + std::to_string(level) + " outside [0, 2]");
  }
}

struct instance {
  std::vector<std::int64_t> numbers;
  std::int64_t target = 0;
};

/// "3,7,9->30:"
inline std::string prompt_of(const instance& p) {
  std::string s;
  for (std::size_t i = 0; i < p.numbers.size(); ++i) s += (i ? "," : "") + std::to_string(p.numbers[i]);
  return s + "->" + std::to_string(p.target) + ":";
}

/// The problem up to the order of its numbers.
inline std::string canonical_key(const instance& p) {
  auto sorted = p.numbers;
  std::sort(sorted.begin(), sorted.end());
  return "countdown:" + prompt_of({sorted, p.target});
}

/// One way to combine all the numbers: its steps as written ("7*3=21"), the expression and its value.
struct derivation {
  std::vector<std::string> steps;
  std::string expression;
  std::int64_t value = 0;
};

namespace detail {

struct item {
  std::int64_t value;
  std::string expression;
  bool compound;
};

inline void search(std::vector<item>& items, std::vector<std::string>& steps, std::vector<derivation>& out,
                   std::set<std::string>& seen) {
  if (items.size() == 1) {
    std::string key;
    for (const auto& s : steps) key += s + ",";
    if (seen.insert(key).second) out.push_back({steps, items[0].expression, items[0].value});
    return;
  }
  for (std::size_t i = 0; i < items.size(); ++i)
    for (std::size_t j = i + 1; j < items.size(); ++j) {
      const item& hi = items[i].value >= items[j].value ? items[i] : items[j];
      const item& lo = items[i].value >= items[j].value ? items[j] : items[i];
      for (const char op : {'+', '-', '*', '/'}) {
        std::int64_t v = 0;
        if (op == '+') v = hi.value + lo.value;
        else if (op == '-') v = hi.value - lo.value;
        else if (op == '*') v = hi.value * lo.value;
        else if (lo.value != 0 && hi.value % lo.value == 0) v = hi.value / lo.value;
        if (v <= 0) continue;  // positive intermediates; '/' only when exact
        auto wrap = [](const item& x) { return x.compound ? "(" + x.expression + ")" : x.expression; };
        item next{v, wrap(hi) + op + wrap(lo), true};
        std::vector<item> rest;
        for (std::size_t k = 0; k < items.size(); ++k)
          if (k != i && k != j) rest.push_back(items[k]);
        rest.push_back(std::move(next));
        steps.push_back(std::to_string(hi.value) + op + std::to_string(lo.value) + "=" + std::to_string(v));
        search(rest, steps, out, seen);
        steps.pop_back();
      }
    }
}

}  // namespace detail

/// Every distinct derivation of `numbers`, in search order (pairs by position, then + - * /).
inline std::vector<derivation> all_derivations(const std::vector<std::int64_t>& numbers) {
  std::vector<detail::item> items;
  for (const auto n : numbers) items.push_back({n, std::to_string(n), false});
  std::vector<std::string> steps;
  std::vector<derivation> out;
  std::set<std::string> seen;
  detail::search(items, steps, out, seen);
  return out;
}

/// A problem of split `s`: deterministic in the state of `rng`.
inline instance generate(std::mt19937_64& rng, split s, const params& prm) {
  if (prm.count < 2 || prm.count > 5 || prm.max_number < 1 || prm.max_target < 1)
    throw std::invalid_argument("countdown: count must be in [2, 5], max_number and max_target >= 1");
  for (;;) {
    instance p;
    for (int i = 0; i < prm.count; ++i) p.numbers.push_back(uniform_int(rng, 1, prm.max_number));
    std::vector<std::int64_t> targets;
    for (const auto& d : all_derivations(p.numbers))
      if (d.value <= prm.max_target) targets.push_back(d.value);
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    if (targets.empty()) continue;
    p.target = targets[static_cast<std::size_t>(uniform_int(rng, 0, std::int64_t(targets.size()) - 1))];
    if (split_of(canonical_key(p)) == s) return p;
  }
}

/// The expression of the first derivation that reaches the target (one correct answer among possibly many).
inline std::string reference_answer(const instance& p) {
  for (const auto& d : all_derivations(p.numbers))
    if (d.value == p.target) return d.expression;
  throw std::invalid_argument("countdown: " + prompt_of(p) + " has no solution");
}

/// A search trace: failed derivations closed by "no", the right one closed by "ok", then "ans <expression>".
inline std::string write_solution(const instance& p, std::mt19937_64& rng, const params& prm) {
  const auto derivations = all_derivations(p.numbers);
  std::vector<std::size_t> right, wrong;
  for (std::size_t i = 0; i < derivations.size(); ++i) (derivations[i].value == p.target ? right : wrong).push_back(i);
  if (right.empty()) throw std::invalid_argument("countdown: " + prompt_of(p) + " has no solution");
  const auto chosen = right[static_cast<std::size_t>(uniform_int(rng, 0, std::int64_t(right.size()) - 1))];
  const auto shown = static_cast<std::size_t>(uniform_int(rng, prm.min_failed, prm.max_failed));
  const auto failed = std::min(wrong.size(), shown);
  shuffle(rng, wrong);
  wrong.resize(failed);
  std::sort(wrong.begin(), wrong.end());
  auto attempt = [&](std::size_t i, const char* verdict) {
    std::string s;
    for (const auto& step : derivations[i].steps) s += (s.empty() ? "" : ",") + step;
    return s + verdict;
  };
  std::string text;
  for (const auto i : wrong) text += attempt(i, " no;");
  return text + attempt(chosen, " ok;") + "ans " + derivations[chosen].expression;
}

/// 1 when the final expression uses exactly the given numbers and equals the target, else 0.
inline float verify(const instance& p, std::string_view response) {
  const auto answer = final_answer(response, "ans ");
  if (!answer) return 0.0f;
  std::vector<std::int64_t> literals;
  const auto value = evaluate_expression(*answer, &literals);
  if (!value || !(*value == rational{p.target, 1})) return 0.0f;
  auto given = p.numbers;
  std::sort(given.begin(), given.end());
  std::sort(literals.begin(), literals.end());
  return literals == given ? 1.0f : 0.0f;
}

}  // namespace grpo::countdown
