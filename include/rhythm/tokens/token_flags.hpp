#pragma once
/// Token flags: the sets the token detectors find, as bits of one std::uint8_t per position.
///
/// A flags view is [B, N] (one byte per padded position); only response positions are ever set.
/// The credit stage reads these bits to build the per-token shaping factor gamma.
#include <cstdint>

namespace rhythm {

struct token_flag {
  static constexpr std::uint8_t preplan = 1;    ///< t in T_loc: top-q of the WAAD jump (DESIGN §3)
  static constexpr std::uint8_t anchor = 2;     ///< t in T_glob: top-q of FAI over eligible tokens
  static constexpr std::uint8_t dominated = 4;  ///< t in D: an anchor dominated by a preceding preplan jump
  static constexpr std::uint8_t intro = 8;      ///< t = intro(u) for some dominated anchor u
};

}  // namespace rhythm
