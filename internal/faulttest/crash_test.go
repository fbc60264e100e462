package faulttest

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// TestCrashSafety SIGKILLs `claimsvc serve` at random moments under load and
// restarts it: every claim answered 2xx must reach the broker (duplicates are
// allowed by at-least-once delivery, and counted).
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	rec := startRecorder(t)
	rec.setAckDelay(50 * time.Millisecond) // so that kills catch attempts under way
	svc := startService(t, baseEnv(pgtest.NewDatabase(t), rec.url()))
	kills := pick(5, 25)
	ld := newLoad(t, "CRASH", func() []string { return []string{svc.url()} })
	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { ld.run(ctx, 4, 15*time.Millisecond, time.Minute); close(loadDone) }()

	start := time.Now()
	var downtime time.Duration
	for range kills {
		time.Sleep(300*time.Millisecond + rand.N(pick(1200*time.Millisecond, 4*time.Second)))
		svc.kill()
		t0 := time.Now()
		svc.start()
		downtime += time.Since(t0)
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	<-loadDone
	ld.check()
	accepted, statuses := ld.snapshot()
	if len(accepted) < 50 {
		t.Fatalf("only %d claims accepted: the load did not run (statuses %v)", len(accepted), statuses)
	}
	// Leases of a killed process expire after CLAIMSVC_LEASE_DURATION (8 s).
	missing := waitDelivered(accepted, rec.deliveries, 60*time.Second)
	dups := duplicates(accepted, rec.deliveries())
	t.Logf("figures: kills=%d survived=%d accepted=%d lost=%d duplicates=%d restart_avg=%s run=%s statuses=%v overlaps=%d",
		kills, kills, len(accepted), len(missing), dups, (downtime / time.Duration(kills)).Round(time.Millisecond),
		time.Since(start).Round(time.Second), statuses, rec.overlapCount())
	if len(missing) > 0 {
		t.Fatalf("%d of %d accepted claims never reached the broker, e.g. %s\nservice log:\n%s",
			len(missing), len(accepted), missing[0], tail(svc.out.String(), 4000))
	}
}
