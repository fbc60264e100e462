package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what wrk measured.
type wrkResult struct {
	rate, p99 float64 // requests/s answered 2xx, ms
}

// wrkScript makes every request a claim for a new device (a counter per
// thread, the thread's id in the token), counts non-2xx answers, and prints
// the 99th percentile in milliseconds.
const wrkScript = `local counter, prefix, bad = 0, "", 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1] .. string.format("%02d", id)
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/devices/" .. prefix .. string.format("%010d", counter) .. "/claim",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer ` + benchAPIKey + `"},
    '{"secretKey":"bench-secret","durationMs":60000}')
end
function response(status, headers, body)
  if status ~= 202 then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("claimload-p99-ms %.3f\n", latency:percentile(99) / 1000))
end
`

// intakeWrk drives claimsvc's intake with wrk, when it is installed, so that
// the figure does not depend on one load generator. nil, nil: no wrk.
func (b *bench) intakeWrk(ctx context.Context, svc *service, conns int, prefix string) (*wrkResult, error) {
	bin := wrkBinary()
	if bin == "" { // not an error of the benchmark: the row is left out
		b.progress("wrk is not installed (apt-get install wrk): no wrk row")
		return nil, nil
	}
	script := filepath.Join(b.tmp, "claim.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return nil, err
	}
	secs := max(1, int(b.plan.intakeFor/time.Second))
	cmd := exec.CommandContext(ctx, bin, "-t", "2", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", secs),
		"--timeout", "10s", "-s", script, svc.base, "--", prefix)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	text := string(out)
	rate := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindStringSubmatch(text)
	p99 := regexp.MustCompile(`claimload-p99-ms ([0-9.]+)`).FindStringSubmatch(text)
	if rate == nil || p99 == nil {
		return nil, fmt.Errorf("cannot read wrk's output:\n%s", text)
	}
	if strings.Contains(text, "Non-2xx or 3xx responses") {
		return nil, fmt.Errorf("wrk got errors:\n%s", text)
	}
	r, _ := strconv.ParseFloat(rate[1], 64)
	p, _ := strconv.ParseFloat(p99[1], 64)
	return &wrkResult{rate: r, p99: p}, nil
}

// wrkBinary is wrk's path, or "" when it is not installed.
func wrkBinary() string {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return ""
	}
	return bin
}
