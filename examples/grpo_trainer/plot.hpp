#pragma once
/// Learning curves as PNG files: a grid of line charts rendered on the CPU into an RGB image and
/// written with stb_image_write (Debian: libstb-dev). Needs no torch.
///
///   grpo::plot::chart c{.title = "reward", .x_label = "step", .y_label = "mean",
///                       .lines = {{"train", steps, train_reward}, {"eval", steps, eval_reward}}};
///   grpo::plot::write_png("curves.png", std::span(&c, 1));
///
/// Every panel has a frame, grid lines at 3-6 "nice" ticks with numeric labels, a title, axis labels
/// and a legend. Text uses a 5x7 bitmap font (upper-case glyphs; lower case maps onto them) at x2.
///
/// stb_image_write is compiled into every translation unit that includes this header as a private
/// (static) copy, so this header must be its only user there.
#ifdef INCLUDE_STB_IMAGE_WRITE_H
#error "plot.hpp compiles its own static copy of stb_image_write.h; include plot.hpp instead of it"
#endif
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace grpo::plot {

/// One curve: points (x[i], y[i]); a non-finite x or y is a gap (the line breaks there).
struct series {
  std::string label{};
  std::vector<double> x{}, y{};
};

/// One panel: its curves, titles, and optional fixed bounds of the y axis (auto from the data otherwise).
struct chart {
  std::string title{}, x_label{}, y_label{};
  std::vector<series> lines{};
  std::optional<double> y_min{}, y_max{};
};

/// An 8-bit RGB colour.
struct rgb {
  std::uint8_t r, g, b;
  friend bool operator==(const rgb&, const rgb&) = default;
};

/// Colours of the curves: series i of a chart is drawn in palette[i % palette.size()].
inline constexpr std::array<rgb, 8> palette{{{31, 95, 191},
                                            {217, 95, 14},
                                            {44, 156, 60},
                                            {200, 40, 60},
                                            {128, 80, 176},
                                            {140, 90, 60},
                                            {32, 168, 176},
                                            {176, 160, 16}}};

namespace detail {

inline constexpr int text_scale = 2;
inline constexpr int glyph_advance = 6 * text_scale;  // 5 columns + 1 blank
inline constexpr int text_height = 7 * text_scale;
inline constexpr rgb ink{20, 20, 20}, frame{70, 70, 70}, grid{228, 228, 228};

// 5x7 glyphs, one byte per row from the top, bit 4 the leftmost column. Lower case maps to upper.
inline constexpr std::string_view glyph_chars = " 0123456789abcdefghijklmnopqrstuvwxyz.,-+%():/_=[]<>*?!|;'#@&\"";
inline constexpr std::array<std::array<std::uint8_t, 7>, glyph_chars.size()> glyphs{{
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // space
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},  // 0 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},  // 2 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},  // 4 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},  // 6 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},  // 8 9
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},  // a b
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},  // c d
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},  // e f
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},  // g h
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},  // i j
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},  // k l
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},  // m n
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},  // o p
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},  // q r
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},  // s t
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},  // u v
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},  // w x
    {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},  // y z
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},  // . ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00},  // - +
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},  // % (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},  // ) :
    {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F},  // / _
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}, {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E},  // = [
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}, {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},  // ] <
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00},  // > *
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04},  // ? !
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08},  // | ;
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}, {0x0A, 0x1F, 0x0A, 0x0A, 0x0A, 0x1F, 0x0A},  // ' #
    {0x0E, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0E}, {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D},  // @ &
    {0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00},                                              // "
}};

