// The `fedlora` Python module's native part (_fedlora): thin bindings over the C++ library.
// Plain values in and out (str, float, lists, JSON strings that fedlora/__init__.py turns into
// dicts, numpy arrays); every error is fedlora.Error with the CLI's message (docs/python.md).
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "errors.h"

PYBIND11_MODULE(_fedlora, m) {
  m.doc() = "fedlora native bindings; use the `fedlora` package (docs/python.md)";
  fedlora::python::RegisterErrors(m);
  fedlora::python::BindPrivacy(m);
  fedlora::python::BindSim(m);
  fedlora::python::BindModel(m);
  fedlora::python::BindRelease(m);
}
