// ThreadSanitizer suppressions (the annotations are in tsan.hpp).
#ifdef WEFT_TSAN
// ThreadSanitizer suppressions, built into every TSan-instrumented binary that
// links weft (WEFT_SANITIZE=thread) so that ctest, .ci/run and a plain run of a
// test binary need no TSAN_OPTIONS. A static library member that nothing references is
// never linked in: executor/CMakeLists.txt makes TSan links ask for
// weft_tsan_suppressions_anchor, which pulls this file in.
//
// moodycamel::ConcurrentQueue (the loops' inboxes)
// orders its block and producer reuse with std::atomic_thread_fence, which
// TSan does not model (its header says TSan "can false report races in
// lock-free code" and annotates itself only for clang). So TSan also misses
// the happens-before from a producer's enqueue, through the consumer's
// dequeue, to the loop's later destruction. Reports with a queue frame in
// either stack are suppressed: a real use-after-free of a queue is left to
// the ASan build (WEFT_SANITIZE=address).
//
// libtbb is not built with TSan either, so TSan cannot see how TBB hands a
// task object to a worker and recycles its memory (TbbExecutor). race_top
// matches only accesses made by TBB's own header code; what the submitted
// functions do stays checked. A program that runs TBB algorithms
// (parallel_reduce, ...) inside the arena under TSan also needs
// `race:/oneapi/tbb/`.
//
// A strong definition: the TSan runtime's own default (no suppressions) is
// weak and comes first on the link line, so a weak one here would never be
// chosen. A program that needs more suppressions passes
// TSAN_OPTIONS=suppressions=FILE, which adds to these.
// Asked for by the link of every TSan build (-u), so that this member is linked.
extern "C" const char weft_tsan_suppressions_anchor = 0;

extern "C" const char* __tsan_default_suppressions() {
  return "race:moodycamel::ConcurrentQueue\n"
         "race_top:/oneapi/tbb/\n";
}
#endif
