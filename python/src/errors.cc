#include "errors.h"

#include <c10/util/Exception.h>

#include "absl/status/status.h"

namespace fedlora::python {

namespace py = pybind11;

void RegisterErrors(py::module_& m) {
  static py::exception<StatusError> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object exc = py::handle(error.ptr())(py::str(std::string(e.status.message())));
      exc.attr("code") = py::str(absl::StatusCodeToString(e.status.code()));
      PyErr_SetObject(error.ptr(), exc.ptr());
    } catch (const c10::Error& e) {
      // A libtorch failure inside fedlora: a bug or an impossible shape, reported, not fatal.
      py::object exc =
          py::handle(error.ptr())(py::str(std::string("libtorch: ") + e.what_without_backtrace()));
      exc.attr("code") = py::str("INTERNAL");
      PyErr_SetObject(error.ptr(), exc.ptr());
    }
  });
}

}  // namespace fedlora::python
