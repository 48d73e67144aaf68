// Go peer for weft's side-by-side benchmarks (issue 6).
// Usage: go_peer <workload> <workers> [--quick] [--port P] [--file F] [--cert FILE --key FILE]
// (tls_echo_server: the echo server over crypto/tls, with --cert and --key)
// Prints one line: peer=go workload=<w> workers=<n> seconds=<s> ops_per_sec=<x> [extra]
// Workload definitions are shared with bench/peers/* (see bench/README.md).
package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	secs  float64
	ops   float64
	extra string
}

func statusKiB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			fields := strings.Fields(line[len(key):])
			v, _ := strconv.ParseInt(fields[0], 10, 64)
			return v
		}
	}
	return 0
}

func spawnMany(scale int) result {
	n := 1_000_000 / scale
	var left atomic.Int64
	left.Store(int64(n))
	done := make(chan struct{})
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			if left.Add(-1) == 0 {
				close(done)
			}
		}()
	}
	<-done
	return result{time.Since(t0).Seconds(), float64(n), ""}
}

func yieldMany(scale int) result {
	tasks, yields := 1000, 1000/scale
	var wg sync.WaitGroup
	wg.Add(tasks)
	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		go func() {
			defer wg.Done()
			for j := 0; j < yields; j++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return result{time.Since(t0).Seconds(), float64(tasks * yields), ""}
}

// ping is one request: the value, a fresh one-shot channel for the reply and
// the channel that will carry the next request.
type ping struct {
	v     int
	reply chan int
	next  chan ping
}

func pingPong(scale int) result {
	rounds := 200_000 / scale
	cur := make(chan ping, 1)
	finished := make(chan struct{})
	t0 := time.Now()
	go func(in chan ping) {
		for i := 0; i < rounds; i++ {
			p := <-in
			p.reply <- p.v + 1
			in = p.next
		}
		close(finished)
	}(cur)
	for i := 0; i < rounds; i++ {
		next := make(chan ping, 1)
		reply := make(chan int, 1)
		cur <- ping{i, reply, next}
		cur = next
		if r := <-reply; r != i+1 {
			panic("bad reply")
		}
	}
	<-finished
	return result{time.Since(t0).Seconds(), float64(rounds), ""}
}

func chain(left int, done chan struct{}) {
	if left == 0 {
		close(done)
		return
	}
	go chain(left-1, done)
}

func chainedSpawn(scale int) result {
	depth := 100_000 / scale
	done := make(chan struct{})
	t0 := time.Now()
	go chain(depth, done)
	<-done
	return result{time.Since(t0).Seconds(), float64(depth), ""}
}

// splitmix64, seed 42: the same sleep durations in every peer.
type splitMix struct{ s uint64 }

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func timers(scale int) result {
	n := 100_000 / scale
	rng := splitMix{42}
	late := make([]float64, n)
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		d := time.Duration(1000+rng.next()%49_001) * time.Microsecond
		go func(i int, d time.Duration) {
			defer wg.Done()
			deadline := time.Now().Add(d)
			time.Sleep(d)
			late[i] = float64(time.Since(deadline).Nanoseconds()) / 1e3
		}(i, d)
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	sum, max := 0.0, 0.0
	for _, l := range late {
		if l < 0 {
			l = 0
		}
		sum += l
		if l > max {
			max = l
		}
	}
	return result{secs, float64(n), fmt.Sprintf("mean_late_us=%.1f max_late_us=%.1f", sum/float64(n), max)}
}

func idleMemory(scale int) result {
	n := 1_000_000 / scale
	gate := make(chan struct{})
	var parked atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	before := statusKiB("VmRSS:")
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			parked.Add(1)
			<-gate
			wg.Done()
		}()
	}
	for parked.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	peak := statusKiB("VmHWM:")
	close(gate)
	wg.Wait()
	perTask := float64(peak-before) * 1024 / float64(n)
	return result{time.Since(t0).Seconds(), float64(n), fmt.Sprintf("bytes_per_task=%.1f", perTask)}
}

func mixWork(seed uint64, iterations uint64) uint64 {
	x := seed
	for i := uint64(0); i < iterations; i++ {
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x ^= x >> 33
		x *= 0xc4ceb9fe1a85ec53
		x ^= x >> 33
		x += i
	}
	return x
}

