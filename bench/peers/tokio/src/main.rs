//! Tokio peer for weft's side-by-side benchmarks (issue 6).
//! Usage: tokio_peer <workload> <workers> [--quick] [--current-thread] [--port P] [--file F]
//! Prints one line: peer=<tokio-mt|tokio-ct> workload=<w> workers=<n> seconds=<s> ops_per_sec=<x> [extra]
//! Workload definitions are shared with bench/peers/* and bench/workloads (see bench/README.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

struct Res {
    secs: f64,
    ops: f64,
    extra: String,
}

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            return rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        }
    }
    0
}

/// Shared "count down, last one signals" state.
struct Latch {
    left: AtomicUsize,
    done: Notify,
}
impl Latch {
    fn new(n: usize) -> Arc<Latch> {
        Arc::new(Latch { left: AtomicUsize::new(n), done: Notify::new() })
    }
    fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one(); // stores a permit if nobody waits yet
        }
    }
    async fn wait(&self) {
        self.done.notified().await;
    }
}

async fn spawn_many(scale: usize) -> Res {
    let n = 1_000_000 / scale;
    let latch = Latch::new(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let latch = latch.clone();
        tokio::spawn(async move { latch.count_down() });
    }
    latch.wait().await;
    Res { secs: t0.elapsed().as_secs_f64(), ops: n as f64, extra: String::new() }
}

async fn yield_many(scale: usize) -> Res {
    let tasks = 1000;
    let yields = 1000 / scale;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    Res { secs: t0.elapsed().as_secs_f64(), ops: (tasks * yields) as f64, extra: String::new() }
}

/// One request: the value, a fresh oneshot for the reply, and the receiver of the next request.
struct Ping {
    v: u64,
    reply: oneshot::Sender<u64>,
    next: oneshot::Receiver<Ping>,
}

async fn ping_pong(scale: usize) -> Res {
    let rounds = 200_000 / scale as u64;
    let (mut tx, rx) = oneshot::channel::<Ping>();
    let t0 = Instant::now();
    let pong = tokio::spawn(async move {
        let mut cur = rx;
        for _ in 0..rounds {
            let p = cur.await.unwrap();
            let _ = p.reply.send(p.v + 1);
            cur = p.next;
        }
    });
    for i in 0..rounds {
        let (next_tx, next_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        if tx.send(Ping { v: i, reply: reply_tx, next: next_rx }).is_err() {
            panic!("ponger gone");
        }
        tx = next_tx;
        let r = reply_rx.await.unwrap();
        assert_eq!(r, i + 1);
    }
    pong.await.unwrap();
    Res { secs: t0.elapsed().as_secs_f64(), ops: rounds as f64, extra: String::new() }
}

fn chain(left: usize, done: Arc<Notify>) {
    tokio::spawn(async move {
        if left == 0 {
            done.notify_one();
        } else {
            chain(left - 1, done);
        }
    });
}

async fn chained_spawn(scale: usize) -> Res {
    let depth = 100_000 / scale;
    let done = Arc::new(Notify::new());
    let t0 = Instant::now();
    chain(depth, done.clone());
    done.notified().await;
    Res { secs: t0.elapsed().as_secs_f64(), ops: depth as f64, extra: String::new() }
}

/// splitmix64, seed 42: the same sleep durations in every peer (bench/README.md).
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
}

async fn timers(scale: usize) -> Res {
    let n = 100_000 / scale;
    let mut rng = SplitMix(42);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let d = Duration::from_micros(1000 + rng.next() % 49_001);
            tokio::spawn(async move {
                let deadline = Instant::now() + d;
                tokio::time::sleep(d).await;
                Instant::now().saturating_duration_since(deadline).as_secs_f64() * 1e6
            })
        })
        .collect();
    let (mut sum, mut max) = (0.0f64, 0.0f64);
    for h in handles {
        let l = h.await.unwrap();
        sum += l;
        max = max.max(l);
    }
    let secs = t0.elapsed().as_secs_f64();
    Res { secs, ops: n as f64, extra: format!("mean_late_us={:.1} max_late_us={:.1}", sum / n as f64, max) }
}

