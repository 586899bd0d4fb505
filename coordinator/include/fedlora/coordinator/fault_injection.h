// Whether this build compiles the coordinator's fault injection: the environment variable
// FEDLORA_COORDINATOR_CRASH_AT=<phase>, which makes `fedlora coordinator run` SIGKILL itself on
// entering that phase (CoordinatorOptions::crash_at; the process tests' crash-and-resume
// scenarios). CMake option FEDLORA_FAULT_INJECTION (coordinator/CMakeLists.txt): ON by default,
// because the tests run the very `fedlora` binary the build makes; release and packaging builds
// configure with -DFEDLORA_FAULT_INJECTION=OFF, and their `coordinator run` ignores the
// variable (with a warning). `fedlora --version` says which kind of build it is.
#ifndef FEDLORA_COORDINATOR_FAULT_INJECTION_H_
#define FEDLORA_COORDINATOR_FAULT_INJECTION_H_

namespace fedlora::coordinator {

#ifdef FEDLORA_FAULT_INJECTION
inline constexpr bool kFaultInjection = true;
#else
inline constexpr bool kFaultInjection = false;
#endif

inline constexpr char kCrashAtEnv[] = "FEDLORA_COORDINATOR_CRASH_AT";

// What `fedlora --version` appends to the version, in parentheses: "fault injection: on, a test
// build; ..." or "fault injection: off".
inline const char* FaultInjectionNote() {
  return kFaultInjection ? "fault injection: on, a test build; configure with "
                           "-DFEDLORA_FAULT_INJECTION=OFF for releases"
                         : "fault injection: off";
}

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_FAULT_INJECTION_H_
