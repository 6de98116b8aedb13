// Tasks of the GRPO reference trainer: generators, verifiers, solution writers, splits; and the tokenizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tasks.hpp"
#include "model.hpp"

namespace {

constexpr int solutions_per_task = 200;

std::string replace_final(const std::string& response, const std::string& marker, const std::string& answer) {
  return response.substr(0, response.rfind(marker) + marker.size()) + answer;
}

// ---------------------------------------------------------------------------------------------- tokenizer

TEST(Tokenizer, RoundTripsTheAlphabet) {
  const grpo::tokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 3 + static_cast<std::int64_t>(grpo::tokenizer::alphabet.size()));
  const std::string text(grpo::tokenizer::alphabet);
  const auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_GE(ids[i], 3);
    EXPECT_LT(ids[i], tok.vocab_size());
  }
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Tokenizer, SpecialTokens) {
  const grpo::tokenizer tok;
  auto ids = tok.encode_prompt("3,7->10:");
  EXPECT_EQ(ids.front(), grpo::tokenizer::bos);
  const auto response = tok.encode_response("7+3=10;ans 7+3");
  EXPECT_EQ(response.back(), grpo::tokenizer::eos);
  ids.insert(ids.begin(), grpo::tokenizer::pad);
  ids.insert(ids.end(), response.begin(), response.end());
  ids.push_back(grpo::tokenizer::pad);
  ids.push_back(tok.encode("x").front());
  EXPECT_EQ(tok.decode(ids), "3,7->10:7+3=10;ans 7+3");                            // stops at EOS
  EXPECT_EQ(tok.decode(ids, /*stop_at_eos=*/false), "3,7->10:7+3=10;ans 7+3x");   // skips it
  EXPECT_EQ(tok.token_text(grpo::tokenizer::eos), "<eos>");
}

TEST(Tokenizer, UnknownCharacterNamesItAndItsPosition) {
  const grpo::tokenizer tok;
  EXPECT_FALSE(tok.can_encode("ab#"));
  try {
    tok.encode("ab#");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'#'"), std::string::npos) << what;
    EXPECT_NE(what.find("position 2"), std::string::npos) << what;
  }
  EXPECT_THROW(tok.encode("A"), std::invalid_argument);  // upper case is not in the alphabet
  const std::vector<std::int64_t> bad{999};
  EXPECT_THROW(tok.decode(bad), std::out_of_range);
}

// -------------------------------------------------------------------------------------------- all tasks

TEST(Tasks, RegistryFindsEveryTaskAndNamesTheKnownOnes) {
  for (const char* name : {"countdown", "arithmetic", "planning", "chain", "rule"}) EXPECT_EQ(grpo::find_task(name).name, name);
  try {
    grpo::find_task("sudoku");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("countdown, arithmetic, planning, chain, rule"), std::string::npos) << e.what();
  }
  std::mt19937_64 rng(1);
  const auto p = grpo::find_task("countdown").generate(rng, grpo::split::train, 0);
  EXPECT_THROW(grpo::find_task("planning").verify(p, "path ab"), std::invalid_argument);
  EXPECT_THROW(grpo::find_task("countdown").generate(rng, grpo::split::train, 3), std::invalid_argument);
}

