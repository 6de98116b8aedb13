// Signals from maps and from Q/K against the double-precision reference, on the host backends.
#include "suites/signals.hpp"

namespace signals_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Host, Signals, rt::host_policies);
}  // namespace signals_suite