async fn idle_memory(scale: usize) -> Res {
    let n = 1_000_000 / scale;
    struct Gate {
        open: Notify,
        parked: AtomicUsize,
        finished: Latch,
    }
    let gate = Arc::new(Gate {
        open: Notify::new(),
        parked: AtomicUsize::new(0),
        finished: Latch { left: AtomicUsize::new(n), done: Notify::new() },
    });
    let before = status_kib("VmRSS:");
    let t0 = Instant::now();
    for _ in 0..n {
        let gate = gate.clone();
        tokio::spawn(async move {
            let opened = gate.open.notified();
            gate.parked.fetch_add(1, Ordering::Relaxed);
            opened.await;
            gate.finished.count_down();
        });
    }
    while gate.parked.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let peak = status_kib("VmHWM:");
    gate.open.notify_waiters();
    gate.finished.wait().await;
    let per_task = (peak.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    Res { secs: t0.elapsed().as_secs_f64(), ops: n as f64, extra: format!("bytes_per_task={:.1}", per_task) }
}

fn mix_work(seed: u64, iterations: u64) -> u64 {
    let mut x = seed;
    for i in 0..iterations {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
        x ^= x >> 33;
        x = x.wrapping_add(i);
    }
    x
}

async fn fanout(scale: usize) -> Res {
    let tasks = 64u64;
    let iterations = 2_000_000 / scale as u64;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|i| tokio::spawn(async move { mix_work(std::hint::black_box(i + 1), iterations) }))
        .collect();
    let mut sum = 0u64;
    for h in handles {
        sum = sum.wrapping_add(h.await.unwrap());
    }
    Res { secs: t0.elapsed().as_secs_f64(), ops: tasks as f64, extra: format!("checksum={}", sum % 1_000_003) }
}

/// mutex: W = max(2, 2 x workers) tasks x 100,000 lock/increment/unlock on one
/// tokio::sync::Mutex; ops = total increments; the final count is checked.
async fn mutex_bench(scale: usize, workers: usize) -> Res {
    let tasks = (2 * workers).max(2) as u64;
    let iterations = 100_000 / scale as u64;
    let m = Arc::new(tokio::sync::Mutex::new(0u64));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                for _ in 0..iterations {
                    let mut g = m.lock().await;
                    *g += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let count = *m.lock().await;
    if count != tasks * iterations {
        eprintln!("mutex: count {} != {}", count, tasks * iterations);
        std::process::abort();
    }
    Res { secs, ops: (tasks * iterations) as f64, extra: format!("tasks={}", tasks) }
}

/// mpsc: 4 producers x 250,000 integers into one tokio::sync::mpsc::channel(1024),
/// drained by one consumer task; ops = items received; the sum is checked.
async fn mpsc_bench(scale: usize) -> Res {
    let producers = 4u64;
    let per = 250_000 / scale as u64;
    let total = producers * per;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let t0 = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        for _ in 0..total {
            sum += rx.recv().await.unwrap();
        }
        sum
    });
    let prods: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    tx.send(p * per + i).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let sum = consumer.await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    for h in prods {
        h.await.unwrap();
    }
    if sum != total * (total - 1) / 2 {
        eprintln!("mpsc: sum {} != {}", sum, total * (total - 1) / 2);
        std::process::abort();
    }
    Res { secs, ops: total as f64, extra: String::new() }
}

/// skynet: a 10-ary tree of tasks with 1,000,000 leaves (1,111,111 tasks);
/// each node tokio::spawns its 10 children, then awaits their JoinHandles in
/// order; a leaf returns its number. ops = tasks spawned (the root runs in the
/// driver); the sum is checked; peak RSS (VmHWM) reported.
fn skynet_node(num: u64, size: u64) -> impl std::future::Future<Output = u64> + Send {
    async move {
        if size == 1 {
            return num;
        }
        let step = size / 10;
        let children: Vec<_> = (0..10).map(|i| tokio::spawn(skynet_node(num + i * step, step))).collect();
        let mut sum = 0u64;
        for c in children {
            sum += c.await.unwrap();
        }
        sum
    }
}

async fn skynet(scale: usize) -> Res {
    let leaves: u64 = if scale == 1 { 1_000_000 } else { 100_000 };
    let mut tasks = 0u64;
    let mut level = 1u64;
    while level <= leaves {
        tasks += level;
        level *= 10;
    }
    let t0 = Instant::now();
    let sum = skynet_node(0, leaves).await;
    let secs = t0.elapsed().as_secs_f64();
    if sum != leaves * (leaves - 1) / 2 {
        eprintln!("skynet: sum {} != {}", sum, leaves * (leaves - 1) / 2);
        std::process::abort();
    }
    Res {
        secs,
        ops: (tasks - 1) as f64,
        extra: format!("tasks={} peak_rss_kib={}", tasks, status_kib("VmHWM:")),
    }
}