TEST(Tasks, WrittenSolutionsVerifyTokenizeAndHaveTheTargetLength) {
  const grpo::tokenizer tok;
  std::printf("  written solutions (characters, EOS excluded):\n");
  for (const auto& task : grpo::all_tasks())
    for (int level = 0; level <= 2; ++level) {
      std::mt19937_64 rng(1234 + level);
      const int count = level == 0 ? solutions_per_task : solutions_per_task / 4;
      std::size_t shortest = 1 << 20, longest = 0, total = 0, longest_sequence = 0;
      for (int i = 0; i < count; ++i) {
        const auto p = task.generate(rng, grpo::split::train, level);
        const auto solution = task.name == "rule" ? grpo::chain::trace(std::get<grpo::chain::instance>(p.data), grpo::chain::rule)
                                                  : task.write_solution(p, rng);  // rule's writer guesses (its own test)
        ASSERT_EQ(task.verify(p, solution), 1.0f) << task.name << " " << p.prompt << solution;
        const std::string marker = task.name == "planning" ? "path " : "ans ";
        ASSERT_EQ(task.verify(p, marker + p.answer), 1.0f) << task.name << " reference answer " << p.answer;
        ASSERT_TRUE(tok.can_encode(p.prompt)) << p.prompt;
        ASSERT_TRUE(tok.can_encode(solution)) << solution;
        ASSERT_EQ(tok.decode(tok.encode_response(solution)), solution);
        shortest = std::min(shortest, solution.size());
        longest = std::max(longest, solution.size());
        total += solution.size();
        longest_sequence = std::max(longest_sequence, tok.encode_prompt(p.prompt).size() + solution.size() + 1);
      }
      std::printf("  %-10s level %d: %3d solutions: min %3zu mean %5.1f max %3zu; longest BOS+prompt+solution+EOS %zu\n",
                  task.name.c_str(), level, count, shortest, double(total) / count, longest, longest_sequence);
      // Countdown level 0 shows 1-2 failed attempts (~60 characters on average): longer traces left the
      // warm start near chance accuracy within the demo's budget (README, "The reference trainer").
      const std::size_t floor = task.name == "countdown" && level == 0 ? 35u : 60u;
      EXPECT_GE(shortest, floor) << task.name << " level " << level;
      if (task.name == "countdown" && level == 0) {
        EXPECT_GE(double(total) / count, 55.0);
      }
      EXPECT_LE(longest, 300u) << task.name << " level " << level;
    }
}

TEST(Tasks, GeneratorsAreDeterministicForASeed) {
  for (const auto& task : grpo::all_tasks()) {
    std::mt19937_64 a(42), b(42), c(43);
    int differences_from_other_seed = 0;
    for (int i = 0; i < 50; ++i) {
      const auto pa = task.generate(a, grpo::split::train, 0), pb = task.generate(b, grpo::split::train, 0);
      const auto pc = task.generate(c, grpo::split::train, 0);
      EXPECT_EQ(pa.prompt, pb.prompt);
      EXPECT_EQ(pa.answer, pb.answer);
      EXPECT_EQ(task.write_solution(pa, a), task.write_solution(pb, b));
      differences_from_other_seed += pa.prompt != pc.prompt;
    }
    EXPECT_GT(differences_from_other_seed, 40) << task.name;
  }
}

TEST(Tasks, TrainAndTestSplitsAreDisjoint) {
  for (const auto& task : grpo::all_tasks()) {
    std::set<std::string> train, test;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 400; ++i) {
      const auto tr = task.generate(rng, grpo::split::train, 0), te = task.generate(rng, grpo::split::test, 0);
      EXPECT_EQ(grpo::split_of(task.canonical_key(tr)), grpo::split::train);
      EXPECT_EQ(grpo::split_of(task.canonical_key(te)), grpo::split::test);
      train.insert(task.canonical_key(tr));
      test.insert(task.canonical_key(te));
    }
    std::vector<std::string> shared;
    std::set_intersection(train.begin(), train.end(), test.begin(), test.end(), std::back_inserter(shared));
    EXPECT_TRUE(shared.empty()) << task.name << ": " << shared.size() << " problems in both splits";
    EXPECT_GT(test.size(), 300u) << task.name << ": too few distinct test problems";
    std::printf("  %-10s 400 train draws: %zu distinct, 400 test draws: %zu distinct, shared: %zu\n",
                task.name.c_str(), train.size(), test.size(), shared.size());
  }
}

// -------------------------------------------------------------------------------------------- countdown

