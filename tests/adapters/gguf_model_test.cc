// The whole-model GGUF export (export_gguf_model.h), the Q8_0 blocks and the sentencepiece
// vocabulary reader. llama.cpp itself checks the result end to end in tests/gguf.
#include "fedlora/adapters/export_gguf_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "adapters/lora_testutil.h"
#include "fedlora/adapters/export_gguf.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/checkpoint.h"
#include "fedlora/model/tokenizer.h"
#include "gtest/gtest.h"

namespace fedlora::adapters {
namespace {

const std::string kBase = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
const std::string kTokenizer = kBase + "/tokenizer.model";

// hidden 64 (Q8_0 rows), MLP 40 (ffn_down rows of 40: not whole blocks), 4 heads of 16, 2 KV.
model::LlamaConfig Config() {
  model::LlamaConfig c = testing::TinyConfig();
  c.hidden_size = 64;
  c.head_dim = 16;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.intermediate_size = 40;
  c.vocab_size = 520;  // more than the fixture tokenizer's 512 pieces: padded
  return c;
}

const GgufValue& Get(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.Find(key);
  EXPECT_NE(v, nullptr) << key;
  static const GgufValue kNone;
  return v ? *v : kNone;
}

std::vector<float> Floats(const GgufFile& f, const std::string& name) {
  const GgufTensor* t = f.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  auto v = t->ToFloat();
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : std::vector<float>{};
}

TEST(Q8_0Test, MatchesGgmlReferenceAndBoundsTheError) {
  std::vector<float> x = testing::RandomFloats(96, 0.5, 3);
  x[40] = -2.54f;  // the second block's max |x|: d = 0.02, q = -127
  for (int j = 64; j < 96; ++j) x[static_cast<size_t>(j)] = 0;  // an all-zero block
  const std::vector<uint8_t> q = QuantizeQ8_0(x.data(), x.size());
  ASSERT_EQ(q.size(), 3u * 34u);
  uint16_t h = 0;
  std::memcpy(&h, q.data() + 34, 2);
  EXPECT_NEAR(io::HalfToFloat(h), 0.02f, 1e-5);
  EXPECT_EQ(static_cast<int8_t>(q[34 + 2 + 8]), -127);
  GgufTensor t;
  t.name = "t";
  t.type = static_cast<uint32_t>(GgmlType::kQ8_0);
  t.ne = {96};
  t.data = q;
  auto back = t.ToFloat();
  ASSERT_TRUE(back.ok()) << back.status();
  for (size_t b = 0; b < 3; ++b) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (size_t j = 0; j < 32; ++j) {
      // Half a step of amax / 127, plus the F16 rounding of the scale.
      EXPECT_LE(std::fabs((*back)[b * 32 + j] - x[b * 32 + j]), amax / 127 * 0.5 + amax * 1e-3)
          << b << " " << j;
    }
  }
  for (size_t j = 64; j < 96; ++j) EXPECT_EQ((*back)[j], 0.0f);
}

TEST(Q8_0Test, ContainerRoundTripsAndRefusesPartialBlocks) {
  std::vector<float> x = testing::RandomFloats(64, 1.0, 5);
  GgufFile f;
  f.metadata.emplace_back("general.architecture", GgufValue::String("llama"));
  GgufTensor t;
  t.name = "w";
  t.type = static_cast<uint32_t>(GgmlType::kQ8_0);
  t.ne = {32, 2};
  t.data = QuantizeQ8_0(x.data(), x.size());
  f.tensors.push_back(t);
  auto bytes = SerializeGguf(f);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto back = ParseGguf(*bytes, "mem");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->tensors[0].data, t.data);
  EXPECT_EQ(back->tensors[0].type, 8u);
  f.tensors[0].ne = {16, 4};  // same element count, but rows of half a block
  auto bad = SerializeGguf(f);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a multiple of 32"), std::string::npos)
      << bad.status();
}

