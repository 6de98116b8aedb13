// Learning-curve PNGs of the GRPO reference trainer: rendering read back with stb_image, and input errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "plot.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace {

namespace fs = std::filesystem;
using grpo::plot::chart;
using grpo::plot::palette;
using grpo::plot::rgb;
using grpo::plot::series;

/// A decoded RGB image.
struct image {
  int width = 0, height = 0;
  std::vector<unsigned char> pixels;
  rgb at(int x, int y) const {
    const auto* p = &pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3];
    return {p[0], p[1], p[2]};
  }
  /// Rows of column x whose pixel is exactly `c`, top to bottom.
  std::vector<int> rows_of(int x, rgb c) const {
    std::vector<int> rows;
    for (int y = 0; y < height; ++y)
      if (at(x, y) == c) rows.push_back(y);
    return rows;
  }
  /// Columns of row y whose pixel is exactly `c`, left to right.
  std::vector<int> columns_of(int y, rgb c) const {
    std::vector<int> columns;
    for (int x = 0; x < width; ++x)
      if (at(x, y) == c) columns.push_back(x);
    return columns;
  }
};

image read_png(const fs::path& path) {
  image img;
  int channels = 0;
  const std::unique_ptr<unsigned char, void (*)(void*)> data(
      stbi_load(path.c_str(), &img.width, &img.height, &channels, 3), stbi_image_free);
  if (!data) throw std::runtime_error("cannot read " + path.string());
  img.pixels.assign(data.get(), data.get() + std::size_t(img.width) * std::size_t(img.height) * 3);
  return img;
}

