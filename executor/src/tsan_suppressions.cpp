// ThreadSanitizer suppressions built into every TSan-instrumented binary that
// links weft (WEFT_SANITIZE=thread), so that ctest, .ci/run and a plain run of
// a test binary need no TSAN_OPTIONS.
//
// moodycamel::ConcurrentQueue (the loops' inboxes and the runtime's injector)
// orders its block and producer reuse with std::atomic_thread_fence, which
// TSan does not model; its header says TSan "can false report races in
// lock-free code" and only annotates itself for clang. The reports are on its
// internal slots and block headers (enqueue vs. an earlier dequeue of a
// recycled block, implicit producers reused by a new thread whose id was
// recycled). A report with a queue frame in either stack is suppressed, so a
// use-after-free of the queue itself would be hidden here: the ASan build
// (WEFT_SANITIZE=address) is what covers that.
//
// libtbb is not built with TSan either, so TSan cannot see how TBB hands a
// task object to a worker and recycles its memory (TbbExecutor). race_top
// matches only accesses made by TBB's own header code; what the submitted
// functions do stays checked. A program that runs TBB algorithms
// (parallel_reduce, ...) inside the arena under TSan also needs
// `race:/oneapi/tbb/`. Weak, so that a program's own definition replaces this
// one (it should then repeat these lines).
#ifdef WEFT_TSAN
extern "C" __attribute__((weak)) const char* __tsan_default_suppressions() {
  return "race:moodycamel::ConcurrentQueue\n"
         "race_top:/oneapi/tbb/\n";
}
#endif