TEST(SentencePieceVocabTest, ReadsWhatTheTokenizerUses) {
  auto v = ReadSentencePieceVocab(kTokenizer);
  ASSERT_TRUE(v.ok()) << v.status();
  auto tok = model::Tokenizer::Load(kTokenizer, 1, 2);
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_EQ(static_cast<int64_t>(v->pieces.size()), (*tok)->vocab_size());
  for (size_t id = 0; id < v->pieces.size(); ++id) {
    EXPECT_EQ(v->pieces[id], (*tok)->IdToPiece(static_cast<int64_t>(id))) << id;
  }
  EXPECT_EQ(v->pieces[1], "<s>");
  EXPECT_EQ(v->types[0], SpPieceType::kUnknown);
  EXPECT_EQ(v->types[1], SpPieceType::kControl);
  EXPECT_EQ(v->types[2], SpPieceType::kControl);
  EXPECT_EQ(v->unk_id, 0);
  EXPECT_EQ(v->bos_id, 1);
  EXPECT_EQ(v->eos_id, 2);
  int bytes = 0;
  for (auto t : v->types) bytes += t == SpPieceType::kByte;
  EXPECT_EQ(bytes, 256);  // byte fallback pieces <0x00> .. <0xFF>
  // Scores of normal pieces are not all equal (BPE merge order).
  EXPECT_NE(v->scores[300], v->scores[400]);
}

TEST(SentencePieceVocabTest, RefusesWhatIsNotAModel) {
  auto v = ParseSentencePieceVocab(std::string("\x0a\x05\x0a\x01", 4), "x.model");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("x.model: not a sentencepiece model"), std::string::npos)
      << v.status();
  EXPECT_EQ(ReadSentencePieceVocab("/nonexistent/tokenizer.model").status().code(),
            absl::StatusCode::kNotFound);
}

class GgufModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto v = ReadSentencePieceVocab(kTokenizer);
    ASSERT_TRUE(v.ok()) << v.status();
    vocab_ = *v;
  }
  model::LlamaModel model_ = testing::TinyModel(Config(), 11);
  SentencePieceVocab vocab_;
};

