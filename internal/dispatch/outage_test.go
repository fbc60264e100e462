package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	"github.com/claimsvc/claimsvc/internal/health"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
)

var errDown = claim.Failure(claim.FailUnreachable, errors.New("connection refused"))

// fakeDependency is a sender and its probe whose dependency can be switched
// off and on.
type fakeDependency struct {
	down   chan bool // buffered 1: the current state
	probes chan struct{}
}

func newFake() *fakeDependency {
	f := &fakeDependency{down: make(chan bool, 1), probes: make(chan struct{}, 1000)}
	f.down <- false
	return f
}

func (f *fakeDependency) isDown() bool  { d := <-f.down; f.down <- d; return d }
func (f *fakeDependency) set(down bool) { <-f.down; f.down <- down }

func (f *fakeDependency) Send(context.Context, claim.Job) (claim.Receipt, error) {
	if f.isDown() {
		return claim.Receipt{}, errDown
	}
	return claim.Receipt{}, nil
}

func (f *fakeDependency) Probe(context.Context) error {
	f.probes <- struct{}{}
	if f.isDown() {
		return errDown
	}
	return nil
}

// One breaker per dependency: while ThingsBoard's HTTP APIs do not answer,
// their claims are held (one attempt for the claim that found out, none for
// the claims that came after, only the probe touches the dependency), MQTT
// claims go on, and when the probe gets an answer everything held goes out.
func TestBreakerHoldsOneDependencyOnly(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := mqtttest.Start(t, "127.0.0.1:0", nil)
	rest := newFake()
	board := health.New(nil)
	cfg := fastConfig()
	cfg.ProbeInterval, cfg.Health = 100*time.Millisecond, board
	pub := publisher(t, b.URL())
	cfg.Dependencies = []dispatch.Dependency{
		{Name: health.MQTT, Deliveries: []claim.Delivery{claim.DeliveryMQTT}, Probe: pub},
		{Name: health.REST, Deliveries: []claim.Delivery{claim.DeliveryHTTP}, Probe: rest},
	}
	d, _ := run(t, s, dispatch.Senders{claim.DeliveryMQTT: pub, claim.DeliveryHTTP: rest}, cfg, metrics.New())

	rest.set(true)
	first := httpClaim(t, s, d, "HTTP_TOKEN_000001")
	waitFor(t, func() bool { st, ok := board.Get(health.REST); return ok && !st.Up })
	waitFor(t, func() bool { c, _ := s.Get(t.Context(), first.ID); return c.Attempts == 1 && c.LastError != "" })
	var held []claim.Claim
	for i := range 5 {
		held = append(held, httpClaim(t, s, d, "HTTP_TOKEN_00001"+string(rune('0'+i))))
	}
	mq := create(t, s, "MQTT_TOKEN_000001", "k", 1000)
	waitStatus(t, s, mq.ID, claim.StatusDelivered, 5*time.Second) // the other dependency goes on
	time.Sleep(500 * time.Millisecond)                            // several probe intervals
	for _, c := range append(held, first) {
		got, _ := s.Get(t.Context(), c.ID)
		if got.Status != claim.StatusPending || got.Attempts > 1 || (got.ID != first.ID && got.Attempts != 0) {
			t.Fatalf("held claim %s: %s after %d attempts, want pending and unsent", got.ID, got.Status, got.Attempts)
		}
	}
	if n := len(rest.probes); n < 2 {
		t.Fatalf("%d probes in 500 ms at 100 ms", n)
	}
	if got, _ := s.Get(t.Context(), first.ID); !strings.Contains(got.LastError, "held: thingsboard_rest unreachable since") {
		t.Fatalf("the first claim's lastError %q does not say it is held", got.LastError)
	}

	rest.set(false)
	for _, c := range append(held, first) {
		got := waitStatus(t, s, c.ID, claim.StatusDelivered, 5*time.Second)
		if got.ID != first.ID && got.Attempts != 1 {
			t.Fatalf("claim %s: %d attempts, want 1", got.ID, got.Attempts)
		}
	}
	if st, _ := board.Get(health.REST); !st.Up {
		t.Fatal("the dependency still shows down")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// busySender delivers after signalling, taking d.
type busySender struct {
	started chan struct{}
	d       time.Duration
}

func (b busySender) Send(context.Context, claim.Job) (claim.Receipt, error) {
	b.started <- struct{}{}
	time.Sleep(b.d)
	return claim.Receipt{}, nil
}

// A half-open breaker's trial claim that waited in memory too long is handed
// back without an attempt; its trial slot comes back with it. (It was lost:
// the breaker never got its answers, never closed, and nothing more of its
// deliveries was leased until a restart.)
func TestTrialClaimHandedBackKeepsTheBreakerWorking(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	rest := newFake()
	cfg := fastConfig()
	cfg.Workers, cfg.LeaseAhead = 1, 1
	cfg.LeaseFor, cfg.AttemptMax = 2*time.Second, 1500*time.Millisecond
	cfg.ProbeInterval, cfg.Health = 100*time.Millisecond, health.New(nil)
	cfg.Dependencies = []dispatch.Dependency{{Name: health.REST, Deliveries: []claim.Delivery{claim.DeliveryHTTP}, Probe: rest}}
	busy := busySender{started: make(chan struct{}, 10), d: 1200 * time.Millisecond}
	d, _ := run(t, s, dispatch.Senders{claim.DeliveryMQTT: busy, claim.DeliveryHTTP: rest}, cfg, metrics.New())

	// The REST dependency does not answer: the breaker opens on the first claim.
	rest.set(true)
	first := httpClaim(t, s, d, "HTTP_TOKEN_TRIAL_00")
	waitFor(t, func() bool { c, _ := s.Get(t.Context(), first.ID); return c.Attempts == 1 && c.LastError != "" })
	// The only worker is busy with a slow MQTT claim (a stall, a slow attempt).
	create(t, s, "MQTT_TOKEN_TRIAL_00", "k", 1000)
	d.Wake()
	<-busy.started
	// The dependency answers again: the probe half-opens the breaker, and the
	// trial claim waits behind the busy worker past AttemptMax.
	rest.set(false)
	waitStatus(t, s, first.ID, claim.StatusDelivered, 5*time.Second)
	for i := range 5 {
		c := httpClaim(t, s, d, fmt.Sprintf("HTTP_TOKEN_TRIAL_%02d", i+1))
		waitStatus(t, s, c.ID, claim.StatusDelivered, 5*time.Second)
	}
}

// slowREST takes longer than any lease unless its context ends first.
type slowREST struct{ deadline chan time.Time }

func (s slowREST) Send(ctx context.Context, _ claim.Job) (claim.Receipt, error) {
	dl, _ := ctx.Deadline()
	s.deadline <- dl
	<-ctx.Done()
	return claim.Receipt{}, claim.Failure(claim.FailTransient, ctx.Err())
}

// An attempt ends before its lease does, whatever the sender would take (a
// REST delivery retries several requests): no other dispatcher can send the
// claim while this one still is.
func TestAttemptEndsBeforeItsLease(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	slow := slowREST{deadline: make(chan time.Time, 10)}
	cfg := fastConfig()
	cfg.LeaseFor, cfg.AttemptMax = 3*time.Second, time.Second
	d, _ := run(t, s, dispatch.Senders{claim.DeliveryMQTT: slow}, cfg, metrics.New())
	leased := time.Now()
	c := create(t, s, "DEVICE_TOKEN_LEASE_END", "k", 1000)
	d.Wake()
	var dl time.Time
	select {
	case dl = <-slow.deadline:
	case <-time.After(5 * time.Second):
		t.Fatal("the claim was never sent")
	}
	if dl.IsZero() || dl.After(leased.Add(cfg.LeaseFor)) {
		t.Fatalf("the attempt's deadline %v is not before its lease ends (leased at %v for %s)", dl, leased, cfg.LeaseFor)
	}
	waitFor(t, func() bool { got, _ := s.Get(t.Context(), c.ID); return got.Attempts == 1 && got.LastError != "" })
}
