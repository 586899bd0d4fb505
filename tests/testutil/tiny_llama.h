// The small random-model configs tests build models from (header-only: every test binary that
// uses it already links fedlora_model).
#ifndef FEDLORA_TESTS_TESTUTIL_TINY_LLAMA_H_
#define FEDLORA_TESTS_TESTUTIL_TINY_LLAMA_H_

#include <cstdint>

#include "fedlora/model/config.h"

namespace fedlora::testing {

// 2 layers, 4 attention heads of hidden / 4, `kv_heads` key/value heads, an MLP of 1.5 x hidden.
inline model::LlamaConfig TinyLlamaConfig(int64_t vocab, int64_t hidden, int64_t kv_heads = 2,
                                          int64_t max_positions = 64) {
  model::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = hidden * 3 / 2;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / 4;
  c.max_position_embeddings = max_positions;
  return c;
}

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_TESTUTIL_TINY_LLAMA_H_