TEST_F(GgufModelTest, HyperparametersAndTokenizerAsLlamaCppReadsThem) {
  auto f = ModelToGguf(model_, vocab_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(Get(*f, "general.architecture").s, "llama");
  EXPECT_EQ(Get(*f, "llama.embedding_length").u, 64u);
  EXPECT_EQ(Get(*f, "llama.block_count").u, 2u);
  EXPECT_EQ(Get(*f, "llama.feed_forward_length").u, 40u);
  EXPECT_EQ(Get(*f, "llama.attention.head_count").u, 4u);
  EXPECT_EQ(Get(*f, "llama.attention.head_count_kv").u, 2u);
  EXPECT_EQ(Get(*f, "llama.rope.dimension_count").u, 16u);
  EXPECT_EQ(Get(*f, "llama.context_length").u,
            static_cast<uint64_t>(Config().max_position_embeddings));
  EXPECT_FLOAT_EQ(static_cast<float>(Get(*f, "llama.attention.layer_norm_rms_epsilon").f),
                  static_cast<float>(Config().rms_norm_eps));
  EXPECT_EQ(Get(*f, "tokenizer.ggml.model").s, "llama");
  const GgufValue& tokens = Get(*f, "tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.array.size(), 520u);
  EXPECT_EQ(tokens.array[1].s, "<s>");
  EXPECT_EQ(tokens.array[515].s, "[PAD515]");
  EXPECT_EQ(Get(*f, "tokenizer.ggml.token_type").array[515].i, 5);  // UNUSED
  EXPECT_EQ(Get(*f, "tokenizer.ggml.token_type").array[1].i, 3);    // CONTROL
  EXPECT_FLOAT_EQ(static_cast<float>(Get(*f, "tokenizer.ggml.scores").array[300].f),
                  vocab_.scores[300]);
  EXPECT_EQ(Get(*f, "tokenizer.ggml.bos_token_id").u, 1u);
  EXPECT_EQ(Get(*f, "tokenizer.ggml.eos_token_id").u, 2u);
  EXPECT_EQ(Get(*f, "tokenizer.ggml.add_bos_token").u, 1u);
  // The file survives the container round trip.
  auto bytes = SerializeGguf(*f);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(ParseGguf(*bytes, "mem").ok());
}

TEST_F(GgufModelTest, TensorsHaveLlamaCppNamesLayoutAndRotaryPermutation) {
  auto f = ModelToGguf(model_, vocab_);
  ASSERT_TRUE(f.ok()) << f.status();
  // 1 embedding + 2 x (2 norms + 7 projections) + final norm + head.
  ASSERT_EQ(f->tensors.size(), 1u + 2u * 9u + 2u);
  EXPECT_EQ(f->tensors[0].name, "token_embd.weight");
  EXPECT_EQ(f->tensors[1].name, "blk.0.attn_norm.weight");
  EXPECT_EQ(f->tensors.back().name, "output.weight");
  const GgufTensor* q = f->FindTensor("blk.1.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ne, (std::vector<int64_t>{64, 64}));  // [in, out]
  EXPECT_EQ(f->FindTensor("blk.0.attn_k.weight")->ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(f->FindTensor("blk.0.ffn_down.weight")->ne, (std::vector<int64_t>{40, 64}));
  // Row h*d + 2j + s of the GGUF q/k is row h*d + s*d/2 + j of the HF weight.
  for (auto [proj, name, heads] :
       {std::tuple{model::Proj::kQ, "blk.1.attn_q.weight", 4}, {model::Proj::kK,
                                                                 "blk.1.attn_k.weight", 2}}) {
    const std::vector<float> g = Floats(*f, name);
    torch::Tensor w = model_.layers[1].Get(proj).DenseWeight();
    const int64_t d = 16;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < d / 2; ++j) {
        for (int64_t s = 0; s < 2; ++s) {
          const int64_t row = h * d + 2 * j + s, src = h * d + s * d / 2 + j;
          for (int64_t c = 0; c < 64; c += 21) {
            EXPECT_EQ(g[static_cast<size_t>(row * 64 + c)], w[src][c].item<float>())
                << name << " row " << row;
          }
        }
      }
    }
  }
  // v is not permuted; norms are copied.
  const std::vector<float> v = Floats(*f, "blk.0.attn_v.weight");
  EXPECT_EQ(v[65], model_.layers[0].Get(model::Proj::kV).weight[1][1].item<float>());
  EXPECT_EQ(Floats(*f, "output_norm.weight")[3], model_.norm[3].item<float>());
}

TEST_F(GgufModelTest, TypesAndTheirFallbacks) {
  for (auto [type, ftype] : {std::pair{GgmlType::kF16, 1u}, {GgmlType::kQ8_0, 7u}}) {
    GgufModelOptions o;
    o.type = type;
    auto f = ModelToGguf(model_, vocab_, o);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(Get(*f, "general.file_type").u, ftype);
    EXPECT_EQ(f->FindTensor("blk.0.attn_norm.weight")->type, 0u);  // norms stay F32
    EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->type, static_cast<uint32_t>(type));
    // ffn_down rows are 40 long: not whole Q8_0 blocks, so F16 (as llama.cpp's converter).
    EXPECT_EQ(f->FindTensor("blk.0.ffn_down.weight")->type, 1u);
    const std::vector<float> got = Floats(*f, "blk.0.ffn_up.weight");
    torch::Tensor w = model_.layers[0].Get(model::Proj::kUp).weight.reshape({-1});
    double max_err = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_err = std::max(max_err, std::fabs(static_cast<double>(got[i]) -
                                            w[static_cast<int64_t>(i)].item<float>()));
    }
    EXPECT_GT(max_err, 0.0);
    EXPECT_LT(max_err, type == GgmlType::kF16 ? 2e-3 : 1.5e-2);  // std 0.3 weights
  }
}

TEST_F(GgufModelTest, RefusesAMismatchedTokenizerAndBadOptions) {
  model::LlamaConfig small = Config();
  small.vocab_size = 100;
  auto f = ModelToGguf(testing::TinyModel(small, 1), vocab_);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("512 pieces but the model's vocab_size is 100"),
            std::string::npos)
      << f.status();
  GgufModelOptions o;
  o.type = GgmlType::kBF16;
  EXPECT_FALSE(ModelToGguf(model_, vocab_, o).ok());
  o = {};
  o.extra_strings = {{"general.name", "x"}};
  EXPECT_FALSE(ModelToGguf(model_, vocab_, o).ok());
  EXPECT_FALSE(ParseGgufModelType("q4_0").ok());
  EXPECT_EQ(*ParseGgufModelType("q8_0"), GgmlType::kQ8_0);
}


