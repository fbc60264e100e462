package dispatch_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

func newStore(t *testing.T) *store.Store { return storetest.New(t, nil) }

func fastConfig() dispatch.Config {
	return dispatch.Config{Workers: 4, PollInterval: 50 * time.Millisecond, BackoffMin: 50 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, ShutdownGrace: 2 * time.Second, ReapInterval: 100 * time.Millisecond}
}

// start runs a dispatcher of MQTT claims until the test ends or stop is
// called.
func start(t *testing.T, s *store.Store, sender dispatch.Sender, cfg dispatch.Config) (stop func()) {
	t.Helper()
	_, stop = run(t, s, dispatch.Senders{claim.DeliveryMQTT: sender}, cfg, metrics.New())
	return stop
}

// run runs a dispatcher with these senders until the test ends or stop is
// called.
func run(t *testing.T, s *store.Store, senders dispatch.Senders, cfg dispatch.Config, m *metrics.Metrics) (d *dispatch.Dispatcher, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d = dispatch.New(s, senders, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), m, nil)
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return d, stop
}

// httpClaim stores a claim for delivery http and wakes d.
func httpClaim(t *testing.T, s *store.Store, d *dispatch.Dispatcher, token string) claim.Claim {
	t.Helper()
	sk := claim.Secret("k")
	c, err := s.Create(t.Context(), claim.Request{Token: claim.Token(token), SecretKey: &sk, Delivery: claim.DeliveryHTTP}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d.Wake()
	return c.Claim
}

func publisher(t *testing.T, url string) *mqtt.Publisher {
	p, err := mqtt.New(mqtt.Config{URL: url, ConnectTimeout: time.Second, AckTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func create(t *testing.T, s *store.Store, token, secret string, dur int64) claim.Claim {
	t.Helper()
	sk := claim.Secret(secret)
	r := claim.Request{Token: claim.Token(token), SecretKey: &sk, DurationMs: &dur}
	c, err := s.Create(t.Context(), r, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c.Claim
}

// waitStatus polls until the claim has status want.
func waitStatus(t *testing.T, s *store.Store, id uuid.UUID, want claim.Status, within time.Duration) claim.Claim {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := s.Get(t.Context(), id)
		if err == nil && c.Status == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %s: status %s (%v), want %s within %s", id, c.Status, err, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeliversEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := mqtttest.Start(t, "127.0.0.1:0", nil)
	start(t, s, publisher(t, b.URL()), fastConfig())

	c := create(t, s, "DEVICE_TOKEN_0001", "s3cret", 60000)
	got := waitStatus(t, s, c.ID, claim.StatusDelivered, 5*time.Second)
	if got.Attempts != 1 || got.DeliveredAt == nil || got.ExpiresAt == nil {
		t.Fatalf("delivered claim: %+v", got)
	}
	m := b.WaitFor(t, 1, time.Second)[0]
	if m.Topic != "v1/devices/me/claim" || m.Username != "DEVICE_TOKEN_0001" || string(m.Payload) != `{"secretKey":"s3cret","durationMs":60000}` ||
		m.ClientID != "claimsvc-"+c.ID.String() || m.QoS != 1 {
		t.Fatalf("message %+v", m)
	}
	var tok, sec []byte
	if err := s.Pool().QueryRow(t.Context(), `SELECT token, secret FROM claims WHERE id = $1`, c.ID).Scan(&tok, &sec); err != nil || tok != nil || sec != nil {
		t.Fatalf("token/secret still stored after delivery (%v)", err)
	}
}

func TestRefusedTokenIsRejectedAfterOneAttempt(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := mqtttest.Start(t, "127.0.0.1:0", func(u string) bool { return u != "UNKNOWN_TOKEN_01" })
	start(t, s, publisher(t, b.URL()), fastConfig())

	c := create(t, s, "UNKNOWN_TOKEN_01", "x", 1000)
	waitStatus(t, s, c.ID, claim.StatusRejected, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // longer than several backoffs: no retry may follow
	if got, _ := s.Get(t.Context(), c.ID); got.Attempts != 1 || got.LastError == "" {
		t.Fatalf("rejected claim: %+v", got)
	}
	if _, refused := b.Connects(); refused != 1 {
		t.Fatalf("broker refused %d connections, want 1", refused)
	}
}

func TestBrokerDownThenBack(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens here yet
	start(t, s, publisher(t, "tcp://"+addr), fastConfig())

	c := create(t, s, "DEVICE_TOKEN_0002", "k", 5000)
	deadline := time.Now().Add(5 * time.Second)
	for { // wait for at least one failed attempt
		got, _ := s.Get(t.Context(), c.ID)
		if got.Attempts >= 1 && got.LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt recorded while the broker was down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b := mqtttest.Start(t, addr, nil)
	got := waitStatus(t, s, c.ID, claim.StatusDelivered, 5*time.Second)
	if got.Attempts < 2 {
		t.Fatalf("attempts = %d, want > 1", got.Attempts)
	}
	if n := len(b.Messages()); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

func TestPendingClaimsSurviveARestart(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := mqtttest.Start(t, "127.0.0.1:0", nil)
	// Claims stored while no dispatcher runs (the service was down).
	var ids []uuid.UUID
	for i := range 20 {
		ids = append(ids, create(t, s, uuid.NewString(), "k", int64(i+1)).ID)
	}
	// A dispatcher that starts, then stops at once (a restart).
	stop := start(t, s, publisher(t, b.URL()), fastConfig())
	stop()
	start(t, s, publisher(t, b.URL()), fastConfig())
	for _, id := range ids {
		waitStatus(t, s, id, claim.StatusDelivered, 10*time.Second)
	}
}

// overlapSender records whether two attempts of one claim ever overlapped.
type overlapSender struct {
	mu       sync.Mutex
	inflight map[string]bool
	sent     map[string]int
	overlaps int
}

func (o *overlapSender) Send(ctx context.Context, j claim.Job) (claim.Receipt, error) {
	clientID := j.ID.String()
	o.mu.Lock()
	if o.inflight[clientID] {
		o.overlaps++
	}
	o.inflight[clientID] = true
	o.sent[clientID]++
	o.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	o.mu.Lock()
	delete(o.inflight, clientID)
	o.mu.Unlock()
	return claim.Receipt{}, nil
}

func TestTwoDispatchersNeverSendTheSameClaimAtOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const n = 150
	var ids []uuid.UUID
	for i := range n {
		ids = append(ids, create(t, s, uuid.NewString(), "k", int64(i+1)).ID)
	}
	o := &overlapSender{inflight: map[string]bool{}, sent: map[string]int{}}
	start(t, s, o, fastConfig())
	start(t, s, o, fastConfig())
	for _, id := range ids {
		waitStatus(t, s, id, claim.StatusDelivered, 20*time.Second)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.overlaps != 0 {
		t.Fatalf("%d overlapping sends", o.overlaps)
	}
	for id, k := range o.sent {
		if k != 1 {
			t.Errorf("%s sent %d times", id, k)
		}
	}
}

// blockingSender never finishes until its context ends.
type blockingSender struct{ started chan struct{} }

func (b blockingSender) Send(ctx context.Context, _ claim.Job) (claim.Receipt, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	return claim.Receipt{}, ctx.Err()
}

func TestShutdownReleasesInFlightLeases(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	c := create(t, s, "DEVICE_TOKEN_0003", "k", 1000)
	bs := blockingSender{started: make(chan struct{}, 1)}
	cfg := fastConfig()
	cfg.ShutdownGrace = 100 * time.Millisecond
	stop := start(t, s, bs, cfg)
	<-bs.started
	stop()
	var owner *uuid.UUID
	var attempts int
	if err := s.Pool().QueryRow(t.Context(), `SELECT lease_owner, attempts FROM claims WHERE id = $1`, c.ID).Scan(&owner, &attempts); err != nil {
		t.Fatal(err)
	}
	if owner != nil || attempts != 0 {
		t.Fatalf("after shutdown: lease_owner %v, attempts %d; want released and uncounted", owner, attempts)
	}
	// The next dispatcher sends it at once.
	b := mqtttest.Start(t, "127.0.0.1:0", nil)
	start(t, s, publisher(t, b.URL()), fastConfig())
	waitStatus(t, s, c.ID, claim.StatusDelivered, 5*time.Second)
}

type failingSender struct{}

func (failingSender) Send(context.Context, claim.Job) (claim.Receipt, error) {
	return claim.Receipt{}, errors.New("connection refused")
}

func TestGivesUpAfterMaxPendingAge(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cfg := fastConfig()
	cfg.MaxPendingAge = 300 * time.Millisecond
	start(t, s, failingSender{}, cfg)
	c := create(t, s, "DEVICE_TOKEN_0004", "k", 1000)
	got := waitStatus(t, s, c.ID, claim.StatusFailed, 5*time.Second)
	if got.Attempts < 2 || got.LastError == "" {
		t.Fatalf("failed claim: %+v", got)
	}
	// An operator's retry sends it again.
	if _, err := s.Retry(t.Context(), c.ID, time.Hour, false); err != nil {
		t.Fatal(err)
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	minD, maxD := time.Second, 5*time.Minute
	for attempt := 1; attempt <= 40; attempt++ {
		ceiling := maxD
		if attempt < 20 {
			ceiling = min(maxD, minD<<(attempt-1))
		}
		for range 200 {
			d := dispatch.Backoff(attempt, minD, maxD)
			if d < minD || d > ceiling {
				t.Fatalf("attempt %d: %s outside [%s, %s]", attempt, d, minD, ceiling)
			}
		}
	}
	// Jitter spreads retries: the 10th attempt is not always the same.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[dispatch.Backoff(10, minD, maxD)] = true
	}
	if len(seen) < 10 {
		t.Fatal("no jitter")
	}
}

// gateSender holds every attempt until open is closed, then succeeds.
type gateSender struct {
	started chan struct{}
	open    chan struct{}
}

func (g gateSender) Send(context.Context, claim.Job) (claim.Receipt, error) {
	g.started <- struct{}{}
	<-g.open
	return claim.Receipt{}, nil
}

// Outcomes of attempts that end during shutdown's grace are stored before Run
// returns (the reporter's queue is flushed), and claims leased ahead but not
// started are handed back, uncounted.
func TestShutdownStoresOutcomesAndReleasesClaimsLeasedAhead(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for i := range 6 {
		create(t, s, uuid.NewString(), "k", int64(i+1))
	}
	g := gateSender{started: make(chan struct{}, 6), open: make(chan struct{})}
	cfg := fastConfig()
	cfg.Workers, cfg.LeaseAhead = 2, 4
	stop := start(t, s, g, cfg)
	<-g.started
	<-g.started
	var leased int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims WHERE lease_owner IS NOT NULL`).Scan(&leased); err != nil || leased != 6 {
		t.Fatalf("%d claims leased (%v), want 6: 2 in flight and 4 ahead", leased, err)
	}
	time.AfterFunc(50*time.Millisecond, func() { close(g.open) }) // within the grace
	stop()
	var delivered, released int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE status = 'delivered'),
		count(*) FILTER (WHERE status = 'pending' AND lease_owner IS NULL AND attempts = 0) FROM claims`).Scan(&delivered, &released); err != nil {
		t.Fatal(err)
	}
	if delivered != 2 || released != 4 {
		t.Fatalf("after shutdown: %d delivered, %d released; want the 2 in flight delivered and the 4 waiting released", delivered, released)
	}
}

// A claim leased ahead that waited so long that its lease could end during
// the attempt is handed back and leased afresh, never sent on a short lease.
func TestClaimLeasedAheadIsNotStartedOnAShortLease(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a := create(t, s, "DEVICE_TOKEN_AHEAD_1", "k", 1000)
	b := create(t, s, "DEVICE_TOKEN_AHEAD_2", "k", 1000)
	cfg := fastConfig()
	cfg.Workers, cfg.LeaseAhead = 1, 1
	cfg.LeaseFor, cfg.AttemptMax = 2*time.Second, 1500*time.Millisecond
	o := &overlapSender{inflight: map[string]bool{}, sent: map[string]int{}}
	slow := slowSender{next: o, d: 700 * time.Millisecond}
	start(t, s, slow, cfg)
	waitStatus(t, s, a.ID, claim.StatusDelivered, 10*time.Second)
	waitStatus(t, s, b.ID, claim.StatusDelivered, 10*time.Second)
	var released int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claim_events WHERE kind = 'released'`).Scan(&released); err != nil || released != 1 {
		t.Fatalf("%d claims handed back (%v), want 1: the one that waited 0.7 s of its 2 s lease", released, err)
	}
}

// slowSender takes d per attempt.
type slowSender struct {
	next dispatch.Sender
	d    time.Duration
}

func (s slowSender) Send(ctx context.Context, j claim.Job) (claim.Receipt, error) {
	time.Sleep(s.d)
	return s.next.Send(ctx, j)
}