TEST(Countdown, VerifierJudgesTheFinalExpressionOnly) {
  namespace cd = grpo::countdown;
  std::mt19937_64 rng(11);
  const auto prm = cd::params_for_level(0);
  int copied_target_cases = 0;
  for (int i = 0; i < solutions_per_task; ++i) {
    const auto p = cd::generate(rng, grpo::split::train, prm);
    const auto solution = cd::write_solution(p, rng, prm);
    const auto expression = std::string(*grpo::final_answer(solution, "ans "));
    ASSERT_EQ(cd::verify(p, solution), 1.0f) << solution;
    // Every derivation that reaches the target is accepted; every other one is a wrong final answer.
    for (const auto& d : cd::all_derivations(p.numbers))
      ASSERT_EQ(cd::verify(p, replace_final(solution, "ans ", d.expression)), d.value == p.target ? 1.0f : 0.0f)
          << d.expression;
    // A changed number: the first literal + 1.
    const auto digits = expression.find_first_of("0123456789"), end = expression.find_first_not_of("0123456789", digits);
    const auto changed = expression.substr(0, digits) + std::to_string(std::stoll(expression.substr(digits, end - digits)) + 1) +
                         (end == std::string::npos ? "" : expression.substr(end));
    EXPECT_EQ(cd::verify(p, replace_final(solution, "ans ", changed)), 0.0f) << changed;
    // The copied target: the trace ends "=<target> ok" but the final expression has a flipped operator.
    auto flipped = expression;
    const auto op = flipped.find_first_of("+-*/");
    flipped[op] = flipped[op] == '+' ? '-' : flipped[op] == '-' ? '+' : flipped[op] == '*' ? '+' : '*';
    const auto value = grpo::evaluate_expression(flipped);
    if (!value || !(*value == grpo::rational{p.target, 1})) {
      ++copied_target_cases;
      EXPECT_NE(solution.find("=" + std::to_string(p.target) + " ok;"), std::string::npos);
      EXPECT_EQ(cd::verify(p, replace_final(solution, "ans ", flipped)), 0.0f) << flipped;
    }
    // The right value with numbers used twice, the bare target, trailing text, no answer at all.
    const auto n = std::to_string(p.numbers[0]);
    EXPECT_EQ(cd::verify(p, replace_final(solution, "ans ", "(" + expression + ")+" + n + "-" + n)), 0.0f);
    EXPECT_EQ(cd::verify(p, replace_final(solution, "ans ", std::to_string(p.target))), 0.0f);
    EXPECT_EQ(cd::verify(p, solution + " ok"), 0.0f);
    EXPECT_EQ(cd::verify(p, solution.substr(0, solution.rfind("ans "))), 0.0f);
  }
  EXPECT_GT(copied_target_cases, solutions_per_task / 2);
}

TEST(Countdown, EvaluatorIsExact) {
  using grpo::rational;
  EXPECT_EQ(*grpo::evaluate_expression("(7*3)+9"), (rational{30, 1}));
  EXPECT_EQ(*grpo::evaluate_expression("7/2*2"), (rational{7, 1}));  // exact rationals, left to right
  EXPECT_EQ(*grpo::evaluate_expression("1-5"), (rational{-4, 1}));
  EXPECT_EQ(*grpo::evaluate_expression("10/4"), (rational{5, 2}));
  for (const char* bad : {"", "3+", "(3", "3)", "3/(2-2)", "-3", "3 +4", "3+x", "99999999999999*99999999999999"})
    EXPECT_FALSE(grpo::evaluate_expression(bad)) << bad;
}

// ------------------------------------------------------------------------------------------- arithmetic

TEST(Arithmetic, VerifierJudgesTheFinalNumberOnly) {
  namespace ar = grpo::arithmetic;
  std::mt19937_64 rng(12);
  const auto prm = ar::params_for_level(0);
  for (int i = 0; i < solutions_per_task; ++i) {
    const auto p = ar::generate(rng, grpo::split::train, prm);
    ASSERT_EQ(*grpo::evaluate_expression(p.expression), (grpo::rational{p.value, 1})) << p.expression;
    const auto solution = ar::write_solution(p, rng, prm);
    ASSERT_EQ(ar::verify(p, solution), 1.0f) << solution;
    const auto value = std::to_string(p.value), wrong = std::to_string(p.value + 1);
    EXPECT_EQ(ar::verify(p, replace_final(solution, "ans ", wrong)), 0.0f);
    // A self-consistent trace whose last step claims a false value, answered with it.
    auto claimed = solution;
    const auto last_step = claimed.rfind("=" + value + ";");
    ASSERT_NE(last_step, std::string::npos) << solution;
    claimed.replace(last_step, value.size() + 2, "=" + wrong + ";");
    EXPECT_EQ(ar::verify(p, replace_final(claimed, "ans ", wrong)), 0.0f) << claimed;
    EXPECT_EQ(ar::verify(p, solution + "."), 0.0f);
    EXPECT_EQ(ar::verify(p, replace_final(solution, "ans ", p.expression)), 0.0f);  // an expression is not a number
    EXPECT_EQ(ar::verify(p, solution.substr(0, solution.rfind("ans "))), 0.0f);
  }
}

