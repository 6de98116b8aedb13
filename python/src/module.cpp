// rhythm._C: the LibTorch adapter (adapters/libtorch) bound with pybind11. Parameters arrive as
// plain keyword arguments and are mapped onto the core's params structs here; every check and every
// computation stays in the headers. The Python package (rhythm/__init__.py) adds the documented API.
#include <torch/extension.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <rhythm/torch.hpp>

namespace py = pybind11;
using at::Tensor;
using opt_tensor = std::optional<Tensor>;
using horizon_arg = std::pair<std::int64_t, std::optional<std::int64_t>>;  // (H_lo, H_hi); H_hi None: unbounded

namespace {

// ---- errors -------------------------------------------------------------------------------------

py::handle error_type;  // rhythm._C.Error (a ValueError), created at import; lives as long as the process

void set_error(const std::string& message, const char* errc) {
  const py::object error = py::reinterpret_borrow<py::object>(error_type)(message);
  error.attr("errc") = errc;
  PyErr_SetObject(error_type.ptr(), error.ptr());
}

// rhythm::error carries its errc; the adapter's own tensor checks (c10::Error whose message starts
// "rhythm::torch:") become errc "bad_tensor"; any other c10::Error is left to torch's translation.
void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const rhythm::error& e) {
    set_error(e.what(), rhythm::to_string(e.code()));
  } catch (const c10::Error& e) {
    if (e.msg().rfind("rhythm::torch:", 0) != 0) throw;
    set_error(e.msg(), "bad_tensor");
  }
}

// ---- parameters ---------------------------------------------------------------------------------

template <class E, std::size_t Count>
E parse_enum(const std::string& value, const char* argument, const char* const (&names)[Count]) {
  std::string expected;
  for (std::size_t i = 0; i < Count; ++i) {
    if (value == names[i]) return static_cast<E>(i);
    expected += (i ? (i + 1 == Count ? " or '" : ", '") : "'") + std::string(names[i]) + "'";
  }
  rhythm::detail::fail(rhythm::errc::bad_parameter, argument, expected, "'" + value + "'");
}

rhythm::fai_horizon horizon_of(const horizon_arg& h) {
  return {h.first, h.second.value_or(rhythm::unbounded_horizon)};
}

// CPU threads: 0 (torch.get_num_threads()) or more; checked here so that the errc is bad_parameter.
int threads_of(int threads) {
  rhythm::detail::expects(threads >= 0, rhythm::errc::bad_parameter, "threads", ">= 0 (0: torch.get_num_threads())",
                          threads);
  return threads;
}

rhythm::signal_params signal_params_of(std::int64_t window, const horizon_arg& horizon, double scale,
                                       bool check_finite) {
  return {window, horizon_of(horizon), static_cast<float>(scale), check_finite};
}

// ---- CreditAssigner -----------------------------------------------------------------------------

// rhythm::torch::credit_assigner behind a mutex (its buffers are reused; calls run without the GIL).
class credit_assigner {
 public:
  credit_assigner(const std::string& policy, double gamma_amp, double alpha, std::uint64_t seed, std::int64_t window,
                  const horizon_arg& horizon, double q, bool bottom,
                  double head_fraction, bool pooled_groups, std::int64_t dominance_window,
                  const std::string& dominance_threshold, bool std_normalise, double advantage_epsilon,
                  const std::string& sign, double floor, bool mean_preserving, double scale, bool check_finite,
                  int threads) {
    rhythm::shaping::any p = rhythm::shaping::any::parse(policy);
    p.gamma_amp = gamma_amp, p.alpha = alpha, p.selection = {q, bottom}, p.seed = seed;
    rhythm::pipeline_params params;
    params.signals = signal_params_of(window, horizon, scale, check_finite);
    params.groups.fraction = head_fraction;
    params.pooled_groups = pooled_groups;
    params.selection = {q, bottom};
    params.dominance = {dominance_window, parse_enum<rhythm::dominance_threshold_mode>(
                                              dominance_threshold, "dominance_threshold", {"loc_threshold", "median_delta"})};
    params.advantages = {std_normalise, static_cast<float>(advantage_epsilon)};
    params.shaping = {parse_enum<rhythm::sign_mode>(sign, "sign", {"both", "positive", "negative"}), floor, mean_preserving};
    rhythm::detail::check_pipeline_params(params);  // the first call's checks, at construction
    p.rule();
    assigner_.emplace(p, params, threads_of(threads));
  }

