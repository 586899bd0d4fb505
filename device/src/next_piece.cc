#include "next_piece.h"

#include <torch/utils.h>

#include <algorithm>

namespace fedlora::device {

torch::Tensor NextPieceLogProbs(const model::LlamaModel& model, const model::KvCache& cache,
                                const std::vector<int64_t>& positions,
                                const std::vector<int64_t>& pieces) {
  TORCH_CHECK(positions.size() == pieces.size(), "NextPieceLogProbs: one position per piece");
  const int64_t r = static_cast<int64_t>(pieces.size());
  if (r == 0) return torch::Tensor();
  torch::NoGradGuard no_grad;
  const int64_t len = cache.length();
  model::KvCache rows;  // the prefix's keys and values, one (shared) copy per row
  for (size_t l = 0; l < cache.k.size(); ++l) {
    rows.k.push_back(cache.k[l].expand({r, -1, -1, -1}));
    rows.v.push_back(cache.v[l].expand({r, -1, -1, -1}));
  }
  model::ForwardOptions fo;
  fo.cache = &rows;
  fo.last_only = true;
  const bool all_last = std::all_of(positions.begin(), positions.end(),
                                    [&](int64_t p) { return p == len - 1; });
  if (!all_last) {
    // Row r sees ids[0..positions[r]] and itself; its position is then positions[r] + 1
    // (the model numbers positions by the mask), as if the rest of the cache were not there.
    torch::Tensor mask = torch::zeros({r, len + 1}, torch::kInt64);
    auto m = mask.accessor<int64_t, 2>();
    for (int64_t i = 0; i < r; ++i) {
      TORCH_CHECK(positions[i] >= 0 && positions[i] < len, "NextPieceLogProbs: position ",
                  positions[i], " outside a cache of ", len);
      for (int64_t j = 0; j <= positions[i]; ++j) m[i][j] = 1;
      m[i][len] = 1;
    }
    fo.attention_mask = mask;
  }
  torch::Tensor ids = torch::tensor(pieces, torch::kInt64).view({r, 1});
  return torch::log_softmax(model.Forward(ids, fo).select(1, 0), -1).contiguous();
}

}  // namespace fedlora::device
