#include "stpain/io/safetensors.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "stpain/io/state_dict.hpp"
#include "stpain/layers/linear.hpp"

using namespace stpain;
namespace fs = std::filesystem;
using safetensors::DType;

namespace {

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("stpain_st_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

// Writes a file with the given header text (length prefix computed unless given) and data bytes.
std::string raw_file(const std::string& name, const std::string& header, const std::string& data,
                     int64_t header_len = -1) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header_len >= 0 ? static_cast<uint64_t>(header_len) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
  return path;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void expect_format_error(const std::string& path, const std::string& message) {
  INFO("file " << path);
  CHECK_THROWS_AS(safetensors::File(path), FormatError);
  CHECK_THROWS_WITH(safetensors::File(path), Catch::StartsWith(path) && Catch::Contains(message));
}

}  // namespace

TEST_CASE("safetensors round trip in F32, F16 and BF16 with metadata") {
  auto a = Tensor<float>::from({2, 3}, {1.f, -2.f, 0.5f, 3.25f, -0.125f, 1024.f});
  auto b = Tensor<float>::from({4}, {0.1f, 0.2f, 0.3f, 0.4f});
  const std::string path = temp_path("roundtrip.safetensors");
  safetensors::save(path,
                    {safetensors::entry("b.f16", b, DType::F16), safetensors::entry("a", a),
                     safetensors::entry("a.bf16", a, DType::BF16), safetensors::integer_entry("labels", {0, 1, 1})},
                    {{"format", "pt"}});
  const safetensors::File f(path);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.tensors().size() == 4);
  CHECK(f.info("a").shape == Shape{2, 3});
  CHECK(f.info("b.f16").dtype == DType::F16);
  CHECK(f.load("a").to_vector() == a.to_vector());
  CHECK(f.load("a.bf16").to_vector() == a.to_vector());  // all exactly representable
  const auto h = f.load("b.f16");
  for (int i = 0; i < 4; ++i) CHECK(h[i] == Approx(b[i]).epsilon(1e-3));
  CHECK(f.load<double>("a")(1, 2) == 1024.0);
  CHECK(f.load_integers("labels") == std::vector<int64_t>{0, 1, 1});
  CHECK_THROWS_WITH(f.load("missing"), Catch::Contains("no tensor named \"missing\""));
  CHECK_THROWS_WITH(f.load("labels"), Catch::Contains("I64"));
  // 8-byte aligned data section, as the reference writer does.
  uint64_t n = 0;
  std::memcpy(&n, slurp(path).data(), 8);
  CHECK(n % 8 == 0);
}

