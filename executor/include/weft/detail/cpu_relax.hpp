// cpu_relax(): the processor's spin-wait hint (x86 PAUSE, Arm YIELD), for
// loops that poll a value another thread is about to change. Nothing on
// other architectures: the loop is then a plain poll.
#pragma once

namespace weft::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace weft::detail
