// Package dispatch delivers pending claims: it leases due claims from the
// store, sends each through a bounded pool of workers, and records the
// outcome. Several dispatchers (replicas) may share one database: the lease
// keeps them from sending the same claim at the same time.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/store"
)

// Store is what the dispatcher needs of the claim store.
type Store interface {
	Lease(ctx context.Context, n int, leaseFor time.Duration) ([]store.Job, error)
	Delivered(ctx context.Context, j store.Job) error
	Rejected(ctx context.Context, j store.Job, reason string) error
	RetryLater(ctx context.Context, j store.Job, next time.Duration, reason string) error
	Fail(ctx context.Context, j store.Job, reason string) error
	Release(ctx context.Context, jobs []store.Job) error
	ReapExpiredLeases(ctx context.Context) (int64, error)
	Backlog(ctx context.Context) (store.Backlog, error)
	Expedite(ctx context.Context, errPrefix string) (int64, error)
	Listen(ctx context.Context, wake func(), onErr func(error))
}

// Sender delivers one claim payload as the device (internal/mqtt.Publisher).
type Sender interface {
	Publish(ctx context.Context, clientID string, token claim.Token, payload []byte) error
}

// Prober is a Sender that can tell whether the broker answers at all
// (internal/mqtt.Publisher). Without it, claims held back by a broker outage
// wait for their backoff.
type Prober interface {
	Probe(ctx context.Context) error
}

// Config tunes a Dispatcher. Zero values take the defaults in brackets.
type Config struct {
	Workers       int           // concurrent MQTT attempts [32]
	LeaseFor      time.Duration // how long a leased claim is ours [2m]; must exceed one attempt
	PollInterval  time.Duration // fallback when NOTIFY is missed [1s]
	ReapInterval  time.Duration // how often expired leases are returned [15s]
	StatsInterval time.Duration // how often the backlog gauges refresh [5s]
	BackoffMin    time.Duration // first retry delay [1s]
	BackoffMax    time.Duration // retry delay cap [5m]
	ProbeInterval time.Duration // while the broker is unreachable, probe it this often [1s]
	MaxPendingAge time.Duration // give up (failed) after this long pending [168h]
	ShutdownGrace time.Duration // in-flight attempts may finish within this at shutdown [10s]
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	set(&c.LeaseFor, 2*time.Minute)
	set(&c.PollInterval, time.Second)
	set(&c.ReapInterval, 15*time.Second)
	set(&c.StatsInterval, 5*time.Second)
	set(&c.BackoffMin, time.Second)
	set(&c.BackoffMax, 5*time.Minute)
	set(&c.ProbeInterval, time.Second)
	set(&c.MaxPendingAge, 168*time.Hour)
	set(&c.ShutdownGrace, 10*time.Second)
}

// Dispatcher sends pending claims. Create with New, start with Run.
type Dispatcher struct {
	store   Store
	sender  Sender
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	onFinal func(uuid.UUID) // told when a claim reaches a final status here
	wake    chan struct{}
	// unreachable is signalled after a retry for "broker unreachable" is
	// stored; watchBroker then probes until the broker answers.
	unreachable chan struct{}
}

// New returns a Dispatcher. onFinal may be nil.
func New(st Store, sender Sender, cfg Config, log *slog.Logger, m *metrics.Metrics, onFinal func(uuid.UUID)) *Dispatcher {
	cfg.defaults()
	if onFinal == nil {
		onFinal = func(uuid.UUID) {}
	}
	return &Dispatcher{store: st, sender: sender, cfg: cfg, log: log, metrics: m, onFinal: onFinal,
		wake: make(chan struct{}, 1), unreachable: make(chan struct{}, 1)}
}

