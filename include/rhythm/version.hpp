#pragma once
/// rhythm version: the single source of the library's version number.
#define RHYTHM_VERSION_MAJOR 0
#define RHYTHM_VERSION_MINOR 1
#define RHYTHM_VERSION_PATCH 0
/// Encoded as MAJOR * 10000 + MINOR * 100 + PATCH.
#define RHYTHM_VERSION (RHYTHM_VERSION_MAJOR * 10000 + RHYTHM_VERSION_MINOR * 100 + RHYTHM_VERSION_PATCH)

namespace rhythm {
inline constexpr int version_major = RHYTHM_VERSION_MAJOR;
inline constexpr int version_minor = RHYTHM_VERSION_MINOR;
inline constexpr int version_patch = RHYTHM_VERSION_PATCH;
inline constexpr const char* version_string = "0.1.0";
}  // namespace rhythm