func fanout(scale int) result {
	const tasks = 64
	iterations := uint64(2_000_000 / scale)
	results := make([]uint64, tasks)
	var wg sync.WaitGroup
	wg.Add(tasks)
	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		go func(i int) {
			defer wg.Done()
			results[i] = mixWork(uint64(i+1), iterations)
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, r := range results {
		sum += r
	}
	return result{time.Since(t0).Seconds(), tasks, fmt.Sprintf("checksum=%d", sum%1_000_003)}
}

// mutexBench: W = max(2, 2 x workers) goroutines x 100,000 lock/increment/unlock
// on one sync.Mutex (Go's idiomatic mutex: it parks the goroutine, not the
// thread, under contention); ops = total increments; the final count is checked.
func mutexBench(scale, workers int) result {
	tasks := 2 * workers
	if tasks < 2 {
		tasks = 2
	}
	iterations := 100_000 / scale
	var mu sync.Mutex
	count := 0
	var wg sync.WaitGroup
	wg.Add(tasks)
	t0 := time.Now()
	for t := 0; t < tasks; t++ {
		go func() {
			defer wg.Done()
			for i := 0; i < iterations; i++ {
				mu.Lock()
				count++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	mu.Lock()
	final := count
	mu.Unlock()
	if final != tasks*iterations {
		fmt.Fprintf(os.Stderr, "mutex: count %d != %d\n", final, tasks*iterations)
		os.Exit(3)
	}
	return result{secs, float64(tasks * iterations), fmt.Sprintf("tasks=%d", tasks)}
}

// mpscBench: 4 producers x 250,000 integers into one chan int64 of capacity
// 1024, drained by one consumer goroutine; ops = items received; the sum is checked.
func mpscBench(scale int) result {
	const producers = 4
	per := int64(250_000 / scale)
	total := producers * per
	ch := make(chan int64, 1024)
	sumc := make(chan int64, 1)
	t0 := time.Now()
	go func() {
		var sum int64
		for i := int64(0); i < total; i++ {
			sum += <-ch
		}
		sumc <- sum
	}()
	for p := int64(0); p < producers; p++ {
		go func(p int64) {
			for i := int64(0); i < per; i++ {
				ch <- p*per + i
			}
		}(p)
	}
	sum := <-sumc
	secs := time.Since(t0).Seconds()
	if sum != total*(total-1)/2 {
		fmt.Fprintf(os.Stderr, "mpsc: sum %d != %d\n", sum, total*(total-1)/2)
		os.Exit(3)
	}
	return result{secs, float64(total), ""}
}

// skynetNode: a node of the 10-ary skynet tree. A leaf sends its number; an
// inner node starts one goroutine per child, each with its own result
// channel, then receives the 10 results in order and sends their sum.
func skynetNode(out chan<- int64, num, size int64) {
	if size == 1 {
		out <- num
		return
	}
	step := size / 10
	var chans [10]chan int64
	for i := int64(0); i < 10; i++ {
		chans[i] = make(chan int64, 1)
		go skynetNode(chans[i], num+i*step, step)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-chans[i]
	}
	out <- sum
}

// skynet: 1,000,000 leaves (1,111,111 goroutines counting the root, which
// runs on the main goroutine); ops = goroutines started; the sum is checked;
// peak RSS (VmHWM) reported.
func skynet(scale int) result {
	leaves := int64(1_000_000)
	if scale != 1 {
		leaves = 100_000
	}
	tasks := int64(0)
	for level := int64(1); level <= leaves; level *= 10 {
		tasks += level
	}
	root := make(chan int64, 1)
	t0 := time.Now()
	skynetNode(root, 0, leaves)
	sum := <-root
	secs := time.Since(t0).Seconds()
	if sum != leaves*(leaves-1)/2 {
		fmt.Fprintf(os.Stderr, "skynet: sum %d != %d\n", sum, leaves*(leaves-1)/2)
		os.Exit(3)
	}
	return result{secs, float64(tasks - 1), fmt.Sprintf("tasks=%d peak_rss_kib=%d", tasks, statusKiB("VmHWM:"))}
}

// fibNode: fib(n) with a goroutine per call: a call n >= 2 starts fib(n-1)
// and fib(n-2) as goroutines and receives their results in that order.
func fibNode(out chan<- int64, n int) {
	if n < 2 {
		out <- int64(n)
		return
	}
	a, b := make(chan int64, 1), make(chan int64, 1)
	go fibNode(a, n-1)
	go fibNode(b, n-2)
	x := <-a
	y := <-b
	out <- x + y
}

// fib: fib(30); ops = calls - 1 (the root call runs on the main goroutine).
func fib(scale int) result {
	n := 30
	if scale != 1 {
		n = 25
	}
	a, b := int64(1), int64(1) // fib(1), fib(2); after the loop b = fib(n+1); calls(n) = 2 fib(n+1) - 1
	for i := 2; i <= n; i++ {
		a, b = b, a+b
	}
	calls := 2*b - 1
	root := make(chan int64, 1)
	t0 := time.Now()
	fibNode(root, n)
	v := <-root
	secs := time.Since(t0).Seconds()
	return result{secs, float64(calls - 1), fmt.Sprintf("fib=%d peak_rss_kib=%d", v, statusKiB("VmHWM:"))}
}

func echoServer(port int) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening port=%d\n", port)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			c.(*net.TCPConn).SetNoDelay(true)
			buf := make([]byte, 16*1024)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if err != io.EOF {
						return
					}
					return
				}
			}
		}(c)
	}
}

