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
)

// Store is what the dispatcher needs of the claim store (internal/store).
type Store interface {
	Lease(ctx context.Context, n int, leaseFor time.Duration) ([]claim.Job, error)
	Finish(ctx context.Context, outs []claim.Outcome) (lost []error, err error)
	Release(ctx context.Context, jobs []claim.Job) error
	ReapExpiredLeases(ctx context.Context) (int64, error)
	Backlog(ctx context.Context) (claim.Backlog, error)
	Expedite(ctx context.Context, kind claim.FailureKind) (int64, error)
	Listen(ctx context.Context, wake func(), onErr func(error))
}

// Sender delivers one claim as its device would (internal/mqtt.Publisher).
// Its errors carry their kind (claim.KindOf).
type Sender interface {
	Send(ctx context.Context, job claim.Job) error
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
	LeaseAhead    int           // claims leased ahead, waiting in memory for a free worker [Workers]; negative: none
	ReportBatch   int           // outcomes stored in one statement at most, and queued at most [64]
	LeaseFor      time.Duration // how long a leased claim is ours [2m]; must exceed one attempt
	AttemptMax    time.Duration // the longest one attempt takes [LeaseFor/2]; a claim leased ahead starts only with this much lease left
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
	switch {
	case c.LeaseAhead == 0:
		c.LeaseAhead = c.Workers
	case c.LeaseAhead < 0:
		c.LeaseAhead = 0
	}
	if c.ReportBatch <= 0 {
		c.ReportBatch = 64
	}
	set(&c.LeaseFor, 2*time.Minute)
	set(&c.AttemptMax, c.LeaseFor/2)
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

// leasedJob is a claim leased by this dispatcher.
type leasedJob struct {
	claim.Job
	leaseEnd time.Time // by our clock, a little before the lease's own end
}

// Run delivers claims until ctx ends. Then it stops leasing, lets attempts
// under way finish within ShutdownGrace, stores their outcomes, and releases
// every lease it still holds (claims leased ahead and not started), so
// another replica (or the next start) sends those claims at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("dispatcher started", "workers", d.cfg.Workers, "lease_ahead", d.cfg.LeaseAhead)
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

	rep := newReporter(d.store, d.log, d.cfg.ReportBatch)
	var reporting sync.WaitGroup
	reporting.Go(func() { rep.run(workCtx) })

	// A slot is a claim in memory: waiting for a worker or being sent. The
	// loop leases one claim per free slot; jobs never blocks.
	slots := d.cfg.Workers + d.cfg.LeaseAhead
	jobs := make(chan leasedJob, slots)
	free := make(chan struct{}, slots) // one token per free slot
	for range slots {
		free <- struct{}{}
	}
	var workers sync.WaitGroup
	for range d.cfg.Workers {
		workers.Go(func() {
			var unsent []claim.Job
			for job := range jobs {
				switch {
				case ctx.Err() != nil: // shutting down: not started, handed back below
					unsent = append(unsent, job.Job)
				case time.Until(job.leaseEnd) < d.cfg.AttemptMax: // waited too long: the lease might end mid-attempt
					d.release([]claim.Job{job.Job})
				default:
					d.attempt(workCtx, job, rep)
				}
				free <- struct{}{}
				d.Wake()
			}
			d.release(unsent)
		})
	}

	d.loop(ctx, jobs, free)
	close(jobs)
	workers.Wait()
	rep.close()
	reporting.Wait()
	bg.Wait()
	d.log.Info("dispatcher stopped")
	return nil
}

