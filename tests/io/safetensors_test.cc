// SafetensorsFile / WriteSafetensors: every malformed-input error, round trips, a real HF file.
#include "fedlora/io/safetensors.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fedlora/common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// [u64 LE header length][header][data], no padding unless the caller includes it.
std::string RawFile(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return out + header + data;
}

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("fedlora_io_test_" + std::to_string(::getpid()));
    ASSERT_TRUE(MakeDirs(dir_.string()).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) { return (dir_ / name).string(); }

  // Writes `bytes` to a fresh file and returns Open's status (which must be an error).
  absl::Status OpenBytes(const std::string& bytes, std::string* path) {
    *path = Path(testing::UnitTest::GetInstance()->current_test_info()->name() +
                 std::string(".safetensors"));
    EXPECT_TRUE(WriteFileAtomic(*path, bytes).ok());
    auto file = SafetensorsFile::Open(*path);
    return file.status();
  }

  // Expects INVALID_ARGUMENT whose message names the file and contains every `parts`.
  template <typename... M>
  void ExpectRejected(const std::string& bytes, M... parts) {
    std::string path;
    absl::Status s = OpenBytes(bytes, &path);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr(path), HasSubstr(parts)...));
  }

  std::filesystem::path dir_;
};

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  std::string path = Path("nope.safetensors");
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
}

TEST_F(SafetensorsTest, FileShorterThanEightBytes) {
  ExpectRejected(std::string("\x10\0\0\0\0", 5), "5 bytes", "8-byte header length");
}

TEST_F(SafetensorsTest, HeaderLengthPastEndOfFile) {
  std::string bytes = RawFile("{}      ", "");
  bytes[0] = static_cast<char>(200);  // claims 200 header bytes, file has 16
  ExpectRejected(bytes, "header length 200", "past the end of the 16-byte file");
}

TEST_F(SafetensorsTest, HugeHeaderLengthIsRefusedBeforeReading) {
  std::string bytes = RawFile("{}      ", "");
  bytes[5] = 1;  // 2^40 bytes
  ExpectRejected(bytes, "header length 1099511627784", "limit");
}

TEST_F(SafetensorsTest, InvalidJsonIncludesParserMessage) {
  ExpectRejected(RawFile("{\"a\": [1,}", ""), "not valid JSON", "parse error");
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  ExpectRejected(RawFile("[1, 2]  ", ""), "header is a JSON array", "expected an object");
}

TEST_F(SafetensorsTest, TensorEntryNotAnObject) {
  ExpectRejected(RawFile(R"({"w": 3})", ""), "tensor 'w'", "expected an object");
}

TEST_F(SafetensorsTest, UnknownDTypeListsValidOnes) {
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
      "tensor 'w'", "unknown dtype 'F33'", "BF16");
}

TEST_F(SafetensorsTest, MissingDType) {
  ExpectRejected(RawFile(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
                 "tensor 'w'", "\"dtype\"");
}

TEST_F(SafetensorsTest, ShapeNotAList) {
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", std::string(16, '\0')),
      "tensor 'w'", "has shape 4", "list of non-negative integers");
}

TEST_F(SafetensorsTest, ShapeWithNegativeDimension) {
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", std::string(8, '\0')),
      "tensor 'w'", "dimension -1 is not a non-negative integer");
}

TEST_F(SafetensorsTest, ShapeWithNonIntegerDimension) {
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", std::string(8, '\0')),
      "tensor 'w'", "dimension 2.5");
}

TEST_F(SafetensorsTest, ShapeProductOverflow) {
  ExpectRejected(RawFile(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
                         R"("data_offsets":[0,8]}})",
                         std::string(8, '\0')),
                 "tensor 'w'", "overflows");
}

TEST_F(SafetensorsTest, DataOffsetsNotTwoIntegers) {
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0]}})", std::string(4, '\0')),
      "tensor 'w'", "data_offsets [0]", "[begin, end]");
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,"4"]}})", std::string(4, '\0')),
      "tensor 'w'", "[begin, end]");
}