// Wake asks the dispatcher to look for due claims now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers claims until ctx ends. Then it stops leasing, lets attempts
// under way finish within ShutdownGrace, and releases every lease it still
// holds, so another replica (or the next start) sends those claims at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("dispatcher started", "workers", d.cfg.Workers)
	// Attempts get their own context: cancelled ShutdownGrace after ctx.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(d.cfg.ShutdownGrace, cancelWork)
		<-workCtx.Done()
		t.Stop()
	})
	defer stopGrace()

	var bg sync.WaitGroup
	bg.Go(func() {
		d.store.Listen(ctx, d.Wake, func(err error) { d.log.Warn("claim notifications interrupted; polling meanwhile", "err", err) })
	})
	bg.Go(func() { d.every(ctx, d.cfg.ReapInterval, d.reap) })
	bg.Go(func() { d.every(ctx, d.cfg.StatsInterval, d.stats) })
	bg.Go(func() { d.watchBroker(ctx) })

	jobs := make(chan store.Job)
	idle := make(chan struct{}, d.cfg.Workers) // one token per idle worker
	var workers sync.WaitGroup
	for range d.cfg.Workers {
		idle <- struct{}{}
		workers.Go(func() {
			for job := range jobs {
				d.attempt(workCtx, job)
				idle <- struct{}{}
				d.Wake()
			}
		})
	}

	d.loop(ctx, jobs, idle)
	close(jobs)
	workers.Wait()
	bg.Wait()
	d.log.Info("dispatcher stopped")
	return nil
}

// loop leases as many due claims as there are idle workers and hands them
// out, then sleeps until woken (NOTIFY, a worker freed, or the poll tick).
func (d *Dispatcher) loop(ctx context.Context, jobs chan<- store.Job, idle chan struct{}) {
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	for {
		free := len(idle)
		if free > 0 && ctx.Err() == nil {
			// Not cancelled by shutdown: a lease cut off mid-query may have
			// committed, and rows we never saw would stay leased until expiry.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			leased, err := d.store.Lease(lctx, free, d.cfg.LeaseFor)
			cancel()
			switch {
			case errors.Is(err, store.ErrCannotOpen):
				d.log.Error("leased claims this process cannot decrypt; handed them back", "err", err)
			case err != nil:
				d.log.Warn("cannot lease claims; will retry", "err", err)
			}
			if ctx.Err() != nil {
				d.release(leased)
				return
			}
			for i, job := range leased {
				<-idle
				select {
				case jobs <- job:
				case <-ctx.Done():
					d.release(leased[i:])
					return
				}
			}
			if len(leased) == free && free > 0 {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-poll.C:
		}
	}
}

func (d *Dispatcher) release(jobs []store.Job) {
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.store.Release(ctx, jobs); err != nil {
		d.log.Warn("cannot release leases; they expire by themselves", "claims", len(jobs), "err", err)
		return
	}
	d.metrics.Deliveries.WithLabelValues("released").Add(float64(len(jobs)))
}

// attempt sends one claim and records its outcome.
func (d *Dispatcher) attempt(ctx context.Context, job store.Job) {
	log := d.log.With("claim", job.ID, "device", job.Token, "attempt", job.Attempt)
	if ctx.Err() != nil { // shutting down and out of grace: not sent
		d.release([]store.Job{job})
		return
	}
	d.metrics.InFlight.Inc()
	start := time.Now()
	err := d.sender.Publish(ctx, "claimsvc-"+job.ID.String(), job.Token, claim.Payload(job.SecretKey, job.DurationMs))
	d.metrics.InFlight.Dec()

	var outcome string
	var report func(context.Context) error
	switch {
	case err == nil:
		outcome = "delivered"
		report = func(c context.Context) error { return d.store.Delivered(c, job) }
		d.metrics.DeliveryLatency.Observe(time.Since(job.CreatedAt).Seconds())
		log.Info("claim delivered", "latency", time.Since(job.CreatedAt).Round(time.Millisecond))
	case mqtt.IsRejected(err):
		outcome = "rejected"
		report = func(c context.Context) error { return d.store.Rejected(c, job, err.Error()) }
		log.Warn("claim rejected: ThingsBoard does not know this device token", "err", err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		log.Info("attempt cut short by shutdown; releasing the claim")
		d.metrics.AttemptDuration.WithLabelValues("released").Observe(time.Since(start).Seconds())
		d.release([]store.Job{job})
		return
	default:
		age := time.Since(job.PendingSince)
		if age >= d.cfg.MaxPendingAge {
			outcome = "failed"
			reason := fmt.Sprintf("still undelivered after %s; last error: %v", d.cfg.MaxPendingAge, err)
			report = func(c context.Context) error { return d.store.Fail(c, job, reason) }
			log.Error("claim failed: giving up", "err", err, "pending_for", age.Round(time.Second))
		} else {
			outcome = "retry"
			next := min(Backoff(job.Attempt, d.cfg.BackoffMin, d.cfg.BackoffMax), d.cfg.MaxPendingAge-age)
			report = func(c context.Context) error { return d.store.RetryLater(c, job, next, err.Error()) }
			log.Warn("claim not delivered; will retry", "err", err, "retry_in", next.Round(time.Millisecond))
		}
	}
	d.metrics.AttemptDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	d.metrics.Deliveries.WithLabelValues(outcome).Inc()
	if err := d.report(ctx, start.Add(d.cfg.LeaseFor), report); err != nil {
		log.Warn("cannot record the attempt's outcome; the lease will expire and the claim be sent again", "outcome", outcome, "err", err)
		return
	}
	if outcome != "retry" {
		d.onFinal(job.ID)
	} else if mqtt.IsUnreachable(err) {
		select { // after the retry is stored, so the next expedite covers it
		case d.unreachable <- struct{}{}:
		default:
		}
	}
}

// watchBroker handles broker outages. Claims that fail because the broker
// does not answer back off like any other failure (up to BackoffMax), which
// would leave most of an outage's backlog waiting minutes after the broker
// returns. So after such a failure, this probes the broker every
// ProbeInterval, and once it answers makes every claim held back by the
// outage due at once. A failure stored after that starts another round, so
// no claim is left behind by a race with the recovery.
func (d *Dispatcher) watchBroker(ctx context.Context) {
	p, ok := d.sender.(Prober)
	if !ok {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.unreachable:
		}
		down := time.Now()
		d.log.Warn("the broker does not answer; probing it", "every", d.cfg.ProbeInterval)
		for up := false; !up; {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.cfg.ProbeInterval):
			}
			up = p.Probe(ctx) == nil
		}
		select { // failures stored until now are covered by this expedite
		case <-d.unreachable:
		default:
		}
		n, err := d.store.Expedite(ctx, mqtt.UnreachablePrefix)
		if err != nil {
			d.log.Warn("the broker answers again, but held-back claims could not be rescheduled; they wait for their backoff", "err", err)
			continue
		}
		d.log.Info("the broker answers again; sending the claims held back by the outage", "claims", n, "probing_for", time.Since(down).Round(time.Millisecond))
		d.Wake()
	}
}