// fileServer sends the whole of `path` to every connection with io.Copy
// (TCPConn.ReadFrom: sendfile(2) from an *os.File on Linux), then closes it.
func fileServer(port int, path string) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening port=%d\n", port)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			f, err := os.Open(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			defer f.Close()
			io.Copy(c, f)
		}(c)
	}
}

// tlsEchoServer is echoServer over crypto/tls with its defaults (the
// handshake runs on the connection's first Read).
func tlsEchoServer(port int, certFile, keyFile string) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening port=%d (tls)\n", port)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			c.(*net.TCPConn).SetNoDelay(true)
			t := tls.Server(c, cfg)
			defer t.Close()
			buf := make([]byte, 16*1024)
			for {
				n, err := t.Read(buf)
				if n > 0 {
					if _, werr := t.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintf(os.Stderr, "usage: %s <workload> <workers> [--quick] [--port P]\n", os.Args[0])
		os.Exit(2)
	}
	workload := os.Args[1]
	workers, _ := strconv.Atoi(os.Args[2])
	scale, port, file := 1, 0, ""
	certFile, keyFile := "", ""
	for i := 3; i < len(os.Args); i++ {
		switch os.Args[i] {
		case "--quick":
			scale = 10
		case "--port":
			i++
			port, _ = strconv.Atoi(os.Args[i])
		case "--file":
			i++
			file = os.Args[i]
		case "--cert":
			i++
			certFile = os.Args[i]
		case "--key":
			i++
			keyFile = os.Args[i]
		default:
			fmt.Fprintf(os.Stderr, "unknown argument %s\n", os.Args[i])
			os.Exit(2)
		}
	}
	runtime.GOMAXPROCS(workers)
	var r result
	switch workload {
	case "spawn_many":
		r = spawnMany(scale)
	case "yield_many":
		r = yieldMany(scale)
	case "ping_pong":
		r = pingPong(scale)
	case "chained_spawn":
		r = chainedSpawn(scale)
	case "timers":
		r = timers(scale)
	case "idle_memory":
		r = idleMemory(scale)
	case "fanout":
		r = fanout(scale)
	case "mutex":
		r = mutexBench(scale, workers)
	case "mpsc":
		r = mpscBench(scale)
	case "skynet":
		r = skynet(scale)
	case "fib":
		r = fib(scale)
	case "echo_server":
		echoServer(port)
		return
	case "file_server":
		fileServer(port, file)
		return
	case "tls_echo_server":
		tlsEchoServer(port, certFile, keyFile)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown workload %s\n", workload)
		os.Exit(2)
	}
	extra := ""
	if r.extra != "" {
		extra = " " + r.extra
	}
	fmt.Printf("peer=go workload=%s workers=%d seconds=%.6f ops_per_sec=%.1f%s\n", workload, workers, r.secs, r.ops/r.secs, extra)
}
