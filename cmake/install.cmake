# `cmake --install` and CPack (docs/install.md): the CLI, libfedlora.so with its tokenizer
# plugin, fedlora.h, a pkg-config file and a CMake package (find_package(fedlora) gives
# fedlora::fedlora), and a .deb that adds the coordinator's systemd unit and default config.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The tokenizer plugin lives in <libdir>/fedlora/, found from libfedlora.so's own folder
# (CodeDir()/fedlora) and from the CLI's (<bindir>/<this relative path>); see
# model/src/sp_backend.cc. Relative, so a package unpacked anywhere (dpkg -x) still works.
set(FEDLORA_PLUGIN_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/fedlora)
file(RELATIVE_PATH fedlora_plugin_rel /${CMAKE_INSTALL_BINDIR} /${FEDLORA_PLUGIN_INSTALL_DIR})
set_property(SOURCE ${PROJECT_SOURCE_DIR}/model/src/sp_backend.cc
             DIRECTORY ${PROJECT_SOURCE_DIR}/model APPEND PROPERTY
             COMPILE_DEFINITIONS FEDLORA_SP_PLUGIN_EXE_RELDIR="${fedlora_plugin_rel}")
# One version for the CLI, the C API's fedlora_version() and the packages: project(VERSION).
set_property(SOURCE ${PROJECT_SOURCE_DIR}/capi/src/capi_status.cc
             DIRECTORY ${PROJECT_SOURCE_DIR}/capi APPEND PROPERTY
             COMPILE_DEFINITIONS FEDLORA_VERSION_STRING="${PROJECT_VERSION}")
# ...and the version each process registers in a multi-host population (process_registry.h).
set_property(SOURCE ${PROJECT_SOURCE_DIR}/coordinator/src/process_registry.cc
             DIRECTORY ${PROJECT_SOURCE_DIR}/coordinator APPEND PROPERTY
             COMPILE_DEFINITIONS FEDLORA_VERSION_STRING="${PROJECT_VERSION}")
if(TARGET fedlora)
  set_property(SOURCE ${PROJECT_SOURCE_DIR}/tools/cmd_version.cc
               DIRECTORY ${PROJECT_SOURCE_DIR}/tools APPEND PROPERTY
               COMPILE_DEFINITIONS FEDLORA_VERSION_STRING="${PROJECT_VERSION}")
endif()

install(TARGETS fedlora_c EXPORT fedloraTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
                NAMELINK_COMPONENT runtime
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET fedlora)  # the CLI (not exported: fedlora::fedlora is the library)
  install(TARGETS fedlora RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
endif()
install(TARGETS fedlora_sp LIBRARY DESTINATION ${FEDLORA_PLUGIN_INSTALL_DIR} COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/include/fedlora.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT runtime)

# pkg-config: `pkg-config --cflags --libs fedlora`. The prefix is found from the .pc file's
# own folder, so `cmake --install --prefix X` and an unpacked .deb both give right paths.
file(RELATIVE_PATH fedlora_pc_to_prefix /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" fedlora_pc_to_prefix "${fedlora_pc_to_prefix}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/fedlora.pc.in ${CMAKE_BINARY_DIR}/fedlora.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/fedlora.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT runtime)

# CMake: find_package(fedlora 0.9 REQUIRED) + target_link_libraries(app PRIVATE fedlora::fedlora).
set(fedlora_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/fedlora)
install(EXPORT fedloraTargets NAMESPACE fedlora:: DESTINATION ${fedlora_cmake_dir}
        COMPONENT runtime)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/fedloraConfig.cmake.in
  ${CMAKE_BINARY_DIR}/fedloraConfig.cmake INSTALL_DESTINATION ${fedlora_cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/fedloraConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/fedloraConfig.cmake ${CMAKE_BINARY_DIR}/fedloraConfigVersion.cmake
        DESTINATION ${fedlora_cmake_dir} COMPONENT runtime)

# The coordinator as a service (packaging/): unit, default config, maintainer scripts.
if(TARGET fedlora)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/fedlora-coordinator.service
          DESTINATION lib/systemd/system COMPONENT runtime)
  # The default config: /etc/fedlora/ for a /usr install (the .deb), <prefix>/etc/fedlora
  # otherwise, so `cmake --install --prefix X` never writes outside X.
  install(CODE "
    if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
      set(fedlora_etc \"/etc/fedlora\")
    else()
      set(fedlora_etc \"\${CMAKE_INSTALL_PREFIX}/etc/fedlora\")
    endif()
    file(INSTALL \"${PROJECT_SOURCE_DIR}/packaging/coordinator.env\"
         DESTINATION \"\${fedlora_etc}\")  # file(INSTALL) adds DESTDIR" COMPONENT runtime)
endif()

# `cpack -G DEB` in the build folder: fedlora_<version>_<arch>.deb. A build with the
# fault-injection hooks (the test build) is marked in its version and description: ship one
# configured with -DFEDLORA_FAULT_INJECTION=OFF.
set(CPACK_PACKAGE_NAME fedlora)
set(CPACK_PACKAGE_VENDOR "fedlora")
set(CPACK_PACKAGE_CONTACT "fedlora maintainers <fedlora@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Federated LoRA personalization: device runtime (libfedlora), CLI and coordinator service")
if(FEDLORA_FAULT_INJECTION)
  string(APPEND CPACK_PACKAGE_VERSION "~testbuild")
  string(APPEND CPACK_PACKAGE_DESCRIPTION_SUMMARY " (TEST BUILD: fault injection compiled in)")
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # libtorch, gRPC, OpenSSL ... from dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/postinst ${PROJECT_SOURCE_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
