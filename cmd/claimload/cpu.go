package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// CPU accounting: what a run cost each part of the machine, from /proc. It
// answers "what bounds this figure": on two cores shared by the load
// generator, claimsvc, PostgreSQL and the broker, a figure is bounded by CPU
// when the machine is busy and by waiting when it is not, and the cost per
// claim of each part says where the CPU went.

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go supports.
const clockTick = 100

// cpuSample is one reading of the CPU times of interest.
type cpuSample struct {
	at          time.Time
	self        time.Duration         // this process: the load generator and the pgx baseline
	procs       map[int]time.Duration // per pid, the processes named in byName
	byName      map[int]string        // pid → claimsvc, postgres or mosquitto
	busy, total time.Duration         // the machine, from /proc/stat
}

// ours tells which processes a sample keeps besides claimsvc's: the broker,
// and of PostgreSQL's those that work for the benchmark's database (their
// process title names it) and the shared ones every commit needs (WAL
// writer, checkpointer, background writer, autovacuum). Backends of other
// databases (another program's tests on a shared machine) are left out.
func (b *bench) ours(pid int, name string) bool {
	switch name {
	case "mosquitto":
		return true
	case "postgres":
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return false
		}
		for _, part := range []string{" claimsvc_bench_" + b.runID + " ", "walwriter", "checkpointer", "background writer", "autovacuum"} {
			if bytes.Contains(title, []byte(part)) {
				return true
			}
		}
	}
	return false
}

// readCPU samples the machine; svc is claimsvc's process (0: none running).
func (b *bench) readCPU(svc int) cpuSample {
	s := cpuSample{at: time.Now(), procs: map[int]time.Duration{}, byName: map[int]string{}}
	if d, _, ok := procCPU("/proc/self/stat"); ok {
		s.self = d
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil || pid == os.Getpid() {
			continue
		}
		d, name, ok := procCPU(dir + "/stat")
		if pid == svc {
			name = "claimsvc" // whatever its binary is called
		}
		if ok && (pid == svc || b.ours(pid, name)) {
			s.procs[pid], s.byName[pid] = d, name
		}
	}
	s.busy, s.total = machineCPU()
	return s
}

// procCPU reads a process's user+system time and command name from its
// /proc/PID/stat.
func procCPU(path string) (time.Duration, string, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, "", false
	}
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return 0, "", false
	}
	name := string(raw[open+1 : end])
	fields := bytes.Fields(raw[end+1:])
	// After the name: state(0) ppid … utime(11) stime(12), counting from state.
	if len(fields) < 13 {
		return 0, "", false
	}
	ut, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, "", false
	}
	return ticks(ut + st), name, true
}

// machineCPU reads the whole machine's busy and total CPU time.
func machineCPU() (busy, total time.Duration) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	fields := bytes.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || i >= 8 {
			break
		}
		total += ticks(v)
		if i != 3 && i != 4 { // idle, iowait
			busy += ticks(v)
		}
	}
	return busy, total
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// cpuCost is what happened between two samples.
type cpuCost struct {
	wall                  time.Duration
	self                  time.Duration
	byName                map[string]time.Duration
	machineBusy, machineN float64 // busy share of the machine, and its cores
}

// since is the CPU used from earlier to s. A process that exited in between
// is missing; one that started counts whole.
func (s cpuSample) since(earlier cpuSample) cpuCost {
	c := cpuCost{wall: s.at.Sub(earlier.at), self: s.self - earlier.self, byName: map[string]time.Duration{}}
	for pid, d := range s.procs {
		c.byName[s.byName[pid]] += d - earlier.procs[pid]
	}
	if dt := s.total - earlier.total; dt > 0 {
		c.machineBusy = float64(s.busy-earlier.busy) / float64(dt)
		c.machineN = float64(dt) / float64(c.wall)
	}
	return c
}

// perClaim is the CPU per claim of each part, in µs, for n claims.
func (c cpuCost) perClaim(n int) (svc, pg, broker, gen, total float64) {
	if n == 0 {
		return
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	svc, pg, broker, gen = us(c.byName["claimsvc"]), us(c.byName["postgres"]), us(c.byName["mosquitto"]), us(c.self)
	return svc, pg, broker, gen, svc + pg + broker + gen
}

// describe says in one line where the CPU of n claims went, and how busy the
// machine was: "CPU per claim 412 µs (claimsvc 160, PostgreSQL 190, …); machine 97% busy".
func (c cpuCost) describe(n int) string {
	svc, pg, broker, gen, total := c.perClaim(n)
	s := fmt.Sprintf("CPU per claim %.0f µs (", total)
	if svc > 0 {
		s += fmt.Sprintf("claimsvc %.0f, ", svc)
	}
	s += fmt.Sprintf("PostgreSQL %.0f, ", pg)
	if broker > 0 {
		s += fmt.Sprintf("Mosquitto %.0f, ", broker)
	}
	return s + fmt.Sprintf("load generator %.0f); machine %.0f%% busy", gen, 100*c.machineBusy)
}

// cpuMeter measures the CPU cost of f; svc is claimsvc's pid, or 0.
func cpuMeter[T any](b *bench, svc int, f func() T) (T, cpuCost) {
	before := b.readCPU(svc)
	v := f()
	return v, b.readCPU(svc).since(before)
}

// addCPU adds the row of CPU per claim for a figure, ours against its
// baseline's, with the split in the note.
func (b *bench) addCPU(figure string, ours cpuCost, n int, base cpuCost, baseN int) {
	_, _, _, _, o := ours.perClaim(n)
	_, _, _, _, bs := base.perClaim(baseN)
	b.add(row{figure: figure, unit: "CPU µs per claim", ours: o, base: bs,
		note: "claimsvc: " + ours.describe(n) + "; baseline: " + base.describe(baseN)})
}
