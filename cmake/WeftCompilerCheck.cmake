# weft_check_compiler(): one configure-time warning where the C++ compiler is
# GCC older than 13, which miscompiles temporaries inside co_await
# expressions. Included by weft's CMakeLists.txt and by the installed
# weftConfig.cmake, so find_package(weft) consumers see it too; printed once
# per configure run.
#
# What GCC 12.2 does (checked with a standalone program that counts
# constructions and destructions; Clang 16 gets every case right): a temporary
# created anywhere inside a co_await expression is destroyed twice when it is
# a lambda closure that captures by value something with a destructor, or an
# aggregate (braced, designated or parenthesised initialisation) with such a
# member. It does not matter whether the callee is a coroutine, takes the
# argument by value, by const reference or as std::function. Temporaries of a
# class with a user-declared constructor (std::string, std::vector, a
# non-aggregate struct), capture-less lambdas and lambdas that capture only by
# reference or only trivially destructible values are handled correctly.
# Reported upstream as GCC bug 100611; fixed in GCC 13.
function(weft_check_compiler)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU" OR CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 13)
    return()
  endif()
  get_property(warned GLOBAL PROPERTY WEFT_GCC_COROUTINE_WARNED)
  if(warned)
    return()
  endif()
  set_property(GLOBAL PROPERTY WEFT_GCC_COROUTINE_WARNED TRUE)
  message(WARNING
    "weft: GCC ${CMAKE_CXX_COMPILER_VERSION} (older than 13) destroys some temporaries "
    "inside a co_await expression twice (GCC bug 100611): a double free.\n"
    "Affected: a lambda that captures by value something with a destructor "
    "(a std::string, a shared_ptr, a weft::Future), or an aggregate temporary with "
    "such a member, written inside the co_await expression, e.g.\n"
    "  co_await cond.wait_for([s] { return s->ready; });                  // s is a shared_ptr\n"
    "  co_await weft::create_subprocess_exec(\"sh\", args, {.cwd = dir});    // aggregate temporary\n"
    "Safe spellings: name the lambda or the aggregate first, or build the awaitable first:\n"
    "  auto ready = [s] { return s->ready; };  co_await cond.wait_for(ready);\n"
    "  weft::SubprocessOptions o{.cwd = dir};  co_await weft::create_subprocess_exec(\"sh\", args, o);\n"
    "  auto c = weft::task_group([s](weft::TaskGroup& tg) -> weft::Coro<void> { ... });  co_await std::move(c);\n"
    "weft's own code and examples avoid these spellings; Clang 16 (cmake --preset default) and GCC 13 "
    "have no such bug. See the README's 'Compilers' section.")
endfunction()