// ------------------------------------------------------------------------------------------------ chain

TEST(Chain, TheDocumentedExampleAndItsTrace) {
  namespace ch = grpo::chain;
  const ch::instance p{{{'3', '+', '4'}, {'a', '<', '7'}, {'b', '-', 'a'}, {'5', '>', 'c'}, {'d', '+', 'b'}, {'e', '-', 'c'}}};
  EXPECT_EQ(ch::prompt_of(p), "a=3+4,b=a<7,c=b-a,d=5>c,e=d+b,f=e-c:");
  EXPECT_EQ(ch::values(p), (std::vector<int>{7, 7, 0, 5, 2, 2}));  // min(7, 7), max(5, 0), 12 mod 10
  std::mt19937_64 rng(1);
  EXPECT_EQ(ch::write_solution(p, rng, ch::params_for_level(0)),
            "a=3+4=3+4=7;b=a<7=7<7=7;c=b-a=7-7=0;d=5>c=5>0=5;e=d+b=5+7=2;f=e-c=2-0=2;ans 2");
  EXPECT_EQ(ch::apply('-', 2, 9), 3);
  EXPECT_EQ(ch::apply('<', 2, 9), 2);
  EXPECT_EQ(ch::apply('>', 2, 9), 9);
  EXPECT_THROW(ch::apply('*', 2, 9), std::invalid_argument);
}

TEST(Chain, GeneratedStepsReuseEarlierResultsAndTheVerifierReadsOnlyTheAnswer) {
  namespace ch = grpo::chain;
  std::mt19937_64 rng(13);
  const auto prm = ch::params_for_level(1);
  std::size_t far_references = 0, references = 0, perturbed = 0, answer_changed = 0;
  std::map<char, int> operator_count;
  for (int i = 0; i < solutions_per_task; ++i) {
    const auto p = ch::generate(rng, grpo::split::train, prm);
    ASSERT_EQ(p.steps.size(), 8u);
    EXPECT_TRUE(p.steps[0].left <= '9' && p.steps[0].right <= '9') << ch::prompt_of(p);
    std::vector<bool> read(p.steps.size(), false);
    for (std::size_t s = 1; s < p.steps.size(); ++s) {
      const auto& st = p.steps[s];
      ASSERT_NE(ch::operators.find(st.op), std::string_view::npos) << ch::prompt_of(p);
      ++operator_count[st.op];
      ASSERT_NE(st.left, st.right) << ch::prompt_of(p);
      ASSERT_TRUE(st.left > '9' || st.right > '9') << "step " << s << " of " << ch::prompt_of(p) << " reads no letter";
      for (const char operand : {st.left, st.right})
        if (operand > '9') {
          ASSERT_LT(operand - 'a', static_cast<int>(s)) << ch::prompt_of(p);
          read[static_cast<std::size_t>(operand - 'a')] = true;
          ++references, far_references += static_cast<int>(s) - (operand - 'a') >= 3;
        }
    }
    for (std::size_t s = 0; s + 1 < p.steps.size(); ++s) ASSERT_TRUE(read[s]) << "unread result in " << ch::prompt_of(p);
    // A wrong value at one step changes the answer unless its paths to the last step cancel.
    for (std::size_t s = 0; s + 1 < p.steps.size(); ++s) {
      auto broken = p;  // step s replaced by a constant one off its value
      const int off_by_one = (ch::values(p)[s] + 1) % 10;
      broken.steps[s] = {static_cast<char>('0' + off_by_one), '+', '0'};
      ++perturbed, answer_changed += ch::values(broken).back() != ch::values(p).back();
    }
    const auto solution = ch::write_solution(p, rng, prm);
    const auto value = std::to_string(ch::values(p).back()), wrong = std::to_string((ch::values(p).back() + 1) % 10);
    ASSERT_EQ(ch::verify(p, solution), 1.0f) << solution;
    EXPECT_EQ(ch::verify(p, replace_final(solution, "ans ", wrong)), 0.0f);
    EXPECT_EQ(ch::verify(p, replace_final(solution, "ans ", "0" + value)), 0.0f);  // exactly the digit
    EXPECT_EQ(ch::verify(p, solution + ";"), 0.0f);
    EXPECT_EQ(ch::verify(p, "ans " + value), 1.0f);  // the trace is never read
    EXPECT_EQ(ch::verify(p, solution.substr(0, solution.rfind("ans "))), 0.0f);
  }
  // Results are reused from far back, not only from the step before (the signals need long references).
  EXPECT_GT(double(far_references) / double(references), 0.15) << far_references << " of " << references;
  std::printf("  chain level 1: %.0f %% of references reach 3+ steps back; one wrong value changes the answer in %.0f %%\n",
              100.0 * double(far_references) / double(references), 100.0 * double(answer_changed) / double(perturbed));
  EXPECT_GT(double(answer_changed) / double(perturbed), 0.45);  // measured 56 %: max and min can absorb an error
  for (const char op : ch::operators)  // drawn uniformly: 1/4 of the 7 x 200 steps each, with 6 sigma of room
    EXPECT_NEAR(operator_count[op], 7 * solutions_per_task / 4, 6 * std::sqrt(7 * solutions_per_task * 3.0 / 16)) << op;
}

