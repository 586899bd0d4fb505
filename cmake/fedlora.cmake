# fedlora_library(<folder> DEPS <targets...> [PRIVATE_DEPS <targets...>] [EXCLUDE_REGEX <re>])
# Builds target fedlora_<folder> from <folder>/src/*.cc (less the files matching EXCLUDE_REGEX:
# optional parts, e.g. the coordinator's PostgreSQL store); public headers live in
# <folder>/include/fedlora/<folder>/ and are included as "fedlora/<folder>/x.h".
set(FEDLORA_WARNINGS -Wall -Wextra -Wshadow -Wno-unused-parameter)

# Unity build of the libraries (FEDLORA_UNITY): CMake concatenates up to
# FEDLORA_UNITY_BATCH sources of one fedlora_<folder> library into one translation unit, so
# the libtorch/absl/gRPC headers are parsed once per batch instead of once per file
# (docs/benchmarks.md, "Build"). Libraries only: tests, benches, tools, capi and python repeat
# test-local helper names across files, and the generated protobuf code (fedlora_proto) is
# not a fedlora_library. The price: editing one file recompiles its whole batch, so
# developers who iterate on one library can configure with -DFEDLORA_UNITY=OFF.
option(FEDLORA_UNITY "Unity build of the fedlora_* libraries" ON)
# 8: the largest libraries (coordinator 6 batches, device and secagg 4) still split into several
# batches that keep 2 cores busy, and one edit recompiles at most 8 files (not tuned further).
set(FEDLORA_UNITY_BATCH 8 CACHE STRING "Sources per unity translation unit (FEDLORA_UNITY)")

function(fedlora_library folder)
  cmake_parse_arguments(ARG "" "EXCLUDE_REGEX" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cc)
  if(ARG_EXCLUDE_REGEX)
    list(FILTER srcs EXCLUDE REGEX "${ARG_EXCLUDE_REGEX}")
  endif()
  add_library(fedlora_${folder} STATIC ${srcs})
  target_include_directories(fedlora_${folder}
    PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(fedlora_${folder} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  target_compile_options(fedlora_${folder} PRIVATE ${FEDLORA_WARNINGS})
  # Each library also goes into libfedlora.so (the C API, capi/): position-independent code.
  # Executables keep the compiler's default (PIE on Debian).
  set_target_properties(fedlora_${folder} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(FEDLORA_UNITY)
    set_target_properties(fedlora_${folder} PROPERTIES
      UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${FEDLORA_UNITY_BATCH})
  endif()
  if(folder IN_LIST FEDLORA_TORCH_FOLDERS)  # FEDLORA_PCH below
    fedlora_torch_pch(fedlora_${folder})
  endif()
endfunction()

# Precompiled libtorch headers (FEDLORA_PCH). Parsing <torch/types.h> costs about 3 s of CPU in
# every translation unit that includes libtorch; a precompiled copy loads in under 1 s
# (docs/benchmarks.md, "Build"). GCC accepts a PCH only with the same code-model flags, so
# there are two shared ones: fedlora_pch_pic for the libraries (-fPIC) and fedlora_pch_exe
# for executables (the compiler's default PIE); every target that opts in reuses one of them.
option(FEDLORA_PCH "Precompile the libtorch headers for the targets that include them" ON)
set(FEDLORA_PCH_HEADERS <torch/types.h>)
# The folders whose sources, tests and benches mostly include libtorch (FEDLORA_PCH).
set(FEDLORA_TORCH_FOLDERS model adapters compress device sim)

# fedlora_torch_pch(<target>): <target> compiles with the precompiled libtorch headers.
function(fedlora_torch_pch target)
  if(NOT FEDLORA_PCH)
    return()
  endif()
  get_target_property(pic ${target} POSITION_INDEPENDENT_CODE)
  if(pic)
    set(holder fedlora_pch_pic)
  else()
    set(holder fedlora_pch_exe)
  endif()
  if(NOT TARGET ${holder})
    # An object library of one empty source whose only job is to own the PCH, compiled with
    # the flags of the targets that reuse it.
    add_library(${holder} OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch_holder.cc)
    target_link_libraries(${holder} PRIVATE ${TORCH_LIBRARIES})
    target_compile_options(${holder} PRIVATE ${FEDLORA_WARNINGS} -pthread)
    if(pic)
      set_target_properties(${holder} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    endif()
    target_precompile_headers(${holder} PRIVATE ${FEDLORA_PCH_HEADERS})
  endif()
  # GCC also refuses a PCH when a macro its headers test differs: -pthread defines _REENTRANT
  # and comes with gRPC to some targets only, so every user of the PCH gets it.
  target_compile_options(${target} PRIVATE -pthread)
  target_precompile_headers(${target} REUSE_FROM ${holder})
endfunction()