// loop leases as many due claims as there are free slots (idle workers plus
// LeaseAhead) and queues them for the workers, then sleeps until woken
// (NOTIFY, a worker freed, or the poll tick). With claims leased ahead, a
// worker that finishes takes the next at once instead of waiting for a lease.
func (d *Dispatcher) loop(ctx context.Context, jobs chan<- leasedJob, slots chan struct{}) {
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	for {
		// While claims wait in memory, lease again only once half of
		// LeaseAhead is free: fewer, larger lease statements. A worker
		// that would idle (nothing waits) gets a lease at once.
		free := len(slots)
		if free > 0 && ctx.Err() == nil && (len(jobs) == 0 || free >= d.cfg.LeaseAhead/2) {
			// Not cancelled by shutdown: a lease cut off mid-query may have
			// committed, and rows we never saw would stay leased until expiry.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			leaseEnd := time.Now().Add(d.cfg.LeaseFor)
			leased, err := d.store.Lease(lctx, free, d.cfg.LeaseFor)
			cancel()
			switch {
			case errors.Is(err, claim.ErrCannotDecrypt):
				d.log.Error("leased claims this process cannot decrypt; handed them back", "err", err)
			case err != nil:
				d.log.Warn("cannot lease claims; will retry", "err", err)
			}
			if ctx.Err() != nil {
				d.release(leased)
				return
			}
			for _, job := range leased {
				<-slots // there are free ones: only this loop takes them
				jobs <- leasedJob{Job: job, leaseEnd: leaseEnd}
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

func (d *Dispatcher) release(jobs []claim.Job) {
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

// attempt sends one claim and hands its outcome to the reporter: the worker
// is free as soon as the attempt ends. onFinal and the broker watch are told
// once the outcome is stored.
func (d *Dispatcher) attempt(ctx context.Context, lj leasedJob, rep *reporter) {
	job := lj.Job
	log := d.log.With("claim", job.ID, "device", job.Token, "attempt", job.Attempt)
	if ctx.Err() != nil { // shutting down and out of grace: not sent
		d.release([]claim.Job{job})
		return
	}
	d.metrics.InFlight.Inc()
	start := time.Now()
	err := d.sender.Send(ctx, job)
	d.metrics.InFlight.Dec()

	var out claim.Outcome
	final := func() { d.onFinal(job.ID) }
	var landed func()
	switch {
	case err == nil:
		out, landed = claim.OutcomeOf(job, claim.OutcomeDelivered, nil, 0), final
		d.metrics.DeliveryLatency.Observe(time.Since(job.CreatedAt).Seconds())
		log.Info("claim delivered", "latency", time.Since(job.CreatedAt).Round(time.Millisecond))
	case claim.KindOf(err) == claim.FailRejected:
		out, landed = claim.OutcomeOf(job, claim.OutcomeRejected, err, 0), final
		log.Warn("claim rejected: ThingsBoard does not know this device token", "err", err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		log.Info("attempt cut short by shutdown; releasing the claim")
		d.metrics.AttemptDuration.WithLabelValues("released").Observe(time.Since(start).Seconds())
		d.release([]claim.Job{job})
		return
	default:
		age := time.Since(job.PendingSince)
		if age >= d.cfg.MaxPendingAge {
			gaveUp := fmt.Errorf("still undelivered after %s; last error: %w", d.cfg.MaxPendingAge, err)
			out, landed = claim.OutcomeOf(job, claim.OutcomeFailed, gaveUp, 0), final
			log.Error("claim failed: giving up", "err", err, "pending_for", age.Round(time.Second))
		} else {
			next := min(Backoff(job.Attempt, d.cfg.BackoffMin, d.cfg.BackoffMax), d.cfg.MaxPendingAge-age)
			out = claim.OutcomeOf(job, claim.OutcomeRetry, err, next)
			if claim.KindOf(err) == claim.FailUnreachable {
				landed = d.brokerUnreachable // after the retry is stored, so the next expedite covers it
			}
			log.Warn("claim not delivered; will retry", "err", err, "retry_in", next.Round(time.Millisecond))
		}
	}
	d.metrics.AttemptDuration.WithLabelValues(string(out.Kind)).Observe(time.Since(start).Seconds())
	d.metrics.Deliveries.WithLabelValues(string(out.Kind)).Inc()
	rep.add(report{out: out, leaseEnd: lj.leaseEnd, landed: landed})
}

// brokerUnreachable starts watchBroker's probing, unless it is already on.
func (d *Dispatcher) brokerUnreachable() {
	select {
	case d.unreachable <- struct{}{}:
	default:
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
		n, err := d.store.Expedite(ctx, claim.FailUnreachable)
		if err != nil {
			d.log.Warn("the broker answers again, but held-back claims could not be rescheduled; they wait for their backoff", "err", err)
			continue
		}
		d.log.Info("the broker answers again; sending the claims held back by the outage", "claims", n, "probing_for", time.Since(down).Round(time.Millisecond))
		d.Wake()
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
