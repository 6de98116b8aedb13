#pragma once
/// Value errors: what a backend found wrong in the *values* of its inputs (a segment out of range,
/// NaN or Inf, an empty head group), as a flat record that any backend can fill, on the host or in
/// device memory, and one formatter that turns it into rhythm::error. So every backend reports the
/// same errc and the same message for the same input.
///
/// The error contract of every primitive (DESIGN §1, "the backend seam"):
///   - metadata errors (extents, strides, parameters, overlap; core/checks.hpp) are thrown by the
///     stage before the backend is called, identically for every backend;
///   - value errors are found by the backend in a fixed order: the segments first, then each input
///     in argument order, each in (sequence, head, position) order -- except the Q/K path, which
///     checks q then k per (sequence, head), so the first such item with a bad row is reported.
///     The CPU backends make every check before they write. A device backend records the same
///     error in a `value_error` in device memory (its status), launches nothing that writes outputs
///     after the checks, and the caller turns the status into the same rhythm::error (raise()).
///   - outputs are written only when every check passed: on any error they are untouched.
#include <cstdint>
#include <string>

#include "../config.hpp"
#include "../error.hpp"

namespace rhythm {

/// The arguments a value check can blame (names as in the primitives' signatures).
enum class value_argument : std::uint8_t {
  segments, maps, q, k, qk_logits, spans, roles, values, waad, fai, entropy, entropies, rewards, advantages,
  gamma, logp_new, logp_old, shaped_adv, policy
};

/// What a value check found.
enum class value_check : std::uint8_t {
  none = 0,          ///< no error
  segment_range,     ///< segments[at0] = {at1, at2, at3} is not 0 <= begin <= response_begin <= end <= at4
  non_finite,        ///< NaN or Inf in `argument` at `where` (coordinates at0..)
  empty_head_group,  ///< no head of the group in sequence at0
};

/// Where a non-finite value sits (which of at0.. are meaningful).
enum class value_location : std::uint8_t {
  index,              ///< at0
  sequence,           ///< sequence at0
  sequence_head,      ///< sequence at0, head at1
  sequence_head_row,  ///< sequence at0, head at1, row at2
  sequence_position,  ///< sequence at0, position at1
};

/// Which positions the check reads (part of the expectation in the message).
enum class value_scope : std::uint8_t { all, response, eligible_response, fai_eligible_response };

/// One value error; `check == value_check::none` means none. Trivially copyable.
struct value_error {
  value_check check = value_check::none;
  value_argument argument = value_argument::segments;
  value_location where = value_location::index;
  value_scope scope = value_scope::all;
  std::int64_t at[5] = {0, 0, 0, 0, 0};

  RHYTHM_HOST_DEVICE explicit operator bool() const noexcept { return check != value_check::none; }
};

/// segments[b] = s is outside [0, length].
RHYTHM_HOST_DEVICE inline value_error segment_error(std::int64_t b, std::int64_t begin, std::int64_t response_begin,
                                                    std::int64_t end, std::int64_t length) {
  value_error e;
  e.check = value_check::segment_range;
  e.at[0] = b, e.at[1] = begin, e.at[2] = response_begin, e.at[3] = end, e.at[4] = length;
  return e;
}

/// NaN or Inf in `argument` at the coordinates `a0, a1, a2` read as `where`.
RHYTHM_HOST_DEVICE inline value_error non_finite_error(value_argument argument, value_location where,
                                                       value_scope scope, std::int64_t a0, std::int64_t a1 = 0,
                                                       std::int64_t a2 = 0) {
  value_error e;
  e.check = value_check::non_finite;
  e.argument = argument, e.where = where, e.scope = scope;
  e.at[0] = a0, e.at[1] = a1, e.at[2] = a2;
  return e;
}

namespace detail {

inline const char* to_string(value_argument a) {
  constexpr const char* names[] = {"segments", "maps", "q", "k", "q, k (q.k overflowed)", "spans", "roles",
                                   "values", "waad", "fai", "entropy", "entropies", "rewards", "advantages",
                                   "gamma", "logp_new", "logp_old", "shaped_adv", "policy"};
  return names[static_cast<int>(a)];
}

inline std::string location_text(const value_error& e) {
  const auto n = [&](int i) { return std::to_string(e.at[i]); };
  switch (e.where) {
    case value_location::index: return "index " + n(0);
    case value_location::sequence: return "sequence " + n(0);
    case value_location::sequence_head: return "sequence " + n(0) + ", head " + n(1);
    case value_location::sequence_head_row: return "sequence " + n(0) + ", head " + n(1) + ", row " + n(2);
    case value_location::sequence_position: return "sequence " + n(0) + ", position " + n(1);
  }
  return "";
}

inline const char* scope_text(value_scope s) {
  switch (s) {
    case value_scope::all: return "finite values";
    case value_scope::response: return "finite values at response positions";
    case value_scope::eligible_response: return "finite values at eligible response positions";
    case value_scope::fai_eligible_response: return "finite values at FAI-eligible response positions";
  }
  return "finite values";
}

}  // namespace detail

/// Throws the rhythm::error that `e` describes; returns if `e` holds no error.
inline void raise(const value_error& e) {
  const auto n = [&](int i) { return std::to_string(e.at[i]); };
  switch (e.check) {
    case value_check::none: return;
    case value_check::segment_range:
      detail::fail(errc::bad_segment, "segments[" + n(0) + "]",
                   "0 <= begin <= response_begin <= end <= N = " + n(4), "{" + n(1) + ", " + n(2) + ", " + n(3) + "}");
    case value_check::non_finite:
      detail::fail(errc::non_finite, detail::to_string(e.argument), detail::scope_text(e.scope),
                   "NaN or Inf at " + detail::location_text(e));
    case value_check::empty_head_group:
      detail::fail(errc::bad_parameter, "roles", "at least one head in the group for every sequence",
                   "none in sequence " + n(0));
  }
}

}  // namespace rhythm
