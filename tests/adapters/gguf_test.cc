// The GGUF container on its own (no torch): every value type round-trips, the writer refuses
// what ggml would refuse, and the reader refuses damaged files with a clear message.
#include "fedlora/adapters/gguf.h"

#include <cstring>

#include "gtest/gtest.h"

namespace fedlora::adapters {
namespace {

GgufValue Scalar(GgufType t, uint64_t u, int64_t i, double f) {
  GgufValue v;
  v.type = t;
  v.u = u;
  v.i = i;
  v.f = f;
  return v;
}

GgufTensor F32Tensor(const std::string& name, std::vector<int64_t> ne, float start) {
  GgufTensor t;
  t.name = name;
  t.ne = std::move(ne);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + 0.5f * static_cast<float>(i);
  t.data.resize(v.size() * 4);
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

GgufFile Sample() {
  GgufFile f;
  f.metadata.emplace_back("general.architecture", GgufValue::String("llama"));
  f.metadata.emplace_back("u8", Scalar(GgufType::kUint8, 200, 0, 0));
  f.metadata.emplace_back("i8", Scalar(GgufType::kInt8, 0, -100, 0));
  f.metadata.emplace_back("u16", Scalar(GgufType::kUint16, 65000, 0, 0));
  f.metadata.emplace_back("i16", Scalar(GgufType::kInt16, 0, -32000, 0));
  f.metadata.emplace_back("u32", GgufValue::Uint32(4000000000u));
  f.metadata.emplace_back("i32", Scalar(GgufType::kInt32, 0, -2000000000, 0));
  f.metadata.emplace_back("f32", GgufValue::Float32(0.375f));
  f.metadata.emplace_back("bool", Scalar(GgufType::kBool, 1, 0, 0));
  f.metadata.emplace_back("u64", Scalar(GgufType::kUint64, uint64_t{1} << 60, 0, 0));
  f.metadata.emplace_back("i64", Scalar(GgufType::kInt64, 0, -(int64_t{1} << 60), 0));
  f.metadata.emplace_back("f64", Scalar(GgufType::kFloat64, 0, 0, 1.0 / 3.0));
  GgufValue arr;
  arr.type = GgufType::kArray;
  arr.array_type = GgufType::kString;
  arr.array = {GgufValue::String("a"), GgufValue::String(""), GgufValue::String("ccc")};
  f.metadata.emplace_back("strings", arr);
  f.tensors.push_back(F32Tensor("t.first", {3, 2}, 1.0f));  // 24 bytes: padded to 32
  f.tensors.push_back(F32Tensor("t.second", {5}, -2.0f));   // 20 bytes
  return f;
}

TEST(GgufTest, EveryValueTypeAndTensorRoundTrips) {
  GgufFile f = Sample();
  auto bytes = SerializeGguf(f);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto g = ParseGguf(*bytes, "sample");
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->metadata.size(), f.metadata.size());
  for (size_t i = 0; i < f.metadata.size(); ++i) {
    const auto& [k, v] = f.metadata[i];
    const auto& [k2, v2] = g->metadata[i];
    EXPECT_EQ(k, k2);
    EXPECT_EQ(v.type, v2.type) << k;
    EXPECT_EQ(v.DebugString(), v2.DebugString()) << k;
  }
  EXPECT_EQ(g->Find("u32")->u, 4000000000u);
  EXPECT_EQ(g->Find("i64")->i, -(int64_t{1} << 60));
  EXPECT_EQ(g->Find("f64")->f, 1.0 / 3.0);
  ASSERT_EQ(g->Find("strings")->array.size(), 3u);
  EXPECT_EQ(g->Find("strings")->array[2].s, "ccc");
  ASSERT_EQ(g->tensors.size(), 2u);
  EXPECT_EQ(g->tensors[0].offset, 0u);
  EXPECT_EQ(g->tensors[1].offset, 32u);
  EXPECT_EQ(g->tensors[0].TorchShape(), (std::vector<int64_t>{2, 3}));
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(g->tensors[i].data, f.tensors[i].data);
  auto floats = g->tensors[1].ToFloat();
  ASSERT_TRUE(floats.ok());
  EXPECT_EQ(*floats, (std::vector<float>{-2.0f, -1.5f, -1.0f, -0.5f, 0.0f}));
  EXPECT_EQ(bytes->size(), g->data_offset + 64);
  // Re-serialising what was read gives the same bytes.
  EXPECT_EQ(*SerializeGguf(*g), *bytes);
}

TEST(GgufTest, WriterRefusesWhatGgmlRefuses) {
  GgufFile f = Sample();
  f.tensors[0].name = std::string(64, 'x');
  EXPECT_NE(SerializeGguf(f).status().message().find("63"), std::string::npos);
  f = Sample();
  f.tensors[1].name = f.tensors[0].name;
  EXPECT_EQ(SerializeGguf(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = Sample();
  f.metadata.push_back(f.metadata[0]);
  EXPECT_NE(SerializeGguf(f).status().message().find("duplicate key"), std::string::npos);
  f = Sample();
  f.tensors[0].data.pop_back();
  EXPECT_EQ(SerializeGguf(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = Sample();
  f.alignment = 64;  // without general.alignment a reader would assume 32
  EXPECT_NE(SerializeGguf(f).status().message().find("general.alignment"), std::string::npos);
  f.metadata.emplace_back("general.alignment", GgufValue::Uint32(64));
  auto bytes = SerializeGguf(f);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto g = ParseGguf(*bytes, "a64");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->tensors[1].offset, 64u);
  EXPECT_EQ(g->data_offset % 64, 0u);
  f.alignment = 48;
  EXPECT_EQ(SerializeGguf(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GgufTest, ReaderRefusesDamagedFiles) {
  const std::string good = *SerializeGguf(Sample());
  auto g = ParseGguf(good, "good");
  ASSERT_TRUE(g.ok());
  const uint64_t needed =
      g->data_offset + g->tensors[1].offset + g->tensors[1].data.size();  // last byte of data
  // Any truncation before the end of the last tensor's data is refused, never a crash.
  for (uint64_t n = 0; n < needed; ++n) {
    auto r = ParseGguf(good.substr(0, n), "cut");
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_NE(ParseGguf(bad, "f").status().message().find("not a GGUF file"), std::string::npos);
  bad = good;
  bad[4] = 1;  // version 1 (u32 counts) is not supported
  EXPECT_NE(ParseGguf(bad, "f").status().message().find("version 1"), std::string::npos);
  // A tensor offset that is not the running padded size (ggml: "has offset X, expected Y").
  GgufFile f = Sample();
  std::string second = *SerializeGguf(f);
  const size_t at = second.find("t.second") + 8 + 4 + 8 + 4;  // name, n_dims, ne[0], type
  ASSERT_EQ(second[at], 32);
  second[at] = 64;
  EXPECT_NE(ParseGguf(second, "f").status().message().find("expected 32"), std::string::npos);
  // general.alignment that is not a power of two, or not UINT32.
  f.metadata.emplace_back("general.alignment", GgufValue::Uint32(32));
  std::string al = *SerializeGguf(f);
  const size_t key = al.find("general.alignment") + 17 + 4;  // key, type
  ASSERT_EQ(al[key], 32);
  al[key] = 24;
  EXPECT_NE(ParseGguf(al, "f").status().message().find("power of two"), std::string::npos);
  // A quantized tensor type is named in the error.
  f = Sample();
  std::string q = *SerializeGguf(f);
  const size_t type_at = q.find("t.first") + 7 + 4 + 16;
  ASSERT_EQ(q[type_at], 0);
  q[type_at] = 2;  // Q4_0
  EXPECT_NE(ParseGguf(q, "f").status().message().find("ggml type 2"), std::string::npos);
}

}  // namespace
}  // namespace fedlora::adapters