/// Glyph of `c`; characters without one draw as '?'.
inline const std::array<std::uint8_t, 7>& glyph_of(char c) {
  const auto i = glyph_chars.find(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return glyphs[i == std::string_view::npos ? glyph_chars.find('?') : i];
}

/// Width in pixels of `text` drawn at `scale`.
inline int text_width(std::string_view text, int scale = text_scale) {
  return text.empty() ? 0 : static_cast<int>(text.size()) * 6 * scale - scale;
}

/// Half-open pixel rectangle [x0, x1) x [y0, y1).
struct box {
  int x0, y0, x1, y1;
};

/// An RGB image; drawing is clipped to `clip`.
struct canvas {
  int width, height;
  std::vector<std::uint8_t> pixels;
  box clip;

  canvas(int w, int h) : width(w), height(h), pixels(std::size_t(w) * std::size_t(h) * 3, 255), clip{0, 0, w, h} {}

  /// Mixes `c` into pixel (x, y) with weight `alpha` in [0, 1].
  void blend(int x, int y, rgb c, double alpha) {
    if (x < clip.x0 || x >= clip.x1 || y < clip.y0 || y >= clip.y1 || alpha <= 0) return;
    auto* p = &pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3];
    const double a = std::min(alpha, 1.0);
    const std::array<std::uint8_t, 3> target{c.r, c.g, c.b};
    for (std::size_t i = 0; i < 3; ++i) p[i] = static_cast<std::uint8_t>(std::lround(p[i] + a * (target[i] - p[i])));
  }
  void fill(box b, rgb c) {
    for (int y = b.y0; y < b.y1; ++y)
      for (int x = b.x0; x < b.x1; ++x) blend(x, y, c, 1);
  }
  /// Draws `text` with its top-left corner at (x, y); `vertical` turns it to read bottom-up from (x, y).
  void text(int x, int y, std::string_view s, rgb c, bool vertical = false, int scale = text_scale) {
    for (std::size_t k = 0; k < s.size(); ++k)
      for (int row = 0; row < 7; ++row)
        for (int col = 0; col < 5; ++col) {
          if (!(glyph_of(s[k])[std::size_t(row)] & (0x10 >> col))) continue;
          const int u = (static_cast<int>(k) * 6 + col) * scale, v = row * scale;
          fill(vertical ? box{x + v, y - u - scale, x + v + scale, y - u}
                        : box{x + u, y + v, x + u + scale, y + v + scale},
               c);
        }
  }
  /// Draws `s` centred on `centre` along its direction in the text_height band starting at `across` (its top,
  /// or its left when vertical); at half size when it would not fit in `room` pixels.
  void caption(int centre, int across, std::string_view s, int room, bool vertical = false) {
    const int scale = text_width(s) <= room ? text_scale : 1, half = text_width(s, scale) / 2;
    const int offset = (text_height - 7 * scale) / 2;
    if (vertical) text(across + offset, centre + half, s, ink, true, scale);
    else text(centre - half, across + offset, s, ink, false, scale);
  }
  /// Anti-aliased line of width 2 * half_width from (ax, ay) to (bx, by) with round caps, in pixel units.
  void line(double ax, double ay, double bx, double by, rgb c, double half_width = 1.2) {
    if (!std::isfinite(ax) || !std::isfinite(ay) || !std::isfinite(bx) || !std::isfinite(by)) return;
    const bool steep = std::abs(by - ay) > std::abs(bx - ax);  // walk the major axis, scan a band across it
    if (steep) std::swap(ax, ay), std::swap(bx, by);
    if (ax > bx) std::swap(ax, bx), std::swap(ay, by);
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy, reach = half_width + 1;
    const int major_lo = steep ? clip.y0 : clip.x0, major_hi = steep ? clip.y1 : clip.x1;
    const int minor_lo = steep ? clip.x0 : clip.y0, minor_hi = steep ? clip.x1 : clip.y1;
    const auto to_int = [](double v, int lo, int hi) {
      return static_cast<int>(std::clamp(v, double(lo), double(hi)));
    };
    const int u1 = to_int(std::ceil(bx + reach), major_lo, major_hi);
    for (int u = to_int(std::floor(ax - reach), major_lo, major_hi); u < u1; ++u) {
      const double pu = u + 0.5, t = dx > 0 ? std::clamp((pu - ax) / dx, 0.0, 1.0) : 0.0;
      const double centre = ay + t * dy;  // |slope| <= 1, so the line stays within reach + 1 of it here
      const int v1 = to_int(std::ceil(centre + reach + 1), minor_lo, minor_hi);
      for (int v = to_int(std::floor(centre - reach - 1), minor_lo, minor_hi); v < v1; ++v) {
        const double pv = v + 0.5;
        const double s = len2 > 0 ? std::clamp(((pu - ax) * dx + (pv - ay) * dy) / len2, 0.0, 1.0) : 0.0;
        const double d = std::hypot(pu - ax - s * dx, pv - ay - s * dy);
        const double coverage = std::clamp(half_width + 0.5 - d, 0.0, 1.0);
        if (coverage > 0) steep ? blend(v, u, c, coverage) : blend(u, v, c, coverage);
      }
    }
  }
};

/// A closed axis interval and its tick values.
struct axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  double step = 1;
};

