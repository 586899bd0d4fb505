// One function per concern, each defining part of the _fedlora module.
#ifndef FEDLORA_PYTHON_SRC_BINDINGS_H_
#define FEDLORA_PYTHON_SRC_BINDINGS_H_

#include <pybind11/pybind11.h>

namespace fedlora::python {

void BindPrivacy(pybind11::module_& m);  // epsilon, noise_for_epsilon
void BindSim(pybind11::module_& m);      // simulate
void BindModel(pybind11::module_& m);    // Model: suggest, evaluate
void BindRelease(pybind11::module_& m);  // verify_release

}  // namespace fedlora::python

#endif  // FEDLORA_PYTHON_SRC_BINDINGS_H_
