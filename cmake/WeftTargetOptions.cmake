# weft_target_options(<target>): warnings (errors with WEFT_WERROR) for weft's
# own code and the sanitizer chosen by WEFT_SANITIZE, applied PUBLIC so that
# everything linking the target (tests, examples) is instrumented the same way.
function(weft_target_options target)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    set(scope INTERFACE)
  else()
    set(scope PUBLIC)
    target_compile_options(${target} PRIVATE -Wall -Wextra $<$<BOOL:${WEFT_WERROR}>:-Werror>)
  endif()
  target_compile_features(${target} ${scope} cxx_std_20)
  if(WEFT_SANITIZE STREQUAL "thread")
    target_compile_options(${target} ${scope} -fsanitize=thread -fno-omit-frame-pointer)
    # -Wno-tsan: moodycamel concurrentqueue uses std::atomic_thread_fence, which
    # GCC warns TSan cannot model. (Clang has no such warning; there
    # moodycamel's own TSan annotations are active.) Suppressions for what TSan
    # cannot see (uninstrumented oneTBB): tests/tsan.supp.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} ${scope} -Wno-tsan)
    endif()
    target_link_options(${target} ${scope} -fsanitize=thread)
    target_compile_definitions(${target} ${scope} WEFT_SANITIZED=1 WEFT_TSAN=1)
  elseif(WEFT_SANITIZE STREQUAL "address")
    target_compile_options(${target} ${scope} -fsanitize=address,undefined -fno-omit-frame-pointer
                           -fno-sanitize-recover=undefined)
    target_link_options(${target} ${scope} -fsanitize=address,undefined)
    target_compile_definitions(${target} ${scope} WEFT_SANITIZED=1 WEFT_ASAN=1)
  elseif(NOT WEFT_SANITIZE STREQUAL "")
    message(FATAL_ERROR "WEFT_SANITIZE must be '', 'thread' or 'address', not '${WEFT_SANITIZE}'")
  endif()
endfunction()