/// Ticks at multiples of a 1-2-5 step giving about five per axis.
inline void place_ticks(axis& a) {
  const double raw = (a.hi - a.lo) / 4, magnitude = std::pow(10.0, std::floor(std::log10(raw))), n = raw / magnitude;
  a.step = (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * magnitude;
  a.ticks.clear();
  if (!std::isfinite(a.step) || a.step <= 0) return;
  for (double k = std::ceil(a.lo / a.step - 1e-9); k <= std::floor(a.hi / a.step + 1e-9) && a.ticks.size() < 12; ++k)
    a.ticks.push_back(std::abs(k) < 0.5 ? 0.0 : k * a.step);
}

/// A tick label with as many decimals as the step needs.
inline std::string tick_label(double v, double step) {
  std::array<char, 32> buf{};
  const double mag = std::max(std::abs(v), step);
  if (mag >= 1e6 || step < 1e-4) std::snprintf(buf.data(), buf.size(), "%.3g", v);
  else std::snprintf(buf.data(), buf.size(), "%.*f", std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 6), v);
  return buf.data();
}

/// Axis over the finite values of `values` (x: exact; y: 5% padding), overridden by fixed bounds.
inline axis axis_of(const std::vector<double>& values, double padding, std::optional<double> lo_fixed,
                    std::optional<double> hi_fixed) {
  axis a{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), {}, 1};
  for (const double v : values) a.lo = std::min(a.lo, v), a.hi = std::max(a.hi, v);
  if (a.lo > a.hi) a.lo = 0, a.hi = 1;
  const double span = a.hi - a.lo, pad = span > 0 ? span * padding : (a.lo == 0 ? 1 : std::abs(a.lo) * 0.1);
  a.lo -= pad, a.hi += pad;
  if (lo_fixed) a.lo = *lo_fixed;
  if (hi_fixed) a.hi = *hi_fixed;
  if (a.lo >= a.hi && hi_fixed) a.lo = a.hi - std::max(1.0, std::abs(a.hi) * 0.1);  // a fixed bound beyond the data
  if (a.lo >= a.hi) a.hi = a.lo + std::max(1.0, std::abs(a.lo) * 0.1);
  place_ticks(a);
  return a;
}

/// Draws chart `c` into panel `p` of `img`.
inline void draw_chart(canvas& img, const chart& c, box p) {
  img.clip = p;
  std::vector<double> xs, ys;
  for (const auto& s : c.lines)
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) xs.push_back(s.x[i]), ys.push_back(s.y[i]);
  const axis ax = axis_of(xs, 0, std::nullopt, std::nullopt), ay = axis_of(ys, 0.05, c.y_min, c.y_max);
  std::vector<std::string> y_labels;
  int y_label_width = 0;
  for (const double t : ay.ticks) {
    y_labels.push_back(tick_label(t, ay.step));
    y_label_width = std::max(y_label_width, text_width(y_labels.back()));
  }

  // Layout: title, legend rows, then the plot area framed by tick labels and axis labels.
  constexpr int pad = 10, tick = 5, gap = 6;
  const int left = p.x0 + pad + (c.y_label.empty() ? 0 : text_height + 2 * gap) + y_label_width + gap + tick;
  const int right = p.x1 - pad - glyph_advance * 2;
  int y = p.y0 + pad;
  if (!c.title.empty()) img.caption((p.x0 + p.x1) / 2, y, c.title, p.x1 - p.x0 - pad), y += text_height + gap;
  int x = left;
  for (std::size_t i = 0; i < c.lines.size(); ++i) {  // legend entries flow left to right, wrapping
    const int w = 24 + gap + text_width(c.lines[i].label);
    if (x > left && x + w > right) x = left, y += text_height + gap;
    img.fill({x, y + text_height / 2 - 2, x + 24, y + text_height / 2 + 2}, palette[i % palette.size()]);
    img.text(x + 24 + gap, y, c.lines[i].label, ink);
    x += w + 3 * gap;
  }
  if (!c.lines.empty()) y += text_height + gap;
  const int top = y + gap, bottom = p.y1 - pad - (c.x_label.empty() ? 0 : text_height + gap) - text_height - gap - tick;
  if (right - left < 2 || bottom - top < 2) return;
  const auto px = [&](double v) { return left + (v - ax.lo) / (ax.hi - ax.lo) * (right - left); };
  const auto py = [&](double v) { return bottom - (v - ay.lo) / (ay.hi - ay.lo) * (bottom - top); };

  for (std::size_t i = 0; i < ay.ticks.size(); ++i) {
    const int v = static_cast<int>(std::lround(py(ay.ticks[i]) - 0.5));
    img.fill({left, v, right, v + 1}, grid);
    img.fill({left - tick, v, left, v + 1}, frame);
    img.text(left - tick - gap - text_width(y_labels[i]), v - text_height / 2, y_labels[i], ink);
  }
  for (const double t : ax.ticks) {
    const int u = static_cast<int>(std::lround(px(t) - 0.5));
    const std::string label = tick_label(t, ax.step);
    img.fill({u, top, u + 1, bottom}, grid);
    img.fill({u, bottom, u + 1, bottom + tick}, frame);
    img.text(u - text_width(label) / 2, bottom + tick + gap, label, ink);
  }
  if (!c.x_label.empty()) img.caption((left + right) / 2, p.y1 - pad - text_height, c.x_label, p.x1 - p.x0 - 2 * pad);
  if (!c.y_label.empty()) img.caption((top + bottom) / 2, p.x0 + pad, c.y_label, p.y1 - p.y0 - 2 * pad, true);

  img.clip = {left, top, right, bottom};
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    const auto& s = c.lines[i];
    const auto ok = [&](std::size_t k) { return k < s.x.size() && std::isfinite(s.x[k]) && std::isfinite(s.y[k]); };
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      if (!ok(k)) continue;
      const bool lone = !ok(k + 1) && (k == 0 || !ok(k - 1));  // an isolated point draws as a dot
      if (ok(k + 1) || lone) {
        const std::size_t e = ok(k + 1) ? k + 1 : k;
        img.line(px(s.x[k]), py(s.y[k]), px(s.x[e]), py(s.y[e]), palette[i % palette.size()]);
      }
    }
  }
  img.clip = p;
  for (const box b : {box{left - 1, top - 1, right + 1, top}, box{left - 1, bottom, right + 1, bottom + 1},
                      box{left - 1, top, left, bottom}, box{right, top, right + 1, bottom}})
    img.fill(b, frame);
}

}  // namespace detail