  py::dict operator()(const opt_tensor& q, const opt_tensor& k, const opt_tensor& maps, const opt_tensor& response_mask,
                      const opt_tensor& attention_mask, const opt_tensor& segments, const Tensor& rewards,
                      const Tensor& group_ids, const opt_tensor& entropies) {
    const auto or_none = [](const opt_tensor& t) { return t.value_or(Tensor{}); };
    const rhythm::torch::credit_batch batch{or_none(q),        or_none(k),         or_none(maps),
                                            or_none(response_mask), or_none(attention_mask), or_none(segments),
                                            rewards,           group_ids,          or_none(entropies)};
    rhythm::torch::credit_result r;
    {
      const py::gil_scoped_release no_gil;
      const std::lock_guard lock(mutex_);
      r = (*assigner_)(batch);
    }
    const auto& d = r.diagnostics;
    py::dict diagnostics;
    for (const auto& [name, t] : {std::pair{"response_tokens", d.response_tokens}, {"preplan", d.preplan},
                                  {"anchor", d.anchor}, {"dominated", d.dominated}, {"intro", d.intro},
                                  {"mean_gamma", d.mean_gamma}, {"amplified_share", d.amplified_share},
                                  {"advantages", d.advantages}, {"flags", d.flags}, {"waad", d.waad},
                                  {"fai", d.fai}, {"head_spans", d.head_spans}, {"head_roles", d.head_roles}})
      diagnostics[name] = t;
    py::dict out;
    out["gamma"] = r.gamma;
    out["shaped_advantages"] = r.shaped;
    out["diagnostics"] = diagnostics;
    return out;
  }

  // Seconds per call of the C++ adapter on `batch`, `repeats` calls in C++ (the benchmark's baseline).
  double time_per_call(const Tensor& q, const Tensor& k, const Tensor& response_mask, const Tensor& rewards,
                       const Tensor& group_ids, int repeats) {
    const py::gil_scoped_release no_gil;
    const std::lock_guard lock(mutex_);
    const rhythm::torch::credit_batch batch{.q = q, .k = k, .response_mask = response_mask, .rewards = rewards,
                                            .group_ids = group_ids};
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) (*assigner_)(batch);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / std::max(repeats, 1);
  }

  void set_seed(std::uint64_t seed) {
    const py::gil_scoped_release no_gil;  // a call may hold the mutex without the GIL
    const std::lock_guard lock(mutex_);
    assigner_->policy.seed = seed;
  }

 private:
  std::optional<rhythm::torch::credit_assigner> assigner_;
  std::mutex mutex_;
};

py::tuple signals_tuple(const rhythm::torch::head_signal_tensors& s) { return py::make_tuple(s.span, s.waad, s.fai); }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "rhythm's C++ core and LibTorch adapter (use the package rhythm, not this module)";
  error_type = PyErr_NewException("rhythm._C.Error", PyExc_ValueError, nullptr);
  if (!error_type) throw py::error_already_set();
  m.attr("Error") = error_type;
  py::register_local_exception_translator(translate);
#if defined(RHYTHM_TORCH_CUDA) && RHYTHM_TORCH_CUDA
  m.attr("cuda_kernels") = true;  // CUDA tensors run rhythm's CUDA backend
#else
  m.attr("cuda_kernels") = false;  // CUDA tensors take a host round trip