TEST(Chain, GuessingTheCommonestAnswerEarnsLittle) {
  // The verifier reads only the answer, so a policy can drop the trace and guess: what does that earn?
  namespace ch = grpo::chain;
  std::mt19937_64 rng(17);
  for (const int level : {0, 1}) {
    std::map<int, int> answers;
    constexpr int problems = 20000;
    for (int i = 0; i < problems; ++i) ++answers[ch::values(ch::generate(rng, grpo::split::train, ch::params_for_level(level))).back()];
    const auto commonest = std::max_element(answers.begin(), answers.end(), [](auto& a, auto& b) { return a.second < b.second; });
    const double share = double(commonest->second) / problems;
    std::printf("  chain level %d: always answering %d is right for %.1f %% of problems\n", level, commonest->first, 100 * share);
    EXPECT_EQ(answers.size(), 10u);
    EXPECT_LT(share, 0.2);
  }
}

// ------------------------------------------------------------------------------------------------- rule

TEST(Rule, HiddenStepsFollowTheRuleAndTheWrittenSolutionsGuess) {
  namespace ch = grpo::chain;
  const ch::instance p{{{'3', '>', '4'}, {'a', '?', '2'}, {'6', '?', 'b'}}, /*whole_state=*/true};
  EXPECT_EQ(ch::prompt_of(p), "a=3>4,b=a?2,c=6?b:");
  EXPECT_EQ(ch::values(p), (std::vector<int>{4, 4, 6}));  // 4 is even: max(4, 2); 6 is even: max(6, 4)
  EXPECT_EQ(ch::trace(p, ch::rule), "a=3>4=3>4=4;b=a?2=4>2=4;c=6?b=6>4=6;ans 446");
  const auto always_min = [](int) { return '<'; };
  EXPECT_EQ(ch::trace(p, always_min), "a=3>4=3>4=4;b=a?2=4<2=2;c=6?b=6<2=2;ans 422");  // a guess carried on
  EXPECT_EQ(ch::verify(p, ch::trace(p, always_min)), 0.0f);
  EXPECT_EQ(ch::verify(p, "ans 446"), 1.0f);
  EXPECT_EQ(ch::verify(p, "ans 6"), 0.0f);  // the whole state, not the last value
  EXPECT_EQ(ch::verify(p, "ans 4460"), 0.0f);
  EXPECT_EQ(ch::rule(3), '<');

  // Generated problems have exactly `hidden` '?' steps; the writer's guesses are a fair coin whatever
  // the rule says, so only the reward can teach it. What do the guesses and a fixed answer earn?
  for (const int level : {0, 1}) {
    const auto prm = ch::rule_params_for_level(level);
    std::mt19937_64 rng(19 + level);
    int verified = 0, always_max = 0, guesses = 0, guessed_max = 0, guessed_right = 0;
    constexpr int problems = 4000;
    for (int i = 0; i < problems; ++i) {
      const auto q = ch::generate(rng, grpo::split::train, prm);
      ASSERT_TRUE(q.whole_state);
      ASSERT_EQ(std::count_if(q.steps.begin(), q.steps.end(), [](auto& s) { return s.op == '?'; }), prm.hidden);
      const auto written = ch::write_solution(q, rng, prm);
      verified += ch::verify(q, written) == 1.0f;
      always_max += ch::verify(q, ch::trace(q, [](int) { return '>'; })) == 1.0f;
      for (const auto& st : q.steps) ASSERT_TRUE(st.op == '?' || st.op == '>' || st.op == '<') << ch::prompt_of(q);
      const auto right = ch::trace(q, ch::rule);
      for (std::size_t s = 0; s < q.steps.size(); ++s)
        if (q.steps[s].op == '?') {
          const auto at = s * 12 + 7;  // the applied operator of record s
          if (written.substr(0, at) != right.substr(0, at)) break;  // after a wrong guess the values differ
          ++guesses, guessed_max += written[at] == '>', guessed_right += written[at] == right[at];
        }
    }
    std::printf("  rule level %d: written solutions verify on %.1f %%, always max on %.1f %%\n", level,
                100.0 * verified / problems, 100.0 * always_max / problems);
    const double sigma = std::sqrt(guesses * 0.25);
    EXPECT_NEAR(guessed_max, guesses / 2.0, 6 * sigma);
    EXPECT_NEAR(guessed_right, guesses / 2.0, 6 * sigma);
    // The guesses cost the teacher (and a fixed choice as much): the rule is worth 50-70 points.
    EXPECT_LT(verified, problems * 0.5);
    EXPECT_LT(always_max, problems * 0.5);
    EXPECT_GT(verified, problems * 0.2);
  }
}