TEST_CASE("safetensors rejects malformed and malicious files with the path and the reason") {
  const std::string ok_header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\0');
  {
    const std::string p = temp_path("tiny.st");
    std::ofstream(p, std::ios::binary) << "abc";
    expect_format_error(p, "too short");
  }
  expect_format_error(raw_file("hugelen.st", ok_header, eight, int64_t{1} << 40), "exceeds");
  expect_format_error(raw_file("pastend.st", ok_header, eight, 4096), "past the end");
  expect_format_error(raw_file("badjson.st", R"({"w":{"dtype":"F32",)", ""), "malformed header");
  expect_format_error(raw_file("notobj.st", "[1,2]", ""), "not a JSON object");
  expect_format_error(raw_file("dtype.st", R"({"w":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", eight),
                      "unsupported dtype");
  expect_format_error(raw_file("negshape.st", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
                      "negative extent");
  expect_format_error(
      raw_file("overflow.st",
               R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", eight),
      "overflows");
  expect_format_error(raw_file("bytes.st", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
                      "needs 12");
  expect_format_error(raw_file("range.st", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
                      "truncated");
  expect_format_error(raw_file("reversed.st", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
                      "begin <= end");
  expect_format_error(
      raw_file("overlap.st",
               R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               eight),
      "overlaps");
  expect_format_error(raw_file("hole.st", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
                      "hole");
  expect_format_error(raw_file("tail.st", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
                      "after the last tensor");
  expect_format_error(raw_file("meta.st", R"({"__metadata__":{"k":1}})", ""), "not a string");
  expect_format_error(raw_file("dupe.st", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{}})", eight),
                      "duplicate key");
  expect_format_error(temp_path("does_not_exist.st"), "cannot open");
  // A valid file for contrast.
  CHECK(safetensors::File(raw_file("valid.st", ok_header, eight)).tensors().size() == 1);
}

TEST_CASE("a failed save leaves the existing file intact and no temporary files behind") {
  const std::string path = temp_path("keep.safetensors");
  auto t = Tensor<float>::full({3}, 2.f);
  safetensors::save(path, {safetensors::entry("x", t)});
  const std::string before = slurp(path);
  CHECK_THROWS_AS(safetensors::save(path, {safetensors::entry("x", t), safetensors::entry("x", t)}), FormatError);
  CHECK_THROWS_AS(safetensors::save(path, {safetensors::entry("x", t, DType::I8)}), FormatError);
  CHECK(slurp(path) == before);
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  CHECK_THROWS_AS(safetensors::save("/nonexistent_dir/x.safetensors", {safetensors::entry("x", t)}), Error);
}

TEST_CASE("state dicts load by name and strict mode lists every problem") {
  const std::string path = temp_path("linear.safetensors");
  Linear<cpu> a(4, 3);
  save_state_dict(a, path);
  Linear<cpu> b(4, 3);
  const auto report = load_state_dict(b, path);
  CHECK(report.ok());
  CHECK(report.loaded.size() == 2);
  CHECK(b.weight.value.to_vector() == a.weight.value.to_vector());

  Linear<cpu, double> c(5, 3);  // weight shape differs; bias matches
  CHECK_THROWS_WITH(load_state_dict(c, path),
                    Catch::Contains("weight: model [3, 5] vs file [3, 4]") && Catch::Contains(path));
  const auto loose = load_state_dict(c, path, {.strict = false});
  CHECK(loose.mismatched.size() == 1);
  CHECK(loose.loaded == std::vector<std::string>{"bias"});
  CHECK(c.bias.value[1] == Approx(a.bias.value[1]));

  Linear<cpu> d(4, 3, false);
  const auto extra = load_state_dict(d, path, {.strict = false});
  CHECK(extra.unexpected == std::vector<std::string>{"bias"});
  Linear<cpu> e(4, 3);
  const auto renamed = load_state_dict(e, path, {.strict = false, .rename = [](const std::string& n) { return "fc." + n; }});
  CHECK(renamed.missing.size() == 2);
  CHECK(renamed.unexpected.size() == 2);
  const auto skipped = load_state_dict(e, path, {.strict = true, .rename = {}, .skip_prefixes = {"bias"}});
  CHECK(skipped.loaded == std::vector<std::string>{"weight"});
}

TEST_CASE("state dicts accept shapes that differ only by extents of 1") {
  CHECK(same_up_to_unit_dims(Shape{8, 1, 1}, Shape{8}));
  CHECK(same_up_to_unit_dims(Shape{4, 3, 1, 1}, Shape{4, 3}));
  CHECK(same_up_to_unit_dims(Shape{}, Shape{1}));
  CHECK_FALSE(same_up_to_unit_dims(Shape{3, 4}, Shape{4, 3}));
  CHECK_FALSE(same_up_to_unit_dims(Shape{12}, Shape{3, 4}));
  const std::string path = temp_path("conv1x1.safetensors");
  auto w = Tensor<float>::from({2, 3, 1, 1}, {1, 2, 3, 4, 5, 6});
  safetensors::save(path, {safetensors::entry("weight", w), safetensors::entry("bias", Tensor<float>({2}))});
  Linear<cpu> fc(3, 2);
  load_state_dict(fc, path);
  CHECK(fc.weight.value(1, 0) == 4.f);
}