// The fixture exported as Q8_0, read back, dequantized and un-permuted (by the index formula,
// independently of the exporter) into fedlora's model: every weight is within Q8_0's step of
// the original, and the next-token log-probabilities move by what rounding the weights alone
// costs. tests/gguf compares llama.cpp on the same file, which also rounds activations.
TEST(GgufModelFixtureTest, Q8_0RoundTripIntoFedloraAndWhatWeightRoundingCosts) {
  auto base = model::LoadLlamaModel(kBase);
  ASSERT_TRUE(base.ok()) << base.status();
  auto vocab = ReadSentencePieceVocab(kTokenizer);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  GgufModelOptions o;
  o.type = GgmlType::kQ8_0;
  auto f = ModelToGguf(**base, *vocab, o);
  ASSERT_TRUE(f.ok()) << f.status();
  auto bytes = SerializeGguf(*f);
  ASSERT_TRUE(bytes.ok());
  auto back = ParseGguf(*bytes, "q8_0");
  ASSERT_TRUE(back.ok()) << back.status();
  auto rounded = model::LoadLlamaModel(kBase);
  ASSERT_TRUE(rounded.ok());
  const model::LlamaConfig& c = (*base)->config();
  const int64_t d = c.head_dim;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    for (model::Proj p : {model::Proj::kQ, model::Proj::kK, model::Proj::kV, model::Proj::kO,
                          model::Proj::kGate, model::Proj::kUp, model::Proj::kDown}) {
      const GgufTensor* t = back->FindTensor(GgufBaseTensorName(l, p));
      ASSERT_NE(t, nullptr);
      auto v = t->ToFloat();
      ASSERT_TRUE(v.ok()) << v.status();
      const int64_t rows = t->ne[1], cols = t->ne[0];
      torch::Tensor g = torch::from_blob(v->data(), {rows, cols}, torch::kFloat).clone();
      torch::Tensor w = torch::empty_like(g);
      const bool permuted = p == model::Proj::kQ || p == model::Proj::kK;
      for (int64_t r = 0; r < rows; ++r) {
        // GGUF row h*d + 2j + s holds HF row h*d + s*d/2 + j.
        const int64_t h = r / d, j = (r % d) / 2, sidx = r % 2;
        w[permuted ? h * d + sidx * d / 2 + j : r] = g[r];
      }
      model::Linear& lin = (*rounded)->layers[static_cast<size_t>(l)].Get(p);
      // Half a step of max|w| / 127 (at most: a block's own max is smaller), plus the F16
      // rounding of the block scale (2^-11 relative, times up to 127 steps).
      const double amax = lin.weight.abs().max().item<double>();
      EXPECT_LE((w - lin.weight).abs().max().item<double>(), amax / 127 * 0.5 + amax / 2048)
          << GgufBaseTensorName(l, p);
      lin.weight = w;
    }
  }
  for (auto [name, dst] : {std::pair{"token_embd.weight", &(*rounded)->embed_tokens},
                           {"output.weight", &(*rounded)->lm_head}}) {
    const GgufTensor* t = back->FindTensor(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, static_cast<uint32_t>(GgmlType::kQ8_0)) << name;
    auto v = t->ToFloat();
    ASSERT_TRUE(v.ok());
    torch::Tensor g = torch::from_blob(v->data(), {t->ne[1], t->ne[0]}, torch::kFloat).clone();
    const double amax = dst->abs().max().item<double>();
    EXPECT_LE((g - *dst).abs().max().item<double>(), amax / 127 * 0.5 + amax / 2048) << name;
    *dst = g;
  }
  auto tok = model::Tokenizer::Load(kTokenizer, 1, 2);
  ASSERT_TRUE(tok.ok());
  torch::NoGradGuard no_grad;
  double sum = 0, max = 0;
  int64_t n = 0;
  for (const char* text : {"Each licensee is addressed as you.",
                           "The resulting work is called a modified version",
                           "copyright permission, other than the making of an exact copy",
                           "hello world"}) {
    std::vector<int64_t> ids = (*tok)->EncodeWithBos(text);
    torch::Tensor in = torch::tensor(ids, torch::kLong).reshape({1, -1});
    torch::Tensor a = torch::log_softmax((*base)->Forward(in)[0].to(torch::kDouble), -1);
    torch::Tensor b = torch::log_softmax((*rounded)->Forward(in)[0].to(torch::kDouble), -1);
    auto [top, idx] = a.topk(10, -1);
    torch::Tensor diff = (top - b.gather(-1, idx)).abs();
    sum += diff.sum().item<double>();
    n += diff.numel();
    max = std::max(max, diff.max().item<double>());
  }
  std::printf("Q8_0 weight rounding alone: max |dlogprob| %.3g, mean %.3g over %lld\n", max,
              sum / static_cast<double>(n), static_cast<long long>(n));
  EXPECT_GT(max, 0.0);           // the weights were rounded
  EXPECT_LT(sum / n, 0.1);       // ... by Q8_0's step, not more (fixture: about 0.03)
}

}  // namespace
}  // namespace fedlora::adapters