#endif
  m.attr("version") = std::to_string(RHYTHM_VERSION_MAJOR) + "." + std::to_string(RHYTHM_VERSION_MINOR) + "." +
                      std::to_string(RHYTHM_VERSION_PATCH);

  py::list policies;
  for (const std::string_view name : rhythm::shaping::any::names) policies.append(std::string(name));
  m.attr("policies") = py::tuple(policies);

  py::class_<credit_assigner>(m, "CreditAssigner")
      .def(py::init<const std::string&, double, double, std::uint64_t, std::int64_t, const horizon_arg&, double, bool,
                    double, bool, std::int64_t, const std::string&, bool, double, const std::string&, double, bool,
                    double, bool, int>(),
           py::arg("policy"), py::arg("gamma_amp"), py::arg("alpha"), py::arg("seed"), py::arg("window"),
           py::arg("horizon"), py::arg("q"), py::arg("bottom"), py::arg("head_fraction"), py::arg("pooled_groups"),
           py::arg("dominance_window"), py::arg("dominance_threshold"), py::arg("std_normalise"),
           py::arg("advantage_epsilon"), py::arg("sign"), py::arg("floor"), py::arg("mean_preserving"),
           py::arg("scale"), py::arg("check_finite"), py::arg("threads"))
      .def("__call__", &credit_assigner::operator(), py::kw_only(), py::arg("q"), py::arg("k"), py::arg("maps"),
           py::arg("response_mask"), py::arg("attention_mask"), py::arg("segments"), py::arg("rewards"),
           py::arg("group_ids"), py::arg("entropies"))
      .def("time_per_call", &credit_assigner::time_per_call, py::arg("q"), py::arg("k"), py::arg("response_mask"),
           py::arg("rewards"), py::arg("group_ids"), py::arg("repeats"))
      .def("set_seed", &credit_assigner::set_seed, py::arg("seed"));

  m.def(
      "head_signals_from_qk",
      [](const Tensor& q, const Tensor& k, const Tensor& segments, std::int64_t window, const horizon_arg& horizon,
         double scale, bool check_finite, int threads) {
        const rhythm::torch::segments_arg seg(segments);
        const auto params = signal_params_of(window, horizon, scale, check_finite);
        const py::gil_scoped_release no_gil;
        auto s = rhythm::torch::head_signals_from_qk(q, k, seg, params, threads_of(threads));
        const py::gil_scoped_acquire gil;
        return signals_tuple(s);
      },
      py::arg("q"), py::arg("k"), py::arg("segments"), py::arg("window"), py::arg("horizon"), py::arg("scale"),
      py::arg("check_finite"), py::arg("threads"));
  m.def(
      "head_signals_from_maps",
      [](const Tensor& maps, const Tensor& segments, std::int64_t window, const horizon_arg& horizon, bool check_finite,
         int threads) {
        const rhythm::torch::segments_arg seg(segments);
        const auto params = signal_params_of(window, horizon, 0.0, check_finite);
        const py::gil_scoped_release no_gil;
        auto s = rhythm::torch::head_signals_from_maps(maps, seg, params, threads_of(threads));
        const py::gil_scoped_acquire gil;
        return signals_tuple(s);
      },
      py::arg("maps"), py::arg("segments"), py::arg("window"), py::arg("horizon"), py::arg("check_finite"),
      py::arg("threads"));
  m.def(
      "segments_from_masks",
      [](const Tensor& response_mask, const opt_tensor& attention_mask) {
        return rhythm::torch::segments_tensor(
            rhythm::torch::segments_from_masks(response_mask, attention_mask.value_or(Tensor{})));
      },
      py::arg("response_mask"), py::arg("attention_mask"));
  m.def(
      "ppo_clip_loss",
      [](const Tensor& logp_new, const Tensor& logp_old, const Tensor& shaped_advantages, const opt_tensor& response_mask,
         const opt_tensor& segments, double epsilon, double epsilon_high, const std::string& aggregation) {
        TORCH_CHECK(response_mask.has_value() != segments.has_value(),
                    "rhythm::torch: ppo_clip_loss: expected either response_mask or segments, got ",
                    segments ? "both" : "neither");
        const rhythm::ppo_params params{
            epsilon, epsilon_high,
            parse_enum<rhythm::ppo_aggregation>(aggregation, "aggregation", {"seq_mean_token_mean", "token_mean"})};
        // a mask of any integer dtype is read as a mask (the adapter reads int64 as segments)
        const Tensor response = segments ? *segments : rhythm::torch::detail::mask_bits(*response_mask, "response_mask");
        const auto r = rhythm::torch::ppo_clip_loss(logp_new, logp_old, shaped_advantages, response, params);
        return py::make_tuple(r.loss, r.clip_fraction, r.mean_ratio, r.tokens);
      },
      py::arg("logp_new"), py::arg("logp_old"), py::arg("shaped_advantages"), py::arg("response_mask"),
      py::arg("segments"), py::arg("epsilon"), py::arg("epsilon_high"), py::arg("aggregation"));
}
