#pragma once
/// Chain: a program of named single-digit steps, each reusing earlier results; its last value.
///
///   prompt     "a=3+4,b=a<7,c=b-a,d=5>c,e=d+b,f=e-c:"
///   response   "a=3+4=3+4=7;b=a<7=7<7=7;c=b-a=7-7=0;d=5>c=5>0=5;e=d+b=5+7=2;f=e-c=2-0=2;ans 2"  then EOS
///
/// Problems: `steps` assignments to the letters a, b, c, ... in order; each is x op y with operands
/// digits or earlier letters and op one of four, drawn uniformly: + and - mod 10, > the larger of the
/// two, < the smaller (so every value is a digit). The first step has two digits; every later one reads
/// the letter before it unless a step already did (so every result reaches the last one), and one step
/// in two also reads another earlier letter, drawn uniformly, so that results are reused from far back.
/// Why these four: on 3-step chains a 2-layer d 64 model learns max and min in 600 warm-start steps
/// while the + and - table is still unlearned there (README); + and - keep most wrong intermediate
/// values visible in the answer (56 % at level 1, the task test prints it).
/// Split key: the prompt.
///
/// Solution writer: per step, one fixed-width record "x=u op v=U op V=w;" (12 characters): the step as
/// the prompt writes it, the operands' values (a digit is its own value; a letter's value is read from its
/// own earlier record), and the result. Then "ans <value of the last letter>". Every record refers back
/// to the prompt and to earlier records: the long-range structure the attention signals look for.
///
/// Verifier: reward 1 when the text after the last "ans " is exactly the last letter's value (computed
/// from the problem, never read from the trace); 0 otherwise. Final values are not uniform: always
/// answering the commonest one (0) earns ~13 % (the task test prints it).
///
/// The `rule` task: hidden steps and the whole state as the answer (params::hidden > 0). That many
/// steps, drawn uniformly, are written "x?y" in the prompt; the other steps use > and < only. '?' is max
/// when the left operand's value is even and min when it is odd (the rule). Nothing in the written
/// solutions reveals it: their writer guesses > or < with equal odds at every '?' and carries the
/// guessed value on, as a teacher who does not know the rule would. The warm start so learns the
/// procedure and a coin flip at each '?'; only the reward can teach the rule. Each record writes the
/// operator it applied ("c=6?b=6>5=6;"), and the answer is every letter's value in order
/// ("ans 446678"), so that a wrong guess costs the reward whenever it changes a value.
/// Why max and min only: a 2-layer d 64 model learns them several times faster than + and - mod 10
/// (README), and the sampled procedure must be clean for the reward to speak about the '?' choices.
/// Why the whole state: chains of max and min converge on a few digits, and with the last value as
/// the answer GRPO found a shortcut that guesses it (48 % greedy from traces that no longer follow
/// the procedure; README).
#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace grpo::chain {

/// Difficulty knobs.
struct params {
  int steps = 6;                         ///< assignments, 2 to 26
  int hidden = 0;                        ///< steps written with '?' (the rule decides their operator), 0 to steps
  std::string_view operators = "+-><";   ///< drawn uniformly for the other steps
};

/// Level 0: 6 steps (~80 response characters); level 1: 8 (~105); level 2: 12 (~155).
inline params params_for_level(int level) {
  switch (level) {
    case 0: return {6};
    case 1: return {8};
    case 2: return {12};
    default: throw std::invalid_argument("chain: difficulty level " + std::to_string(level) + " outside [0, 2]");
  }
}

/// The `rule` task (max and min only): level 0: 6 steps with 2 hidden; level 1: 8 with 3; level 2: 12 with 4.
inline params rule_params_for_level(int level) {
  switch (level) {
    case 0: return {6, 2, "><"};
    case 1: return {8, 3, "><"};
    case 2: return {12, 4, "><"};
    default: throw std::invalid_argument("rule: difficulty level " + std::to_string(level) + " outside [0, 2]");
  }
}

/// The operators of `chain`: + and - mod 10, > the larger operand, < the smaller.
inline constexpr std::string_view operators = "+-><";

/// One step "x op y": operands are '0'-'9' or an earlier letter.
struct step {
  char left = '0', op = '+', right = '0';
};

struct instance {
  std::vector<step> steps;  ///< steps[i] assigns letter 'a' + i
  bool whole_state = false; ///< the answer is every letter's value ("ans 446678"), not the last one
};

/// The operator a hidden step '?' applies to the values x op y: max when x is even, min when odd.
inline char rule(int x) { return x % 2 == 0 ? '>' : '<'; }

inline int apply(char op, int x, int y) {
  switch (op) {
    case '?': return apply(rule(x), x, y);
    case '+': return (x + y) % 10;
    case '-': return (x - y + 10) % 10;
    case '>': return std::max(x, y);
    case '<': return std::min(x, y);
    default: throw std::invalid_argument(std::string("chain: no operator '") + op + "'");
  }
}

