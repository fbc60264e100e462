// Package track follows delivered claims in ThingsBoard until the customer
// has the device or the claim lapses (docs/design.md §9): a bounded tracker
// looks at each claim's device through the REST API about once per poll
// interval, least recently looked-at first, and records `claimed` (the device
// has a customer) or `expired` (the claim's expiry passed with no customer;
// an attribute claim's claimingData is deleted first). It also revokes
// delivered attribute claims (DELETE /claims/{id}).
package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/health"
	"github.com/claimsvc/claimsvc/internal/metrics"
)

// Store is what the tracker needs of the claim store (internal/store).
type Store interface {
	DueForLook(ctx context.Context, n int, every time.Duration) ([]claim.Watch, error)
	Record(ctx context.Context, obs []claim.Observation) (changed []uuid.UUID, err error)
	Cancel(ctx context.Context, id uuid.UUID) (claim.Claim, error)
	RevokeTarget(ctx context.Context, id uuid.UUID) (deviceID string, ok bool, err error)
	Revoked(ctx context.Context, id uuid.UUID) (claim.Claim, error)
	// ClearClaimingData runs clear while no new claim of the device can be
	// accepted, unless a newer attribute claim of the device owns
	// ThingsBoard's claimingData (ran false).
	ClearClaimingData(ctx context.Context, id uuid.UUID, clear func(context.Context) error) (ran bool, err error)
}

// Device is what the tracker needs to know of a ThingsBoard device.
type Device struct {
	ID         string
	CustomerID string // "" when no customer has it
}

// ThingsBoard is the part of ThingsBoard's REST API the tracker uses. Its
// errors carry a claim.FailureKind (claim.KindOf); a device that does not
// exist is ErrNoDevice.
type ThingsBoard interface {
	DeviceByName(ctx context.Context, name string) (Device, error)
	Device(ctx context.Context, id string) (Device, error)
	DeleteClaimingData(ctx context.Context, deviceID string) error
}

// ErrNoDevice means ThingsBoard has no such device.
var ErrNoDevice = errors.New("no such device in ThingsBoard")

// Config tunes a Tracker. Zero values take the defaults in brackets.
type Config struct {
	Every       time.Duration // look at each claim about this often [30s]
	Batch       int           // claims taken from the store at once [64]
	Concurrency int           // requests to ThingsBoard in flight [4]
	PerSecond   int           // requests to ThingsBoard per second at most [20]
}