/// fib: fib(30) with a task per call: each call n >= 2 tokio::spawns fib(n-1)
/// and fib(n-2) and awaits them in order. ops = calls - 1 (the root runs in
/// the driver); peak RSS (VmHWM) reported.
fn fib_task(n: u32) -> impl std::future::Future<Output = u64> + Send {
    async move {
        if n < 2 {
            return n as u64;
        }
        let a = tokio::spawn(fib_task(n - 1));
        let b = tokio::spawn(fib_task(n - 2));
        let x = a.await.unwrap();
        let y = b.await.unwrap();
        x + y
    }
}

async fn fib(scale: usize) -> Res {
    let n: u32 = if scale == 1 { 30 } else { 25 };
    // calls(n) = 2 fib(n+1) - 1; (a, b) = (fib(1), fib(2)), after the loop b = fib(n+1)
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 2..=n {
        let c = a + b;
        a = b;
        b = c;
    }
    let calls = 2 * b - 1;
    let t0 = Instant::now();
    let v = fib_task(n).await;
    let secs = t0.elapsed().as_secs_f64();
    Res { secs, ops: (calls - 1) as f64, extra: format!("fib={} peak_rss_kib={}", v, status_kib("VmHWM:")) }
}

async fn echo_server(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("listening port={}", port);
    loop {
        let (mut sock, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Sends the whole of `path` to every connection with tokio::io::copy from a
/// tokio::fs::File (reads on the blocking pool), then closes it.
async fn file_server(port: u16, path: String) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("listening port={}", port);
    loop {
        let (mut sock, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let path = path.clone();
        tokio::spawn(async move {
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{}: {}", path, e);
                    return;
                }
            };
            let _ = tokio::io::copy(&mut file, &mut sock).await;
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} <workload> <workers> [--quick] [--current-thread] [--port P]", args[0]);
        std::process::exit(2);
    }
    let workload = args[1].clone();
    let workers: usize = args[2].parse().expect("workers");
    let mut scale = 1usize;
    let mut current_thread = false;
    let mut port = 0u16;
    let mut file = String::new();
    let mut i = 3;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => scale = 10,
            "--current-thread" => current_thread = true,
            "--port" => {
                i += 1;
                port = args[i].parse().expect("port");
            }
            "--file" => {
                i += 1;
                file = args[i].clone();
            }
            a => {
                eprintln!("unknown argument {}", a);
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
    }
    .expect("runtime");
    let peer = if current_thread { "tokio-ct" } else { "tokio-mt" };
    let workers = if current_thread { 1 } else { workers };

    if workload == "file_server" {
        rt.block_on(async move { tokio::spawn(file_server(port, file)).await.unwrap() });
        return;
    }
    if workload == "echo_server" {
        rt.block_on(async move { tokio::spawn(echo_server(port)).await.unwrap() });
        return;
    }
    // Run the driver inside a spawned task so that its spawns go to a worker's
    // local queue (as weft::run does with main), not through the injection queue.
    let res = rt.block_on(async move {
        tokio::spawn(async move {
            match workload.as_str() {
                "spawn_many" => Some(spawn_many(scale).await),
                "yield_many" => Some(yield_many(scale).await),
                "ping_pong" => Some(ping_pong(scale).await),
                "chained_spawn" => Some(chained_spawn(scale).await),
                "timers" => Some(timers(scale).await),
                "idle_memory" => Some(idle_memory(scale).await),
                "fanout" => Some(fanout(scale).await),
                "mutex" => Some(mutex_bench(scale, workers).await),
                "mpsc" => Some(mpsc_bench(scale).await),
                "skynet" => Some(skynet(scale).await),
                "fib" => Some(fib(scale).await),
                _ => None,
            }
            .map(|r| (workload, r))
        })
        .await
        .unwrap()
    });
    match res {
        Some((w, r)) => println!(
            "peer={} workload={} workers={} seconds={:.6} ops_per_sec={:.1}{}{}",
            peer,
            w,
            workers,
            r.secs,
            r.ops / r.secs,
            if r.extra.is_empty() { "" } else { " " },
            r.extra
        ),
        None => {
            eprintln!("unknown workload");
            std::process::exit(2);
        }
    }
}