// --------------------------------------------------------------------------------------------- planning

// Some simple path from source to goal other than `avoid`, by depth-first search ("" if none).
std::string other_path(const grpo::planning::instance& p, const std::string& avoid) {
  std::string path, found;
  auto dfs = [&](auto&& self, char u) -> void {
    if (!found.empty() || path.find(u) != std::string::npos) return;
    path.push_back(u);
    if (u == p.goal) {
      if (path != avoid) found = path;
    } else {
      for (const char v : p.neighbours(u)) self(self, v);
    }
    path.pop_back();
  };
  dfs(dfs, p.source);
  return found;
}

TEST(Planning, VerifierChecksEveryEdgeOfTheFinalPath) {
  namespace pl = grpo::planning;
  std::mt19937_64 rng(13);
  const auto prm = pl::params_for_level(0);
  int alternatives = 0;
  for (int i = 0; i < solutions_per_task; ++i) {
    const auto p = pl::generate(rng, grpo::split::train, prm);
    const auto solution = pl::write_solution(p, rng, prm);
    ASSERT_EQ(pl::verify(p, solution), 1.0f) << pl::prompt_of(p) << solution;
    const auto path = std::string(*grpo::final_answer(solution, "path "));
    ASSERT_GE(path.size(), static_cast<std::size_t>(prm.min_distance + 1));
    // An invalid edge: source straight to goal (at least min_distance >= 2 edges apart).
    EXPECT_FALSE(p.has_edge(p.source, p.goal));
    EXPECT_EQ(pl::verify(p, replace_final(solution, "path ", std::string{p.source, p.goal})), 0.0f);
    // The check and the walk back still claim the real path, but the final path skips a node.
    auto skipped = path;
    skipped.erase(1, 1);
    if (!p.has_edge(skipped[0], skipped[1])) {
      EXPECT_EQ(pl::verify(p, replace_final(solution, "path ", skipped)), 0.0f) << skipped;
    }
    // Wrong direction, a node visited twice, a letter outside the graph, trailing text.
    EXPECT_EQ(pl::verify(p, replace_final(solution, "path ", std::string(path.rbegin(), path.rend()))), 0.0f);
    EXPECT_EQ(pl::verify(p, replace_final(solution, "path ", path.substr(0, 2) + path.substr(0, 1) + path.substr(1))), 0.0f);
    auto outside = path;
    outside[1] = 'z';
    EXPECT_EQ(pl::verify(p, replace_final(solution, "path ", outside)), 0.0f);
    EXPECT_EQ(pl::verify(p, solution + ";"), 0.0f);
    EXPECT_EQ(pl::verify(p, solution.substr(0, solution.rfind("path "))), 0.0f);
    // Any other simple path along listed edges is accepted.
    if (const auto other = other_path(p, path); !other.empty()) {
      ++alternatives;
      EXPECT_EQ(pl::verify(p, replace_final(solution, "path ", other)), 1.0f) << other;
    }
  }
  EXPECT_GT(alternatives, solutions_per_task / 2);
}

}  // namespace