/// A fresh temporary directory, removed with its contents at the end of the test.
struct temp_dir {
  fs::path path = fs::temp_directory_path() /
                  ("rhythm_test_plot_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
};

series constant(std::string label, double y, int n = 11) {
  series s{std::move(label), {}, {}};
  for (int i = 0; i < n; ++i) s.x.push_back(i), s.y.push_back(y);
  return s;
}

double mean(const std::vector<int>& v) {
  double sum = 0;
  for (const int x : v) sum += x;
  return sum / double(v.size());
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(Plot, WritesAnRgbImageOfTheRequestedSizeOnWhite) {
  const temp_dir dir;
  const chart c{.title = "reward", .x_label = "step", .y_label = "mean", .lines = {constant("train", 0.5)}};
  grpo::plot::write_png((dir.path / "a.png").string(), std::span(&c, 1), 2, 640, 360);
  EXPECT_FALSE(fs::exists(dir.path / "a.png.tmp"));
  const image img = read_png(dir.path / "a.png");
  EXPECT_EQ(img.width, 640);
  EXPECT_EQ(img.height, 360);
  for (const auto& [x, y] : {std::pair{0, 0}, std::pair{639, 0}, std::pair{0, 359}, std::pair{639, 359}})
    EXPECT_EQ(img.at(x, y), (rgb{255, 255, 255})) << x << ", " << y;
}

TEST(Plot, DrawsEachSeriesInItsColourAtItsHeight) {
  const temp_dir dir;
  const chart c{.title = "levels",
                .lines = {constant("low", 0.2), constant("high", 0.8), constant("middle", 0.5)},
                .y_min = 0.0,
                .y_max = 1.0};
  grpo::plot::write_png((dir.path / "b.png").string(), std::span(&c, 1), 1, 800, 600);
  const image img = read_png(dir.path / "b.png");
  const int column = img.width * 3 / 4;  // right of the legend, inside the plot area
  const auto low = img.rows_of(column, palette[0]), high = img.rows_of(column, palette[1]),
             middle = img.rows_of(column, palette[2]);
  ASSERT_FALSE(low.empty());
  ASSERT_FALSE(high.empty());
  ASSERT_FALSE(middle.empty());
  for (const auto* rows : {&low, &high, &middle}) EXPECT_LE(rows->back() - rows->front(), 3);  // one thin line each
  EXPECT_LT(mean(high), mean(middle));
  EXPECT_LT(mean(middle), mean(low));
  EXPECT_NEAR(mean(middle), (mean(low) + mean(high)) / 2, 1.5);  // the y axis is linear
  EXPECT_GT(mean(low) - mean(high), img.height / 3);
}

TEST(Plot, DrawsLongShallowAndSteepSegmentsWithoutBreaks) {
  const temp_dir dir;
  const chart c{.lines = {{"shallow", {0, 10}, {0, 1}}, {"steep", {0, 0.5}, {0, 1}}}, .y_min = 0.0, .y_max = 1.0};
  grpo::plot::write_png((dir.path / "s.png").string(), std::span(&c, 1), 1, 600, 900);
  const image img = read_png(dir.path / "s.png");
  double previous = img.height;
  for (int x = img.width * 3 / 10; x < img.width * 9 / 10; ++x) {  // rises steadily, one thin band per column
    const auto rows = img.rows_of(x, palette[0]);
    ASSERT_FALSE(rows.empty()) << x;
    EXPECT_LE(rows.back() - rows.front(), 3) << x;
    EXPECT_LE(mean(rows), previous) << x;
    previous = mean(rows);
  }
  for (int y = img.height * 3 / 10; y < img.height * 9 / 10; ++y) {  // and the steep one along the rows
    const auto columns = img.columns_of(y, palette[1]);
    ASSERT_FALSE(columns.empty()) << y;
    EXPECT_LE(columns.back() - columns.front(), 3) << y;
  }
}

TEST(Plot, LeavesAGapAtNonFiniteValuesAndAutoRangesTheRest) {
  const temp_dir dir;
  series s = constant("gappy", 3.0);
  for (int i = 4; i <= 6; ++i) s.y[std::size_t(i)] = std::numeric_limits<double>::quiet_NaN();
  s.y[0] = 1.0;  // so that the auto range is [1, 3] plus padding
  const chart c{.title = "gap", .lines = {s}};
  grpo::plot::write_png((dir.path / "c.png").string(), std::span(&c, 1), 1, 800, 600);
  const image img = read_png(dir.path / "c.png");
  EXPECT_TRUE(img.rows_of(img.width / 2, palette[0]).empty());       // x = 5 lies in the gap
  EXPECT_FALSE(img.rows_of(img.width * 7 / 8, palette[0]).empty());  // x ~ 9 does not
}

TEST(Plot, LaysOutSeveralChartsInAGrid) {
  const temp_dir dir;
  std::vector<chart> charts;
  for (int i = 0; i < 3; ++i) charts.push_back({.title = "c" + std::to_string(i), .lines = {constant("s", i)}});
  grpo::plot::write_png((dir.path / "d.png").string(), charts, 2, 900, 600);
  const image img = read_png(dir.path / "d.png");
  const auto left = img.rows_of(img.width / 4 + 30, palette[0]);
  const auto right = img.rows_of(img.width * 3 / 4 + 30, palette[0]);
  const auto in_top = [&](int row) { return row < img.height / 2; };
  EXPECT_TRUE(std::any_of(left.begin(), left.end(), in_top));                                // chart 0: top left
  EXPECT_FALSE(std::all_of(left.begin(), left.end(), in_top));                               // chart 2: bottom left
  EXPECT_FALSE(right.empty());                                                               // chart 1: top right
  EXPECT_TRUE(std::all_of(right.begin(), right.end(), in_top));                              // no fourth chart
}

TEST(Plot, RejectsBadInputNamingTheArgument) {
  const chart ok{.title = "t", .lines = {constant("s", 1)}};
  const std::string path = (fs::temp_directory_path() / "rhythm_test_plot_never.png").string();
  const auto write = [&](std::span<const chart> charts, int columns = 2, int width = 100, int height = 100) {
    return message_of([&] { grpo::plot::write_png(path, charts, columns, width, height); });
  };
  EXPECT_NE(write({}).find("charts"), std::string::npos);
  EXPECT_NE(write(std::span(&ok, 1), 0).find("columns"), std::string::npos);
  EXPECT_NE(write(std::span(&ok, 1), 1, 0).find("width"), std::string::npos);
  EXPECT_NE(write(std::span(&ok, 1), 1, 10, -1).find("height"), std::string::npos);
  chart ragged = ok;
  ragged.lines[0].y.pop_back();
  const std::string ragged_message = write(std::span(&ragged, 1));
  EXPECT_NE(ragged_message.find("'s'"), std::string::npos) << ragged_message;
  EXPECT_NE(ragged_message.find("x.size() (11) != y.size() (10)"), std::string::npos) << ragged_message;
  chart inverted = ok;
  inverted.y_min = 2.0, inverted.y_max = 1.0;
  EXPECT_NE(write(std::span(&inverted, 1)).find("y_min"), std::string::npos);
  EXPECT_THROW(grpo::plot::write_png(path, {}), std::invalid_argument);
  EXPECT_FALSE(fs::exists(path));
}

TEST(Plot, FailsToWriteIntoAMissingDirectoryNamingThePath) {
  const temp_dir dir;
  const chart c{.title = "t", .lines = {constant("s", 1)}};
  const std::string path = (dir.path / "missing" / "e.png").string();
  EXPECT_THROW(grpo::plot::write_png(path, std::span(&c, 1)), std::runtime_error);
  EXPECT_NE(message_of([&] { grpo::plot::write_png(path, std::span(&c, 1)); }).find(path), std::string::npos);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(Plot, SurvivesTinyImagesEmptyChartsAndWildValues) {
  const temp_dir dir;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<chart> charts{{.title = "a title much too long for the panel", .lines = {constant("s", 1e300)}},
                            {},
                            {.lines = {{"wild", {0, 1, 2, 3}, {-inf, 1e-12, inf, 2e-12}}}, .y_min = -1e-12},
                            {.lines = {{"lone", {5}, {7}}, {"empty", {}, {}}}, .y_max = -1e9}};
  for (const auto& [w, h] : {std::pair{1, 1}, std::pair{37, 23}, std::pair{1200, 800}}) {
    const auto path = dir.path / ("f" + std::to_string(w) + ".png");
    grpo::plot::write_png(path.string(), charts, 3, w, h);
    const image img = read_png(path);
    EXPECT_EQ(img.width, w);
    EXPECT_EQ(img.height, h);
  }
}

}  // namespace
