// The C++ side of the Python module's agreement tests (python/tests/test_agreement.py): reads a case
// written by torch.save (a dict of tensors and parameters), runs the LibTorch adapter on it as a C++
// user would (its own structs, filled here field by field), and writes every result with
// torch::pickle_save for torch.load. Usage: rhythm_python_reference <case.pt> <results.pt>
//
// Case keys: "call" ("credit", "head_signals_from_qk", "head_signals_from_maps" or "ppo_clip_loss"),
// its tensors by the Python argument names, and the Python keyword arguments as numbers and strings
// ("horizon_hi" < 0 for None; "share" for CreditAssigner's q). Errors are written as {"error": message,
// "errc": code name}.
#include <rhythm/torch.hpp>
#include <torch/serialize.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using dict = c10::Dict<c10::IValue, c10::IValue>;

struct case_reader {
  dict d;
  at::Tensor tensor(const char* key) const {
    return d.contains(key) && d.at(key).isTensor() ? d.at(key).toTensor() : at::Tensor{};
  }
  std::int64_t integer(const char* key) const { return d.at(key).toInt(); }
  double real(const char* key) const { return d.at(key).toDouble(); }
  bool flag(const char* key) const { return d.at(key).toBool(); }
  std::string text(const char* key) const { return d.at(key).toStringRef(); }
};

rhythm::signal_params signal_params(const case_reader& c) {
  const std::int64_t hi = c.integer("horizon_hi");
  return {.window = c.integer("window"),
          .horizon = {c.integer("horizon_lo"), hi < 0 ? rhythm::unbounded_horizon : hi},
          .scale = static_cast<float>(c.real("scale")),
          .check_finite = c.flag("check_finite")};
}

c10::Dict<std::string, at::Tensor> run(const case_reader& c) {
  c10::Dict<std::string, at::Tensor> out;
  const std::string call = c.text("call");
  if (call == "credit") {
    rhythm::shaping::any policy = rhythm::shaping::any::parse(c.text("policy"));
    policy.gamma_amp = c.real("gamma_amp");
    policy.alpha = c.real("alpha");
    policy.selection = {.q = c.real("share"), .bottom = c.flag("bottom")};
    policy.seed = static_cast<std::uint64_t>(c.integer("seed"));
    rhythm::pipeline_params params;
    params.signals = signal_params(c);
    params.groups.fraction = c.real("head_fraction");
    params.pooled_groups = c.flag("pooled_groups");
    params.selection = {.q = c.real("share"), .bottom = c.flag("bottom")};
    params.dominance.window = c.integer("dominance_window");
    params.dominance.threshold = c.text("dominance_threshold") == "median_delta"
                                     ? rhythm::dominance_threshold_mode::median_delta
                                     : rhythm::dominance_threshold_mode::loc_threshold;
    params.advantages = {.std_normalise = c.flag("std_normalise"),
                         .epsilon = static_cast<float>(c.real("advantage_epsilon"))};
    const std::string sign = c.text("sign");
    params.shaping = {.sign = sign == "positive"   ? rhythm::sign_mode::positive
                              : sign == "negative" ? rhythm::sign_mode::negative
                                                   : rhythm::sign_mode::both,
                      .floor = c.real("floor"),
                      .mean_preserving = c.flag("mean_preserving")};
    rhythm::torch::credit_assigner credit(policy, params, static_cast<int>(c.integer("threads")));
    const auto r = credit({.q = c.tensor("q"),
                           .k = c.tensor("k"),
                           .maps = c.tensor("attentions"),
                           .response_mask = c.tensor("response_mask"),
                           .attention_mask = c.tensor("attention_mask"),
                           .segments = c.tensor("segments"),
                           .rewards = c.tensor("rewards"),
                           .group_ids = c.tensor("group_ids"),
                           .entropies = c.tensor("entropies")});
    const auto& d = r.diagnostics;
    out.insert("gamma", r.gamma);
    out.insert("shaped_advantages", r.shaped);
    for (const auto& [name, t] : {std::pair{"response_tokens", d.response_tokens}, {"preplan", d.preplan},
                                  {"anchor", d.anchor}, {"dominated", d.dominated}, {"intro", d.intro},
                                  {"mean_gamma", d.mean_gamma}, {"amplified_share", d.amplified_share},
                                  {"advantages", d.advantages}, {"flags", d.flags}, {"waad", d.waad},
                                  {"fai", d.fai}, {"head_spans", d.head_spans}, {"head_roles", d.head_roles}})
      out.insert(std::string("diagnostics.") + name, t);
  } else if (call == "head_signals_from_qk" || call == "head_signals_from_maps") {
    const rhythm::torch::segments_arg segments(c.tensor("segments"));
    const int threads = static_cast<int>(c.integer("threads"));
    const auto s = call == "head_signals_from_qk"
                       ? rhythm::torch::head_signals_from_qk(c.tensor("q"), c.tensor("k"), segments, signal_params(c),
                                                             threads)
                       : rhythm::torch::head_signals_from_maps(c.tensor("attentions"), segments, signal_params(c),
                                                               threads);
    out.insert("span", s.span);
    out.insert("waad", s.waad);
    out.insert("fai", s.fai);
  } else if (call == "ppo_clip_loss") {
    const at::Tensor logp_new = c.tensor("logp_new").detach().clone().requires_grad_();
    const rhythm::ppo_params params{.epsilon = c.real("epsilon"),
                                    .epsilon_high = c.real("epsilon_high"),
                                    .aggregation = c.text("aggregation") == "token_mean"
                                                       ? rhythm::ppo_aggregation::token_mean
                                                       : rhythm::ppo_aggregation::seq_mean_token_mean};
    const auto r = rhythm::torch::ppo_clip_loss(logp_new, c.tensor("logp_old"), c.tensor("shaped_advantages"),
                                                c.tensor("response"), params);
    r.loss.backward();
    out.insert("loss", r.loss.detach());
    out.insert("grad", logp_new.grad());
    out.insert("clip_fraction", at::scalar_tensor(r.clip_fraction, at::kDouble));
    out.insert("mean_ratio", at::scalar_tensor(r.mean_ratio, at::kDouble));
    out.insert("tokens", at::scalar_tensor(r.tokens, at::kLong));
  } else {
    throw std::invalid_argument("rhythm_python_reference: unknown call '" + call + "'");
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <case.pt> <results.pt>\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  const case_reader c{torch::pickle_load(bytes).toGenericDict()};
  c10::impl::GenericDict out(c10::StringType::get(), c10::AnyType::get());
  try {
    for (const auto& e : run(c)) out.insert(e.key(), e.value());
  } catch (const rhythm::error& e) {
    out.insert("error", std::string(e.what()));
    out.insert("errc", std::string(rhythm::to_string(e.code())));
  } catch (const c10::Error& e) {
    out.insert("error", e.msg());
    out.insert("errc", std::string("bad_tensor"));
  }
  const std::vector<char> data = torch::pickle_save(out);
  std::ofstream(argv[2], std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
  return 0;
}