/// The value of every letter, in order ('?' by the rule).
inline std::vector<int> values(const instance& p) {
  std::vector<int> out;
  auto value_of = [&](char operand) { return operand <= '9' ? operand - '0' : out[static_cast<std::size_t>(operand - 'a')]; };
  for (const auto& s : p.steps) out.push_back(apply(s.op, value_of(s.left), value_of(s.right)));
  return out;
}

/// "a=3+4,b=a<7,...:"
inline std::string prompt_of(const instance& p) {
  std::string text;
  for (std::size_t i = 0; i < p.steps.size(); ++i) {
    const auto& s = p.steps[i];
    text += std::string(i ? "," : "") + char('a' + i) + "=" + s.left + s.op + s.right;
  }
  return text + ":";
}

inline std::string canonical_key(const instance& p) { return "chain:" + prompt_of(p); }
/// The answer text of the letters' `values`: the last one, or all of them in order (whole_state).
inline std::string answer_of(const instance& p, const std::vector<int>& values) {
  if (!p.whole_state) return std::to_string(values.back());
  std::string digits;
  for (const int v : values) digits += char('0' + v);
  return digits;
}

inline std::string reference_answer(const instance& p) { return answer_of(p, values(p)); }

/// A problem of split `s`: deterministic in the state of `rng`.
inline instance generate(std::mt19937_64& rng, split s, const params& prm) {
  if (prm.steps < 2 || prm.steps > 26) throw std::invalid_argument("chain: steps in [2, 26]");
  if (prm.hidden < 0 || prm.hidden > prm.steps) throw std::invalid_argument("chain: hidden steps in [0, steps]");
  for (;;) {
    instance p;
    p.whole_state = prm.hidden > 0;
    std::vector<bool> read(static_cast<std::size_t>(prm.steps), false);
    for (int i = 0; i < prm.steps; ++i) {
      auto digit = [&] { return static_cast<char>('0' + uniform_int(rng, 0, 9)); };
      step st;
      st.op = prm.operators[static_cast<std::size_t>(uniform_int(rng, 0, std::int64_t(prm.operators.size()) - 1))];
      if (i == 0) {
        st.left = digit(), st.right = digit();
      } else {
        // The letter before is read here unless a step already read it: every result reaches the last one.
        const char first = read[static_cast<std::size_t>(i - 1)] ? static_cast<char>('a' + uniform_int(rng, 0, i - 1))
                                                                  : static_cast<char>('a' + i - 1);
        char second = digit();
        if (i >= 2 && uniform_int(rng, 0, 1)) {
          second = static_cast<char>('a' + uniform_int(rng, 0, i - 2));
          if (second >= first) ++second;  // another letter than `first`
        }
        st.left = first, st.right = second;
        if (uniform_int(rng, 0, 1)) std::swap(st.left, st.right);
        for (const char operand : {st.left, st.right})
          if (operand > '9') read[static_cast<std::size_t>(operand - 'a')] = true;
      }
      p.steps.push_back(st);
    }
    for (int h = 0; h < prm.hidden; ++h) {  // `hidden` distinct steps, uniformly
      std::size_t i = 0;
      do i = static_cast<std::size_t>(uniform_int(rng, 0, prm.steps - 1));
      while (p.steps[i].op == '?');
      p.steps[i].op = '?';
    }
    if (split_of(canonical_key(p)) == s) return p;
  }
}

/// "x=u op v=U op V=w;" per step, then "ans " and the answer, with '?' read by `resolve(x)`: the rule
/// gives the correct trace, a guess a teacher's.
template <class Resolve>
std::string trace(const instance& p, Resolve resolve) {
  std::vector<int> value;
  auto value_of = [&](char operand) { return operand <= '9' ? operand - '0' : value[static_cast<std::size_t>(operand - 'a')]; };
  std::string text;
  for (std::size_t i = 0; i < p.steps.size(); ++i) {
    const auto& s = p.steps[i];
    const int x = value_of(s.left), y = value_of(s.right);
    const char op = s.op == '?' ? resolve(x) : s.op;
    value.push_back(apply(op, x, y));
    text += std::string{char('a' + i), '=', s.left, s.op, s.right, '=', char('0' + x), op, char('0' + y), '=',
                        char('0' + value.back()), ';'};
  }
  return text + "ans " + answer_of(p, value);
}

/// The written solution: the trace with a guess at every '?' (> or <, equal odds, from `rng`);
/// deterministic without hidden steps.
inline std::string write_solution(const instance& p, std::mt19937_64& rng, const params& /*prm*/) {
  return trace(p, [&](int) { return uniform_int(rng, 0, 1) ? '>' : '<'; });
}

/// 1 when the text after the last "ans " is exactly the answer (reference_answer), else 0.
inline float verify(const instance& p, std::string_view response) {
  const auto answer = final_answer(response, "ans ");
  return answer && *answer == reference_answer(p) ? 1.0f : 0.0f;
}

}  // namespace grpo::chain
