// The umbrella header: everything in weft (weft::weft: executor, io, sync,
// and weft::run). A program that needs only part of it includes that part's
// headers and links that target (docs/architecture.md, "Folders and targets").
#pragma once

#include <weft/as_completed.hpp>
#include <weft/call_graph.hpp>
#include <weft/context_var.hpp>
#include <weft/coro.hpp>
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/executor.hpp>
#include <weft/future.hpp>
#include <weft/gather.hpp>
#include <weft/io.hpp>
#include <weft/loop_options.hpp>
#include <weft/offload.hpp>
#include <weft/outcome.hpp>
#include <weft/run.hpp>
#include <weft/runtime.hpp>
#include <weft/shield.hpp>
#include <weft/sleep.hpp>
#include <weft/sync.hpp>
#include <weft/task.hpp>
#include <weft/task_group.hpp>
#include <weft/tbb_executor.hpp>
#include <weft/thread_pool_executor.hpp>
#include <weft/timeout.hpp>
#include <weft/wait.hpp>
#include <weft/wait_for.hpp>