/// Renders `charts` as a grid of panels, `columns` per row, into a width x height RGB PNG at `path`.
/// Writes path + ".tmp" first and renames it onto `path`, so readers never see a partial file.
/// Throws std::invalid_argument on bad input (no charts, non-positive columns or size, a series with
/// x.size() != y.size(), y_min >= y_max) and std::runtime_error naming the path when writing fails.
inline void write_png(const std::string& path, std::span<const chart> charts, int columns = 2, int width = 1200,
                      int height = 800) {
  const auto bad = [](const std::string& what) { throw std::invalid_argument("plot::write_png: " + what); };
  if (charts.empty()) bad("charts is empty");
  if (columns < 1) bad("columns must be positive (got " + std::to_string(columns) + ")");
  if (width < 1 || height < 1)
    bad("width and height must be positive (got " + std::to_string(width) + " x " + std::to_string(height) + ")");
  if (width > (1 << 14) || height > (1 << 14)) bad("width and height must be at most 16384");
  for (const auto& c : charts) {
    for (const auto& s : c.lines)
      if (s.x.size() != s.y.size())
        bad("series '" + s.label + "' of chart '" + c.title + "': x.size() (" + std::to_string(s.x.size()) +
            ") != y.size() (" + std::to_string(s.y.size()) + ")");
    if (c.y_min && c.y_max && !(*c.y_min < *c.y_max)) bad("chart '" + c.title + "': y_min must be below y_max");
    if ((c.y_min && !std::isfinite(*c.y_min)) || (c.y_max && !std::isfinite(*c.y_max)))
      bad("chart '" + c.title + "': y_min and y_max must be finite");
  }
  detail::canvas img(width, height);
  const int n = static_cast<int>(charts.size()), cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  for (int i = 0; i < n; ++i) {
    const int r = i / cols, k = i % cols;
    detail::draw_chart(img, charts[std::size_t(i)],
                       {k * width / cols, r * height / rows, (k + 1) * width / cols, (r + 1) * height / rows});
  }
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  if (!stbi_write_png(tmp.c_str(), width, height, 3, img.pixels.data(), width * 3)) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("plot::write_png: cannot write " + path + " (via " + tmp + ")");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("plot::write_png: cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
}

}  // namespace grpo::plot