TEST_F(SafetensorsTest, DataOffsetsBeginAfterEnd) {
  ExpectRejected(
      RawFile(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", std::string(4, '\0')),
      "tensor 'w'", "[4, 0]", "begin > end");
}

TEST_F(SafetensorsTest, ShapeTimesDTypeSizeDiffersFromByteRange) {
  ExpectRejected(RawFile(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                         std::string(20, '\0')),
                 "tensor 'x' has shape [2,3] F32 = 24 bytes but data_offsets span 20 bytes",
                 "hint:");
}

TEST_F(SafetensorsTest, OverlappingOffsetsNameBothTensors) {
  ExpectRejected(RawFile(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                         std::string(6, '\0')),
                 "'a'", "'b'", "overlap");
}

TEST_F(SafetensorsTest, GapBetweenOffsetsNamesBothTensors) {
  ExpectRejected(RawFile(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})",
                         std::string(8, '\0')),
                 "gap of 2 bytes", "tensor 'a'", "tensor 'b'", "contiguous from 0");
}

TEST_F(SafetensorsTest, OffsetsNotStartingAtZero) {
  ExpectRejected(
      RawFile(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", std::string(4, '\0')),
      "gap of 2 bytes", "start of the data section", "tensor 'b'");
}

TEST_F(SafetensorsTest, DataSectionLongerThanOffsets) {
  ExpectRejected(
      RawFile(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", std::string(7, '\0')),
      "data section is 7 bytes but data_offsets end at 4", "3 trailing bytes");
}

TEST_F(SafetensorsTest, DataSectionShorterThanOffsets) {
  ExpectRejected(
      RawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(10, '\0')),
      "data section is 10 bytes but data_offsets need 16", "tensor 'a'", "truncated");
}

TEST_F(SafetensorsTest, DuplicateTensorName) {
  ExpectRejected(RawFile(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                         R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                         std::string(2, '\0')),
                 "tensor 'a'", "more than once");
}

TEST_F(SafetensorsTest, MetadataMustMapStringsToStrings) {
  ExpectRejected(RawFile(R"({"__metadata__":{"format":1}})", ""), "__metadata__", "'format'",
                 "expected a string");
  ExpectRejected(RawFile(R"({"__metadata__":"pt"})", ""), "__metadata__", "expected an object");
}

TEST_F(SafetensorsTest, RoundTripIsBitExact) {
  std::vector<float> f32 = {1.5f, -0.0f, 3e38f, std::ldexp(1.0f, -149)};
  std::vector<uint16_t> f16 = {
      FloatToHalf(1.0f), FloatToHalf(-2.0f), 0x7C00, 0x0001, 0x7E00, 0x3555};
  std::vector<uint16_t> bf16 = {FloatToBFloat16(0.1f), 0xFF80};
  std::vector<int64_t> i64 = {-1, INT64_MAX};
  std::vector<uint8_t> u8 = {7};  // 1 byte: makes later tensors unaligned in the file
  std::vector<uint8_t> flags = {1, 0, 1};
  auto view = [](std::string name, DType d, std::vector<int64_t> shape, const void* p, size_t n) {
    TensorView v;
    v.name = std::move(name);
    v.dtype = d;
    v.shape = std::move(shape);
    v.data = static_cast<const uint8_t*>(p);
    v.nbytes = n;
    return v;
  };
  std::vector<TensorView> in = {
      view("z.f32", DType::kF32, {2, 2}, f32.data(), 16),
      view("b.f16", DType::kF16, {3, 2}, f16.data(), 12),
      view("c.bf16", DType::kBF16, {2}, bf16.data(), 4),
      view("d.i64", DType::kI64, {2}, i64.data(), 16),
      view("a.u8", DType::kU8, {}, u8.data(), 1),  // scalar
      view("e.empty", DType::kF32, {0, 4}, nullptr, 0),
      view("f.bool", DType::kBool, {3}, flags.data(), 3),
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"rank", "8"}};
  std::string path = Path("rt.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, in, meta).ok());

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), meta);
  ASSERT_EQ((*file)->tensors().size(), in.size());
  for (size_t i = 1; i < (*file)->tensors().size(); ++i) {
    EXPECT_LT((*file)->tensors()[i - 1].name, (*file)->tensors()[i].name);
  }
  for (const TensorView& want : in) {
    const TensorView* got = (*file)->Find(want.name);
    ASSERT_NE(got, nullptr) << want.name;
    EXPECT_EQ(got->dtype, want.dtype) << want.name;
    EXPECT_EQ(got->shape, want.shape) << want.name;
    ASSERT_EQ(got->nbytes, want.nbytes) << want.name;
    if (want.nbytes > 0) {
      EXPECT_EQ(std::memcmp(got->data, want.data, want.nbytes), 0) << want.name;
    }
  }
  EXPECT_EQ((*file)->Find("missing"), nullptr);
  // The F32 tensor sits after 1 + 12 + 4 + 16 + 3 bytes: unaligned, still readable via memcpy.
  float back[4];
  const TensorView* z = (*file)->Find("z.f32");
  ASSERT_TRUE(ConvertToF32(z->dtype, z->data, 4, back).ok());
  EXPECT_EQ(std::memcmp(back, f32.data(), 16), 0);
}