// report stores an outcome. While the database is away it keeps trying
// until the lease would run out (leaseEnd) or shutdown's grace ends (ctx), so
// a database outage shorter than the lease loses no lease: the outcome lands
// when the database returns and the claim is not sent again. A report that
// never lands means a duplicate send after the lease expires, never a lost
// claim; the lease check (ErrLeaseLost) keeps a late report from
// overwriting another dispatcher's work.
func (d *Dispatcher) report(ctx context.Context, leaseEnd time.Time, f func(context.Context) error) error {
	pause := 100 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := f(rctx)
		cancel()
		if err == nil || errors.Is(err, store.ErrLeaseLost) || !time.Now().Add(pause).Before(leaseEnd) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// Backoff is the delay before retry number attempt (1-based): exponential
// from min to max with full jitter, never below min.
func Backoff(attempt int, minD, maxD time.Duration) time.Duration {
	ceiling := maxD
	if attempt < 32 {
		if c := minD << (attempt - 1); c > 0 && c < maxD {
			ceiling = c
		}
	}
	return max(minD, rand.N(ceiling+1))
}

func (d *Dispatcher) every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dispatcher) reap(ctx context.Context) {
	n, err := d.store.ReapExpiredLeases(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		d.log.Warn("cannot reap expired leases", "err", err)
	case n > 0:
		d.log.Warn("returned claims whose dispatcher stopped answering to the queue", "claims", n)
		d.Wake()
	}
}

func (d *Dispatcher) stats(ctx context.Context) {
	b, err := d.store.Backlog(ctx)
	if err != nil {
		return
	}
	d.metrics.Pending.Set(float64(b.Pending))
	if b.OldestAccept.IsZero() {
		d.metrics.OldestPending.Set(0)
	} else {
		d.metrics.OldestPending.Set(time.Since(b.OldestAccept).Seconds())
	}
}
