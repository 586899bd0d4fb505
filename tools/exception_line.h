// The one line `fedlora` prints for an exception that escapes a command (a libtorch c10::Error
// or any other), instead of std::terminate's abort and libtorch's backtrace.
#ifndef FEDLORA_TOOLS_EXCEPTION_LINE_H_
#define FEDLORA_TOOLS_EXCEPTION_LINE_H_

#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace fedlora::cli {

// The first line of `text` without trailing whitespace ("unknown error" when empty).
inline std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\t')) {
    line.pop_back();
  }
  return line.empty() ? std::string("unknown error") : line;
}

// What `e` says, on one line: a c10::Error's message without its backtrace, any other
// std::exception's what(), or "unknown exception" for anything else thrown.
inline std::string ExceptionMessage(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& error) {
    return FirstLine(error.what_without_backtrace());
  } catch (const std::exception& error) {
    return FirstLine(error.what());
  } catch (...) {
    return "unknown exception";
  }
}

// "fedlora: error: <message> (hint: ...)", without a newline.
inline std::string ExceptionLine(std::exception_ptr e) {
  return "fedlora: error: " + ExceptionMessage(e) +
         " (hint: an unexpected exception escaped the command: input fedlora does not check "
         "yet, or a bug; please report it with the command line)";
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_EXCEPTION_LINE_H_