func (c *Config) defaults() {
	if c.Every <= 0 {
		c.Every = 30 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.PerSecond <= 0 {
		c.PerSecond = 20
	}
}

// Tracker follows delivered claims. Create with New, start with Run.
type Tracker struct {
	store   Store
	tb      ThingsBoard
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	health  *health.Board
	now     func() time.Time
}

// New returns a Tracker.
func New(st Store, tb ThingsBoard, cfg Config, log *slog.Logger, m *metrics.Metrics, h *health.Board) *Tracker {
	cfg.defaults()
	return &Tracker{store: st, tb: tb, cfg: cfg, log: log, metrics: m, health: h, now: time.Now}
}

// Run looks at due claims until ctx ends.
func (t *Tracker) Run(ctx context.Context) error {
	t.log.Info("tracker started", "every", t.cfg.Every, "concurrency", t.cfg.Concurrency, "per_second", t.cfg.PerSecond)
	pace := time.NewTicker(time.Second / time.Duration(t.cfg.PerSecond))
	defer pace.Stop()
	idle := min(t.cfg.Every/2, 10*time.Second)
	for ctx.Err() == nil {
		// While ThingsBoard's REST API does not answer, one look per round
		// is the probe: nothing more is sent until it answers again.
		batch := t.cfg.Batch
		if st, ok := t.health.Get(health.REST); ok && !st.Up {
			batch = 1
		}
		due, err := t.store.DueForLook(ctx, batch, t.cfg.Every)
		if err != nil && ctx.Err() == nil {
			t.log.Warn("cannot read the claims to look at; trying again", "err", err)
		}
		if len(due) > 0 {
			t.lookAll(ctx, due, pace.C)
		}
		if len(due) == t.cfg.Batch {
			continue // more are due
		}
		select {
		case <-ctx.Done():
		case <-time.After(idle):
		}
	}
	t.log.Info("tracker stopped")
	return nil
}

// lookAll looks at due claims, at most Concurrency at once and one per tick
// of pace, and records what it saw.
func (t *Tracker) lookAll(ctx context.Context, due []claim.Watch, pace <-chan time.Time) {
	obs := make([]*claim.Observation, len(due))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(t.cfg.Concurrency, len(due)) {
		wg.Go(func() {
			for i := range next {
				obs[i] = t.look(ctx, due[i])
			}
		})
	}
feed:
	for i := range due {
		select {
		case <-ctx.Done():
			break feed
		case <-pace:
		}
		next <- i
	}
	close(next)
	wg.Wait()
	var seen []claim.Observation
	for _, o := range obs {
		if o != nil {
			seen = append(seen, *o)
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	changed, err := t.store.Record(rctx, seen)
	if err != nil {
		t.log.Warn("cannot record what ThingsBoard showed; the claims are looked at again", "err", err)
		return
	}
	kind := make(map[uuid.UUID]claim.Seen, len(seen))
	for _, o := range seen {
		kind[o.Claim] = o.Seen
	}
	for _, id := range changed {
		t.metrics.Transitions.WithLabelValues(string(kind[id])).Inc()
		t.log.Info("claim "+string(kind[id]), "claim", id)
	}
}

// look finds what became of one claim, or nil when ThingsBoard could not
// tell (the claim is looked at again next time).
func (t *Tracker) look(ctx context.Context, w claim.Watch) *claim.Observation {
	o := &claim.Observation{Claim: w.ID}
	dev, err := t.device(ctx, w)
	expired := !w.ExpiresAt.IsZero() && t.now().After(w.ExpiresAt)
	switch {
	case errors.Is(err, ErrNoDevice) && expired:
		o.Seen, o.Detail = claim.SeenExpired, fmt.Sprintf("expired at %s; ThingsBoard has no device named %q", stamp(w.ExpiresAt), w.DeviceName)
		return o
	case errors.Is(err, ErrNoDevice):
		o.Seen, o.Detail = claim.SeenNoDevice, fmt.Sprintf("ThingsBoard has no device named %q; the claim stays delivered until it expires", w.DeviceName)
		return o
	case err != nil:
		t.trouble(ctx, err)
		return nil
	}
	if w.DeviceID == "" {
		o.DeviceID = dev.ID
	}
	switch {
	case dev.CustomerID != "":
		o.Seen, o.CustomerID = claim.SeenClaimed, dev.CustomerID
		o.Detail = "the device now belongs to customer " + dev.CustomerID
	case expired && w.Delivery == claim.DeliveryAttribute:
		deleted, err := t.store.ClearClaimingData(ctx, w.ID, t.deleteClaimingData(dev.ID))
		switch {
		case err != nil && deleted: // ThingsBoard's answer
			t.trouble(ctx, err)
			return nil
		case err != nil:
			t.log.Warn("cannot clear an expired claim's claimingData; looking again later", "claim", w.ID, "err", err)
			return nil
		}
		o.Seen, o.Detail = claim.SeenExpired, fmt.Sprintf("expired at %s with no customer; its claimingData attribute was deleted", stamp(w.ExpiresAt))
		if !deleted {
			o.Detail = fmt.Sprintf("expired at %s with no customer; the device's claimingData attribute belongs to a newer claim now", stamp(w.ExpiresAt))
		}
	case expired:
		o.Seen, o.Detail = claim.SeenExpired, fmt.Sprintf("expired at %s with no customer", stamp(w.ExpiresAt))
	default:
		o.Seen = claim.SeenUnclaimed
	}
	t.health.Set(health.REST, true, "")
	return o
}

// device finds w's device: by its id once known, else by name.
func (t *Tracker) device(ctx context.Context, w claim.Watch) (Device, error) {
	if w.DeviceID != "" {
		return t.tb.Device(ctx, w.DeviceID)
	}
	return t.tb.DeviceByName(ctx, w.DeviceName)
}

// trouble reports a failure of ThingsBoard's REST API: an operator's problem
// when its credentials are refused.
func (t *Tracker) trouble(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	detail := "ThingsBoard's REST API does not answer: " + err.Error()
	if claim.KindOf(err) == claim.FailUnauthorized {
		detail = "ThingsBoard refuses claimsvc's credentials (check CLAIMSVC_TB_API_KEY or CLAIMSVC_TB_USERNAME/PASSWORD): " + err.Error()
	}
	t.health.Set(health.REST, false, detail)
	t.log.Warn("cannot look at a claim's device in ThingsBoard; looking again later", "err", err)
}

// Cancel cancels a pending claim (as the store does), or revokes a delivered
// attribute claim: its claimingData is deleted in ThingsBoard, then the claim
// is cancelled. When ThingsBoard does not take the deletion, the claim is
// unchanged and the error says so.
func (t *Tracker) Cancel(ctx context.Context, id uuid.UUID) (claim.Claim, error) {
	deviceID, ok, err := t.store.RevokeTarget(ctx, id)
	if err != nil {
		return claim.Claim{}, err
	}
	if !ok {
		return t.store.Cancel(ctx, id)
	}
	if deviceID != "" {
		// Not when a newer claim of the device owns the attribute: then this
		// claim was replaced, and Revoked says so.
		if ran, err := t.store.ClearClaimingData(ctx, id, t.deleteClaimingData(deviceID)); err != nil {
			if !ran {
				return claim.Claim{}, err
			}
			t.trouble(ctx, err)
			return claim.Claim{}, &claim.Error{Code: claim.CodeUnavailable, Err: err,
				Message: "ThingsBoard did not take the revocation (its REST API failed); the claim is unchanged, try again"}
		}
	}
	c, err := t.store.Revoked(ctx, id)
	if err == nil {
		t.metrics.Transitions.WithLabelValues(string(claim.StatusCancelled)).Inc()
	}
	return c, err
}

// deleteClaimingData deletes a device's claimingData in ThingsBoard; a
// device that is gone has none.
func (t *Tracker) deleteClaimingData(deviceID string) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := t.tb.DeleteClaimingData(ctx, deviceID); err != nil && !errors.Is(err, ErrNoDevice) {
			return err
		}
		return nil
	}
}

func stamp(at time.Time) string { return at.UTC().Format(time.RFC3339) }
