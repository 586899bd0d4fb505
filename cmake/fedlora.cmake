# fedlora_library(<folder> DEPS <targets...>)
# Builds target fedlora_<folder> from <folder>/src/*.cc; public headers live in
# <folder>/include/fedlora/<folder>/ and are included as "fedlora/<folder>/x.h".
set(FEDLORA_WARNINGS -Wall -Wextra -Wshadow -Wno-unused-parameter)

function(fedlora_library folder)
  cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cc)
  add_library(fedlora_${folder} STATIC ${srcs})
  target_include_directories(fedlora_${folder}
    PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(fedlora_${folder} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  target_compile_options(fedlora_${folder} PRIVATE ${FEDLORA_WARNINGS})
  # Each library also goes into libfedlora.so (the C API, capi/): position-independent code.
  # Executables keep the compiler's default (PIE on Debian).
  set_target_properties(fedlora_${folder} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
