#!/usr/bin/env python3
"""Python asyncio / uvloop peer for weft's side-by-side benchmarks (issue 6).

Usage: asyncio_peer.py <workload> <workers> [--quick] [--loop asyncio|uvloop] [--port P]
Prints one line: peer=<asyncio|uvloop> workload=<w> workers=1 seconds=<s> ops_per_sec=<x> [extra]

Python runs one event loop on one thread, so workers is always 1. Counts are
scaled down so each workload takes seconds, not minutes (the factor is printed
as scale=<k>); ops_per_sec is per operation (spawn, yield, round trip, ...) so
it stays comparable with the full-size peers. fanout's ops are "tasks of
2,000,000 iterations", i.e. scaled iterations are converted back.
"""
import asyncio
import sys
import time

# Scale-down factors (full count / python count).
SCALE = {
    "spawn_many": 10,      # 100,000 tasks
    "yield_many": 1,       # 1,000 tasks x 1,000 yields
    "ping_pong": 1,        # 200,000 round trips
    "chained_spawn": 1,    # 100,000 deep
    "timers": 1,           # 100,000 timers
    "idle_memory": 10,     # 100,000 tasks
    "fanout": 100,         # 64 tasks x 20,000 iterations
}
MASK = (1 << 64) - 1


def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


async def spawn_many(scale):
    n = 1_000_000 // scale
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = n

    async def signal():
        nonlocal left
        left -= 1
        if left == 0:
            done.set_result(None)

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(signal()) for _ in range(n)]  # keep references (asyncio holds tasks weakly)
    await done
    secs = time.perf_counter() - t0
    del tasks
    return secs, n, ""


async def yield_many(scale):
    tasks, yields = 1000, 1000 // scale

    async def yielder():
        for _ in range(yields):
            await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*(yielder() for _ in range(tasks)))
    return time.perf_counter() - t0, tasks * yields, ""


async def ping_pong(scale):
    rounds = 200_000 // scale
    loop = asyncio.get_running_loop()

    async def ponger(cur):
        for _ in range(rounds):
            v, reply, nxt = await cur
            reply.set_result(v + 1)
            cur = nxt

    cur = loop.create_future()
    t0 = time.perf_counter()
    pong = asyncio.create_task(ponger(cur))
    for i in range(rounds):
        nxt = loop.create_future()
        reply = loop.create_future()
        cur.set_result((i, reply, nxt))
        cur = nxt
        if await reply != i + 1:
            raise AssertionError("bad reply")
    await pong
    return time.perf_counter() - t0, rounds, ""


async def chained_spawn(scale):
    depth = 100_000 // scale
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    keep = set()

    async def chain(left):
        if left == 0:
            done.set_result(None)
        else:
            t = asyncio.create_task(chain(left - 1))
            keep.add(t)
            t.add_done_callback(keep.discard)

    t0 = time.perf_counter()
    first = asyncio.create_task(chain(depth))
    await done
    secs = time.perf_counter() - t0
    del first
    return secs, depth, ""


def splitmix(seed):
    s = seed
    while True:
        s = (s + 0x9E3779B97F4A7C15) & MASK
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


async def timers(scale):
    n = 100_000 // scale
    rng = splitmix(42)
    durations = [(1000 + next(rng) % 49_001) / 1e6 for _ in range(n)]
    late = [0.0] * n
    clock = time.monotonic  # the loop's clock

    async def sleeper(i, d):
        deadline = clock() + d
        await asyncio.sleep(d)
        late[i] = max(0.0, clock() - deadline) * 1e6

    t0 = time.perf_counter()
    await asyncio.gather(*(sleeper(i, d) for i, d in enumerate(durations)))
    secs = time.perf_counter() - t0
    return secs, n, "mean_late_us=%.1f max_late_us=%.1f" % (sum(late) / n, max(late))


async def idle_memory(scale):
    n = 1_000_000 // scale
    gate = asyncio.Event()
    parked = 0

    async def waiter():
        nonlocal parked
        parked += 1
        await gate.wait()

    before = status_kib("VmRSS:")
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(waiter()) for _ in range(n)]
    while parked < n:
        await asyncio.sleep(0.001)
    peak = status_kib("VmHWM:")
    gate.set()
    await asyncio.gather(*tasks)
    # The list of task references is 8 bytes/task of the measurement.
    return time.perf_counter() - t0, n, "bytes_per_task=%.1f" % ((peak - before) * 1024 / n)


def mix_work(seed, iterations):
    x = seed
    for i in range(iterations):
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & MASK
        x ^= x >> 33
        x = (x * 0xC4CEB9FE1A85EC53) & MASK
        x ^= x >> 33
        x = (x + i) & MASK
    return x


async def fanout(scale):
    tasks, iterations = 64, 2_000_000 // scale

    async def cpu(seed):
        return mix_work(seed, iterations)

    t0 = time.perf_counter()
    results = await asyncio.gather(*(cpu(i + 1) for i in range(tasks)))
    secs = time.perf_counter() - t0
    equivalent = tasks * iterations / 2_000_000
    return secs, equivalent, "checksum=%d" % (sum(results) % (1 << 64) % 1_000_003)


async def echo_server(port):
    async def handle(reader, writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                data = await reader.read(16384)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening port=%d" % port, flush=True)
    async with server:
        await server.serve_forever()


WORKLOADS = {f.__name__: f for f in (spawn_many, yield_many, ping_pong, chained_spawn, timers, idle_memory, fanout)}


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    workload, workers = args[0], int(args[1])
    quick, loop_name, port = False, "asyncio", 0
    i = 2
    while i < len(args):
        if args[i] == "--quick":
            quick = True
        elif args[i] == "--loop":
            i += 1
            loop_name = args[i]
        elif args[i] == "--port":
            i += 1
            port = int(args[i])
        else:
            print("unknown argument " + args[i], file=sys.stderr)
            sys.exit(2)
        i += 1
    if workers != 1:
        print("python peers are single-threaded: workers must be 1", file=sys.stderr)
        sys.exit(2)
    if loop_name == "uvloop":
        import uvloop
        uvloop.install()
    elif loop_name != "asyncio":
        sys.exit("unknown loop " + loop_name)
    if workload == "echo_server":
        asyncio.run(echo_server(port))
        return
    if workload not in WORKLOADS:
        sys.exit("unknown workload " + workload)
    scale = SCALE[workload] * (10 if quick else 1)
    secs, ops, extra = asyncio.run(WORKLOADS[workload](scale))
    print("peer=%s workload=%s workers=1 seconds=%.6f ops_per_sec=%.1f scale=%d%s"
          % (loop_name, workload, secs, ops / secs, scale, " " + extra if extra else ""))


if __name__ == "__main__":
    main()
