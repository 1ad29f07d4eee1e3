// libFuzzer: concur::mpi's reader of a function sent to a serving rank
// (mpi::detail::function_from_wire: a module name and an offset, length-
// prefixed, and a fingerprint of the code), which resolves them against
// the modules this process has loaded. The first byte chooses how the rest
// is used:
//   0  as the wire itself;
//   1  as edits of a real wire (this harness's own function): a module
//      picked among those loaded, and an offset counted back from the end
//      of that module's last executable segment, or from the function, so
//      that the reader is asked about the edges of the code it may read.
// Anything but an address or std::runtime_error is a bug; the real wire
// unchanged must resolve to the function. Built by scripts/fuzz.sh when
// Open MPI's compiler wrapper is there. Seeds: tests/fuzz/corpus/mpi_wire/.
#include <link.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/mpi/pool.hpp"

namespace {

namespace wire = concur::mpi::detail;

[[noreturn]] void fail() { __builtin_trap(); }

struct Module {
  std::string name;
  std::uint64_t code_end;  // offset of the end of its last executable segment
};

int collect(dl_phdr_info* info, std::size_t, void* data) {
  auto* modules = static_cast<std::vector<Module>*>(data);
  Module m{info->dlpi_name != nullptr ? info->dlpi_name : "", 0};
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && ph.p_vaddr + ph.p_memsz > m.code_end) {
      m.code_end = ph.p_vaddr + ph.p_memsz;
    }
  }
  modules->push_back(m);
  return 0;
}

std::uint64_t read_u64(const std::uint8_t* data, std::size_t size, std::size_t at) {
  std::uint64_t v = 0;
  if (at < size) std::memcpy(&v, data + at, std::min<std::size_t>(8, size - at));
  return v;
}

std::string make_wire(const std::string& name, std::uint64_t offset, std::uint64_t fingerprint) {
  std::string out;
  const std::uint64_t n = name.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += name;
  out.append(reinterpret_cast<const char*>(&offset), 8);
  out.append(reinterpret_cast<const char*>(&fingerprint), 8);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const void* const self = reinterpret_cast<const void*>(&LLVMFuzzerTestOneInput);
  static const std::string real = wire::function_to_wire(self);
  static const std::vector<Module> modules = [] {
    std::vector<Module> m;
    dl_iterate_phdr(&collect, &m);
    return m;
  }();
  std::string text;
  if ((data[0] & 1) == 0) {
    text.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  } else {
    // The real wire: name length, name, offset, fingerprint.
    std::uint64_t n = 0;
    std::memcpy(&n, real.data(), 8);
    std::string name = real.substr(8, n);
    std::uint64_t offset = 0, fingerprint = 0;
    std::memcpy(&offset, real.data() + 8 + n, 8);
    std::memcpy(&fingerprint, real.data() + 16 + n, 8);
    const std::uint8_t how = size > 1 ? data[1] : 0;
    const std::uint64_t back = read_u64(data, size, 2) & 0xffff;
    if (how & 1) {
      const Module& m = modules[(how >> 1) % modules.size()];
      name = m.name;
      offset = m.code_end - back;
    } else if (how & 2) {
      offset -= back;
    }
    if (how & 4) fingerprint = read_u64(data, size, 10);
    text = make_wire(name, offset, fingerprint);
  }
  try {
    const void* address = wire::function_from_wire(text);
    if (text == real && address != self) fail();
  } catch (const std::runtime_error&) {
    if (text == real) fail();
  }
  return 0;
}
