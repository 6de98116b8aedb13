#pragma once
/// The verifiable tasks behind one interface, and a registry by name.
///
///   "countdown"    tasks/countdown.hpp    reach a target with + - * / using each number exactly once
///   "arithmetic"   tasks/arithmetic.hpp   evaluate an expression step by step
///   "planning"     tasks/planning.hpp     a path between two nodes of a listed graph
///   "chain"        tasks/chain.hpp        named single-digit steps that reuse earlier results
///   "rule"         tasks/chain.hpp        a max/min chain with hidden steps '?' whose rule the written
///                                         solutions only guess at: the warm start learns the procedure,
///                                         only the reward can teach the rule
///
/// Each task: a seeded generator (train and test disjoint by construction, tasks/common.hpp), a verifier
/// (reward 1 or 0 from the final answer alone), a chain-of-thought solution writer for the supervised
/// warm start, and difficulty levels 0 (default), 1 and 2. Prompts and solutions use model.hpp's tokenizer's
/// alphabet; the model sees BOS + prompt and writes solution + EOS.
///
///   std::mt19937_64 rng(seed);
///   const grpo::task& t = grpo::find_task("countdown");
///   grpo::problem p = t.generate(rng, grpo::split::train, /*level=*/0);
///   std::string cot = t.write_solution(p, rng);   // t.verify(p, cot) == 1
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tasks/arithmetic.hpp"
#include "tasks/chain.hpp"
#include "tasks/common.hpp"
#include "tasks/countdown.hpp"
#include "tasks/planning.hpp"

namespace grpo {

/// One generated problem of any task.
struct problem {
  std::string task;    ///< registry name
  int level = 0;       ///< difficulty level it was generated at
  std::string prompt;  ///< what follows BOS, e.g. "3,7,9->30:"
  std::string answer;  ///< one correct final answer (an expression, a number, a path)
  std::variant<countdown::instance, arithmetic::instance, planning::instance, chain::instance> data;  ///< the task's own view
};

/// A task: name and the three functions. write_solution's result verifies to 1, except on `rule`,
/// whose writer guesses at the hidden steps.
struct task {
  std::string name;
  std::function<problem(std::mt19937_64& rng, split s, int level)> generate;
  std::function<float(const problem& p, std::string_view response)> verify;
  std::function<std::string(const problem& p, std::mt19937_64& rng)> write_solution;
  std::function<std::string(const problem& p)> canonical_key;  ///< the problem up to presentation; decides its split
};

namespace detail {

template <class Instance>
const Instance& instance_of(const problem& p, const std::string& name) {
  const auto* inst = std::get_if<Instance>(&p.data);
  if (!inst) throw std::invalid_argument("task '" + name + "' given a problem of task '" + p.task + "'");
  return *inst;
}

template <class Instance, class Params>
task make_task(std::string name, Params (*params_for_level)(int),
               Instance (*generate)(std::mt19937_64&, split, const Params&), std::string (*prompt_of)(const Instance&),
               std::string (*reference_answer)(const Instance&), float (*verify)(const Instance&, std::string_view),
               std::string (*write_solution)(const Instance&, std::mt19937_64&, const Params&),
               std::string (*canonical_key)(const Instance&)) {
  task t;
  t.name = name;
  t.generate = [=](std::mt19937_64& rng, split s, int level) {
    const Instance inst = generate(rng, s, params_for_level(level));
    return problem{name, level, prompt_of(inst), reference_answer(inst), inst};
  };
  t.verify = [=](const problem& p, std::string_view response) { return verify(instance_of<Instance>(p, name), response); };
  t.write_solution = [=](const problem& p, std::mt19937_64& rng) {
    return write_solution(instance_of<Instance>(p, name), rng, params_for_level(p.level));
  };
  t.canonical_key = [=](const problem& p) { return canonical_key(instance_of<Instance>(p, name)); };
  return t;
}

}  // namespace detail

/// Every task, in a fixed order.
inline const std::vector<task>& all_tasks() {
  static const std::vector<task> tasks{
      detail::make_task("countdown", countdown::params_for_level, countdown::generate, countdown::prompt_of,
                        countdown::reference_answer, countdown::verify, countdown::write_solution,
                        countdown::canonical_key),
      detail::make_task("arithmetic", arithmetic::params_for_level, arithmetic::generate, arithmetic::prompt_of,
                        arithmetic::reference_answer, arithmetic::verify, arithmetic::write_solution,
                        arithmetic::canonical_key),
      detail::make_task("planning", planning::params_for_level, planning::generate, planning::prompt_of,
                        planning::reference_answer, planning::verify, planning::write_solution,
                        planning::canonical_key),
      detail::make_task("chain", chain::params_for_level, chain::generate, chain::prompt_of, chain::reference_answer,
                        chain::verify, chain::write_solution, chain::canonical_key),
      detail::make_task("rule", chain::rule_params_for_level, chain::generate, chain::prompt_of,
                        chain::reference_answer, chain::verify, chain::write_solution, chain::canonical_key),
  };
  return tasks;
}

/// The task called `name`; std::invalid_argument listing the known names otherwise.
inline const task& find_task(std::string_view name) {
  std::string known;
  for (const auto& t : all_tasks()) {
    if (t.name == name) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw std::invalid_argument("unknown task '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace grpo
