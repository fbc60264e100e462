package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The CPU meter reads this process's own time from /proc, and a run's cost
// per claim is split by part and divided by the claims.
func TestCPUMeter(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs Linux's /proc")
	}
	b := &bench{runID: "test"}
	// Spin until this process has used 200 ms of CPU (not of wall time: on a
	// busy machine a 200 ms loop may get half of that), 10 s at most.
	spin := func() int {
		start, deadline := cpuTime(t), time.Now().Add(10*time.Second)
		for cpuTime(t)-start < 200*time.Millisecond && time.Now().Before(deadline) {
			for range 100_000 {
			}
		}
		return 1000
	}
	n, cost := cpuMeter(b, 0, spin)
	if cost.self < 100*time.Millisecond || cost.self > 2*time.Second {
		t.Fatalf("a 200 ms busy loop cost %s of this process's CPU", cost.self)
	}
	if cost.machineN < 0.5 || cost.machineBusy <= 0 || cost.machineBusy > 1.0001 {
		t.Fatalf("machine: %.2f cores, %.2f busy", cost.machineN, cost.machineBusy)
	}
	_, _, _, gen, total := cost.perClaim(n)
	if gen < 100 || total < gen {
		t.Fatalf("per claim: load generator %.0f µs, total %.0f µs", gen, total)
	}
	if d := cost.describe(n); !strings.Contains(d, "load generator") || !strings.Contains(d, "busy") {
		t.Fatalf("description: %s", d)
	}
}

// A process that started between the samples counts whole; one that exited
// is missing; claimsvc is named by its pid whatever its binary is called.
func TestCPUSince(t *testing.T) {
	t0 := time.Now()
	before := cpuSample{at: t0, procs: map[int]time.Duration{1: time.Second, 2: time.Second},
		byName: map[int]string{1: "claimsvc", 2: "postgres"}, busy: 10 * time.Second, total: 20 * time.Second}
	after := cpuSample{at: t0.Add(time.Second), procs: map[int]time.Duration{1: 2 * time.Second, 3: 500 * time.Millisecond},
		byName: map[int]string{1: "claimsvc", 3: "postgres"}, busy: 11 * time.Second, total: 22 * time.Second}
	c := after.since(before)
	if c.byName["claimsvc"] != time.Second || c.byName["postgres"] != 500*time.Millisecond {
		t.Fatalf("by part: %v", c.byName)
	}
	if c.machineBusy != 0.5 || c.machineN != 2 {
		t.Fatalf("machine: %.2f busy on %.2f cores", c.machineBusy, c.machineN)
	}
	svc, pg, _, _, total := c.perClaim(1000)
	if svc != 1000 || pg != 500 || total != 1500 {
		t.Fatalf("per claim: claimsvc %.0f, PostgreSQL %.0f, total %.0f µs", svc, pg, total)
	}
}

// cpuTime is the CPU this process has used (user + system).
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
