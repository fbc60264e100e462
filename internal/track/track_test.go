package track_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/health"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
	"github.com/claimsvc/claimsvc/internal/track"
)

// fakeTB is a ThingsBoard with one device and no customer, counting the
// deletions of its claimingData.
type fakeTB struct {
	id      string
	mu      sync.Mutex
	deletes int
}

func (f *fakeTB) DeviceByName(context.Context, string) (track.Device, error) {
	return track.Device{ID: f.id}, nil
}
func (f *fakeTB) Device(context.Context, string) (track.Device, error) {
	return track.Device{ID: f.id}, nil
}
func (f *fakeTB) DeleteClaimingData(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return nil
}

func (f *fakeTB) deleted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deletes
}

// deliver leases the one pending claim and stores it delivered, expiring at
// expires, as the attribute sender would.
func deliver(t *testing.T, s *store.Store, devID string, expires time.Time) {
	t.Helper()
	jobs, err := s.Lease(t.Context(), 10, time.Minute, nil)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("lease: %d jobs, %v", len(jobs), err)
	}
	o := claim.OutcomeOf(jobs[0], claim.OutcomeDelivered, nil, 0)
	o.Receipt = claim.Receipt{DeviceID: devID, ExpiresAt: expires}
	if lost, err := s.Finish(t.Context(), []claim.Outcome{o}); err != nil || lost[0] != nil {
		t.Fatalf("finish: %v %v", lost, err)
	}
}

func attributeClaim(t *testing.T, s *store.Store, secret string) claim.Claim {
	t.Helper()
	sk, dur := claim.Secret(secret), int64(3_600_000)
	c, err := s.Create(t.Context(), claim.Request{Token: "ATTR_TOKEN_TRACK_01", SecretKey: &sk, DurationMs: &dur,
		Delivery: claim.DeliveryAttribute, DeviceName: "Thermostat R1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c.Claim
}

func runTracker(t *testing.T, s *store.Store, tb track.ThingsBoard) {
	t.Helper()
	tr := track.New(s, tb, track.Config{Every: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(), health.New(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitExpired(t *testing.T, s *store.Store, id uuid.UUID) claim.Claim {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := s.Get(t.Context(), id)
		if err == nil && c.Status == claim.StatusExpired {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %s: %s, want expired", id, c.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An expired attribute claim's claimingData is deleted in ThingsBoard.
func TestExpiredAttributeClaimClearsItsClaimingData(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	tb := &fakeTB{id: uuid.NewString()}
	a := attributeClaim(t, s, "first")
	deliver(t, s, tb.id, time.Now().Add(-time.Second))
	runTracker(t, s, tb)
	waitExpired(t, s, a.ID)
	if tb.deleted() != 1 {
		t.Fatalf("claimingData deleted %d times, want once", tb.deleted())
	}
}

// An attribute claim A expires before the tracker looks at it; the device is
// claimed again (B: A is no longer live) and B's claimingData written. When
// the tracker marks A expired, ThingsBoard's claimingData is B's: it must
// stay, or the customer cannot claim with B's secret.
func TestExpiringAnOldClaimLeavesTheNewClaimsClaimingData(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	tb := &fakeTB{id: uuid.NewString()}
	a := attributeClaim(t, s, "first")
	deliver(t, s, tb.id, time.Now().Add(-time.Second)) // expired, not looked at yet
	b := attributeClaim(t, s, "second")
	deliver(t, s, tb.id, time.Now().Add(time.Hour))
	runTracker(t, s, tb)
	got := waitExpired(t, s, a.ID)
	if n := tb.deleted(); n != 0 {
		t.Fatalf("claimingData deleted %d times while the newer claim is delivered", n)
	}
	if cb, _ := s.Get(t.Context(), b.ID); cb.Status != claim.StatusDelivered {
		t.Fatalf("the newer claim: %s", cb.Status)
	}
	if events, err := s.Events(t.Context(), a.ID); err != nil || len(events) == 0 {
		t.Fatalf("events: %v", err)
	} else if last := events[len(events)-1]; last.Detail == "" {
		t.Fatalf("the expiry says nothing: %+v (claim %+v)", last, got)
	}
}
