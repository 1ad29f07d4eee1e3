// How concur prints an exception it cannot hand back: "TYPE: message", the
// way Python's traceback ends. Internal to src/.
#pragma once

#include <exception>
#include <string>

namespace concur::detail {

// The demangled dynamic type of the exception and, for a std::exception,
// ": " and its what().
std::string describe_exception(const std::exception_ptr& e);

// A demangled type name.
std::string demangle(const char* mangled);

}  // namespace concur::detail
