// simulate(): one `fedlora sim` run (sim::RunSimulation, the CLI's own path) from key/value
// settings with the same keys as sim config files.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "fedlora/sim/run.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::python {
namespace py = pybind11;

void BindSim(py::module_& m) {
  m.def(
      "simulate",
      [](const std::vector<std::pair<std::string, std::string>>& settings, bool force,
         const std::string& fedlora_binary, const py::object& on_round) {
        sim::SimConfig c;
        c.progress = false;  // no terminal progress bar inside Python
        for (const auto& [key, value] : settings) Check(sim::ApplyOverride(key, value, &c));
        sim::RunOptions ro;
        ro.force = force;
        ro.fedlora_binary = fedlora_binary;
        std::vector<std::string> rounds;
        std::exception_ptr callback_error;
        ro.on_round = [&](const sim::RoundRecord& r) {
          rounds.push_back(r.ToJson().dump());
          if (on_round.is_none() || callback_error) return;
          py::gil_scoped_acquire gil;
          try {
            on_round(rounds.back());
          } catch (...) {
            callback_error = std::current_exception();  // raised after the run
          }
        };
        absl::StatusOr<sim::SimResult> result;
        {
          py::gil_scoped_release nogil;
          result = sim::RunSimulation(c, ro);
        }
        if (callback_error) std::rethrow_exception(callback_error);
        sim::SimResult r = Take(std::move(result));
        py::array_t<float> adapter(static_cast<py::ssize_t>(r.global_adapter.size()));
        std::copy(r.global_adapter.begin(), r.global_adapter.end(), adapter.mutable_data());
        return py::make_tuple(r.summary.ToJson().dump(), rounds, adapter);
      },
      py::arg("settings"), py::arg("force"), py::arg("fedlora_binary"), py::arg("on_round"));
  m.def("config_keys", [] {
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& k : sim::ConfigKeys()) keys.emplace_back(k.key, k.description);
    return keys;
  });
}

}  // namespace fedlora::python
