package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// service is one `claimsvc serve` process started by the benchmark: a
// separate process, so that its resident memory and goroutines are its own.
type service struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	pprof   string // http://127.0.0.1:PORT of its pprof listener, with --profile
	started time.Time
	exited  chan struct{}
	logPath string
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startService runs the claimsvc binary with the benchmark's settings plus
// extra flags, and waits until /readyz answers.
func (b *bench) startService(ctx context.Context, name, mqttURL string, extra ...string) (*service, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve",
		"--http-addr=127.0.0.1:" + strconv.Itoa(port),
		"--mqtt-url=" + mqttURL,
		"--log-format=json",
		"--shutdown-timeout=4s",
	}, extra...)
	args = append(args, b.serviceFlags...)
	pprofBase := ""
	if b.opts.profileDir != "" {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--pprof-addr=127.0.0.1:"+strconv.Itoa(pp))
		pprofBase = "http://127.0.0.1:" + strconv.Itoa(pp)
	}
	logPath := filepath.Join(b.tmp, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.opts.claimsvc, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = b.serviceEnv() // secrets and the API key's digest; every other setting comes from the flags above
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", b.opts.claimsvc, err)
	}
	s := &service{cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), started: time.Now(), exited: make(chan struct{}), logPath: logPath, pprof: pprofBase}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("claimsvc (%s) not ready within 30 s; its log: %s", name, logPath)
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("claimsvc (%s) exited at start; its log: %s\n%s", name, logPath, tail(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
}

// pid is claimsvc's process id.
func (s *service) pid() int { return s.cmd.Process.Pid }

// stop asks claimsvc to shut down (SIGTERM) and kills it if it lingers.
func (s *service) stop() {
	if s == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// memory reads the process's peak and current resident set (VmHWM, VmRSS), in MB.
func (s *service) memory() (peak, now float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmHWM" {
			peak = kb / 1024
		} else {
			now = kb / 1024
		}
	}
	return peak, now, sc.Err()
}

// metric reads one unlabelled metric from /metrics.
func (s *service) metric(name string) (float64, error) {
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.Join(sc.Err(), fmt.Errorf("no metric %s", name))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// blackhole is a TCP listener that accepts connections and never answers:
// claimsvc's deliveries hang in CONNECT, so the intake figures measure
// intake alone (the dispatcher holds its workers' leases and stays idle).
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &blackhole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			if len(h.conns) >= 1024 { // bounded: claimsvc opens one per worker
				c.Close()
			} else {
				h.conns = append(h.conns, c)
			}
			h.mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return h, nil
}

func (h *blackhole) url() string { return "tcp://" + h.ln.Addr().String() }

func (h *blackhole) close() {
	h.ln.Close()
	<-h.done
	h.mu.Lock()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
}

// profile records a CPU profile of the service for d into the profile
// directory (with --profile); wait blocks until it is written.
func (b *bench) profile(s *service, name string, d time.Duration) (wait func()) {
	if s.pprof == "" || d < time.Second {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.pprof, int(d.Seconds())))
		if err != nil {
			b.progress("profile %s: %v", name, err)
			return
		}
		defer res.Body.Close()
		path := filepath.Join(b.opts.profileDir, name+".pprof")
		f, err := os.Create(path)
		if err != nil {
			b.progress("profile %s: %v", name, err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, res.Body); err == nil {
			b.progress("CPU profile of claimsvc: %s (go tool pprof -top %s %s)", path, b.opts.claimsvc, path)
		}
	}()
	return func() { <-done }
}
