// Owner of the precompiled libtorch headers (cmake/fedlora.cmake, FEDLORA_PCH); compiles to nothing.
