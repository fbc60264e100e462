package dispatch

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

// leaseN stores n claims and leases them all.
func leaseN(t *testing.T, s *store.Store, n int) []claim.Job {
	t.Helper()
	for range n {
		sk, dur := claim.Secret("k"), int64(1000)
		if _, err := s.Create(t.Context(), claim.Request{Token: claim.Token(uuid.NewString()), SecretKey: &sk, DurationMs: &dur}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := s.Lease(t.Context(), n, time.Minute, nil)
	if err != nil || len(jobs) != n {
		t.Fatalf("leased %d of %d: %v", len(jobs), n, err)
	}
	return jobs
}

func statusOf(t *testing.T, s *store.Store, id uuid.UUID) claim.Status {
	t.Helper()
	c, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Status
}

// Outcomes queued together are stored by one statement; each is fenced by
// its own lease, and only those stored are announced (landed).
func TestReporterBatchesAndFencesEachOutcome(t *testing.T) {
	t.Parallel()
	s := storetest.New(t, nil)
	jobs := leaseN(t, s, 8)
	r := newReporter(s, slog.New(slog.DiscardHandler), 8)
	var landed atomic.Int32
	until := time.Now().Add(time.Minute)
	stale := jobs[7]
	stale.Lease = uuid.New() // an older lease of that claim, say
	for _, j := range append(jobs[:7:7], stale) {
		r.add(report{out: claim.OutcomeOf(j, claim.OutcomeDelivered, nil, 0), leaseEnd: until, landed: func() { landed.Add(1) }})
	}
	r.close()
	r.run(t.Context()) // returns once the queue is stored

	if n := landed.Load(); n != 7 {
		t.Fatalf("%d outcomes announced, want 7 (the stale one is refused)", n)
	}
	for _, j := range jobs[:7] {
		if st := statusOf(t, s, j.ID); st != claim.StatusDelivered {
			t.Fatalf("claim %s: %s, want delivered", j.ID, st)
		}
	}
	if st := statusOf(t, s, stale.ID); st != claim.StatusPending {
		t.Fatalf("fenced claim: %s, want pending", st)
	}
	var xids int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(DISTINCT xmin::text) FROM claims WHERE status = 'delivered'`).Scan(&xids); err != nil || xids != 1 {
		t.Fatalf("stored by %d transactions (%v), want 1", xids, err)
	}
}

// A full queue holds workers back until the reporter catches up.
func TestReporterQueueIsBounded(t *testing.T) {
	t.Parallel()
	s := storetest.New(t, nil)
	jobs := leaseN(t, s, 3)
	r := newReporter(s, slog.New(slog.DiscardHandler), 2)
	until := time.Now().Add(time.Minute)
	r.add(report{out: claim.OutcomeOf(jobs[0], claim.OutcomeDelivered, nil, 0), leaseEnd: until})
	r.add(report{out: claim.OutcomeOf(jobs[1], claim.OutcomeDelivered, nil, 0), leaseEnd: until})
	added := make(chan struct{})
	go func() {
		r.add(report{out: claim.OutcomeOf(jobs[2], claim.OutcomeDelivered, nil, 0), leaseEnd: until})
		close(added)
	}()
	select {
	case <-added:
		t.Fatal("a third outcome was queued beyond the bound of 2")
	case <-time.After(200 * time.Millisecond):
	}
	done := make(chan struct{})
	go func() { r.run(context.Background()); close(done) }()
	select {
	case <-added:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting worker was never let through")
	}
	r.close()
	<-done
	for _, j := range jobs {
		if st := statusOf(t, s, j.ID); st != claim.StatusDelivered {
			t.Fatalf("claim %s: %s, want delivered", j.ID, st)
		}
	}
}

// While the database is away, an outcome is retried until its lease would
// run out, then given up (the claim is sent again after the lease expires).
func TestReporterGivesUpAtLeaseEnd(t *testing.T) {
	t.Parallel()
	s := storetest.New(t, nil)
	jobs := leaseN(t, s, 1)
	s.Close() // the database is gone for this store: every Finish fails
	r := newReporter(s, slog.New(slog.DiscardHandler), 4)
	var landed atomic.Bool
	r.add(report{out: claim.OutcomeOf(jobs[0], claim.OutcomeDelivered, nil, 0), leaseEnd: time.Now().Add(time.Second), landed: func() { landed.Store(true) }})
	r.close()
	start := time.Now()
	r.run(t.Context())
	if took := time.Since(start); took < 500*time.Millisecond || took > 3*time.Second || landed.Load() {
		t.Fatalf("gave up after %s (landed %v); want retries (0.1, 0.3, 0.7 s) until the next would pass the lease end (1 s)", took, landed.Load())
	}
}