TEST_F(SafetensorsTest, WriterLayoutPutsMetadataFirstAndPadsWithSpaces) {
  uint8_t byte = 9;
  TensorView v;
  v.name = "a";
  v.dtype = DType::kU8;
  v.shape = {1};
  v.data = &byte;
  v.nbytes = 1;
  std::string path = Path("layout.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {v}, {{"zz", "1"}}).ok());
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>((*bytes)[i]);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(8 + n + 1, bytes->size());
  std::string header = bytes->substr(8, n);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"zz\":\"1\"},\"a\":", 0), 0u) << header;
  size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << header;
  EXPECT_EQ(nlohmann::json::parse(header)["a"]["data_offsets"], nlohmann::json({0, 1}));
}

TEST_F(SafetensorsTest, WriterWithoutTensorsOrMetadataWritesEmptyHeader) {
  std::string path = Path("empty.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_TRUE((*file)->metadata().empty());
}

TEST_F(SafetensorsTest, WriterRejectsBadViews) {
  float data[6] = {};
  TensorView v;
  v.name = "w";
  v.dtype = DType::kF32;
  v.shape = {2, 3};
  v.data = reinterpret_cast<const uint8_t*>(data);
  v.nbytes = 20;
  std::string path = Path("bad.safetensors");
  absl::Status s = WriteSafetensors(path, {v});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr(path), HasSubstr("'w'"), HasSubstr("24 bytes"), HasSubstr("20")));
  v.nbytes = 24;
  s = WriteSafetensors(path, {v, v});
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("'w'"), HasSubstr("unique")));
  TensorView neg = v;
  neg.shape = {-2, -3};
  s = WriteSafetensors(path, {neg});
  EXPECT_THAT(std::string(s.message()), HasSubstr("negative dimension -2"));
  TensorView reserved = v;
  reserved.name = "__metadata__";
  EXPECT_EQ(WriteSafetensors(path, {reserved}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));  // nothing written on validation errors
}

TEST_F(SafetensorsTest, ReadsRealHuggingFaceFile) {
  std::filesystem::path base =
      std::filesystem::path(FEDLORA_SHARED_DIR) / "fixtures/hf-tiny-llama/base";
  if (!std::filesystem::exists(base / "model.safetensors")) {
    GTEST_SKIP() << "fixture absent: " << base;
  }
  std::ifstream config_in(base / "config.json");
  nlohmann::json config = nlohmann::json::parse(config_in);
  const int64_t vocab = config["vocab_size"], hidden = config["hidden_size"];

  auto file = SafetensorsFile::Open((base / "model.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorView* emb = (*file)->Find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kF32);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{vocab, hidden}));
  EXPECT_EQ(emb->nbytes, static_cast<size_t>(vocab * hidden * 4));
  std::vector<float> values(emb->numel());
  ASSERT_TRUE(ConvertToF32(emb->dtype, emb->data, values.size(), values.data()).ok());
  bool any_nonzero = false;
  for (float x : values) {
    ASSERT_TRUE(std::isfinite(x));
    any_nonzero |= x != 0.0f;
  }
  EXPECT_TRUE(any_nonzero);

  // Re-writing it with our writer and reading back must reproduce every tensor bit-exactly.
  std::string copy = Path("copy.safetensors");
  ASSERT_TRUE(WriteSafetensors(copy, (*file)->tensors(), (*file)->metadata()).ok());
  auto again = SafetensorsFile::Open(copy);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->metadata(), (*file)->metadata());
  ASSERT_EQ((*again)->tensors().size(), (*file)->tensors().size());
  for (const TensorView& t : (*file)->tensors()) {
    const TensorView* u = (*again)->Find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->shape, t.shape);
    ASSERT_EQ(u->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(u->data, t.data, t.nbytes), 0) << t.name;
  }
}

}  // namespace
}  // namespace fedlora::io
