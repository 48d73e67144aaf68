// What a project using weft writes first: weft::run of a coroutine that
// sleeps and gathers. Built by tests/consumers/find_package (against an
// installed weft) and tests/consumers/add_subdirectory (weft's source tree as
// a subproject); .ci/run builds and runs both.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

weft::Coro<std::string> fetch(int i) {
  co_await weft::sleep(10ms);
  co_return "result " + std::to_string(i);
}

weft::Coro<int> main_task() {
  auto [a, b] = co_await weft::gather(fetch(1), fetch(2));
  auto slow = weft::create_task(fetch(3));
  std::string c = co_await weft::wait_for(slow, 1s);
  std::printf("consumer: %s, %s, %s\n", a.c_str(), b.c_str(), c.c_str());
  co_return a == "result 1" && b == "result 2" && c == "result 3" ? 0 : 1;
}

}  // namespace

int main() { return weft::run(main_task()); }
