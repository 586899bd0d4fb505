// Model: a base (float or compressed) with PEFT adapters; the suggestion strip and the keyboard
// metrics on text, as `fedlora suggest` and `fedlora eval`.
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/threads.h"

namespace fedlora::python {
namespace py = pybind11;
namespace {

class Model {
 public:
  Model(const std::string& model_dir, const std::vector<std::string>& adapters, int threads) {
    model::ConfigureThreads({threads, 1});
    py::gil_scoped_release nogil;
    rt_ = Take(device::LoadRuntime(model_dir, adapters));
  }

  // [(word, log_prob)] of the k most likely next words after `prefix`.
  std::vector<std::pair<std::string, double>> Suggest(const std::string& prefix, int k) const {
    std::vector<device::Suggestion> words;
    {
      py::gil_scoped_release nogil;
      words = Take(device::SuggestNextWords(*rt_.model, *rt_.tokenizer, prefix, k));
    }
    std::vector<std::pair<std::string, double>> out;
    for (const auto& w : words) out.emplace_back(w.word, w.log_prob);
    return out;
  }

  // The metrics of `fedlora eval` (each text scored as its own message), as a JSON string.
  std::string Evaluate(const std::vector<std::string>& texts) const {
    if (texts.empty()) {
      throw StatusError{absl::InvalidArgumentError("evaluate: no texts (pass a list of lines)")};
    }
    py::gil_scoped_release nogil;
    return device::EvaluateTexts(*rt_.model, *rt_.tokenizer, texts).ToJson().dump();
  }

  int64_t vocab_size() const { return rt_.tokenizer->vocab_size(); }
  size_t num_adapters() const { return rt_.adapters.size(); }

 private:
  device::Runtime rt_;
};

}  // namespace

void BindModel(py::module_& m) {
  py::class_<Model>(m, "Model")
      .def(py::init<const std::string&, const std::vector<std::string>&, int>(),
           py::arg("model_dir"), py::arg("adapters"), py::arg("threads"))
      .def("suggest", &Model::Suggest, py::arg("prefix"), py::arg("k"))
      .def("evaluate", &Model::Evaluate, py::arg("texts"))
      .def_property_readonly("vocab_size", &Model::vocab_size)
      .def_property_readonly("num_adapters", &Model::num_adapters);
}

}  // namespace fedlora::python
