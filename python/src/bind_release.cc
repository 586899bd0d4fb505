// verify_release(): a release folder checked as a device would (`fedlora release verify`).
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/release.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/release_folder.h"
#include "nlohmann/json.hpp"

namespace fedlora::python {
namespace py = pybind11;

void BindRelease(py::module_& m) {
  m.def(
      "verify_release",
      [](const std::string& dir, const std::vector<std::string>& trusted,
         const std::string& base, const std::vector<std::string>& revoked,
         uint64_t installed_version, const std::string& rollback) {
        TrustStore trust;
        Check(trust.AddFiles(trusted));
        for (const auto& id : revoked) trust.Revoke(id);
        io::VerifyReleaseOptions vo;
        vo.base_model_sha256 = Take(io::ModelSha256(base));
        vo.installed_version = installed_version;
        if (!rollback.empty()) {
          auto j = nlohmann::json::parse(Take(ReadFileToString(rollback)), nullptr, false);
          vo.rollback = Take(RollbackFromJson(j));
        }
        const auto manifest = Take(io::VerifyRelease(dir, trust, vo));
        py::dict d;
        d["ok"] = true;
        d["release_id"] = manifest.release_id;
        d["version"] = manifest.version;
        d["key_id"] = manifest.key_id;
        d["segment"] = manifest.segment;
        d["files"] = manifest.files.size();
        return d;
      },
      py::arg("dir"), py::arg("trusted"), py::arg("base"), py::arg("revoked"),
      py::arg("installed_version"), py::arg("rollback"));
}

}  // namespace fedlora::python
