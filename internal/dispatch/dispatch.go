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
	"github.com/claimsvc/claimsvc/internal/health"
	"github.com/claimsvc/claimsvc/internal/metrics"
)

// Store is what the dispatcher needs of the claim store (internal/store).
type Store interface {
	Lease(ctx context.Context, n int, leaseFor time.Duration, deliveries []claim.Delivery) ([]claim.Job, error)
	Pending(ctx context.Context, deliveries []claim.Delivery) (int64, error)
	Finish(ctx context.Context, outs []claim.Outcome) (lost []error, err error)
	Release(ctx context.Context, jobs []claim.Job) error
	Hold(ctx context.Context, jobs []claim.Job, why string) error
	ReapExpiredLeases(ctx context.Context) (int64, error)
	Backlog(ctx context.Context) (claim.Backlog, error)
	Expedite(ctx context.Context, kind claim.FailureKind, deliveries []claim.Delivery) (int64, error)
	Listen(ctx context.Context, wake func(), onErr func(error))
}

// Sender delivers one claim by one delivery (internal/mqtt for mqtt,
// internal/tbrest for http and attribute). Its errors carry their kind
// (claim.KindOf); the receipt says what the delivery learnt.
type Sender interface {
	Send(ctx context.Context, job claim.Job) (claim.Receipt, error)
}

// Senders maps each delivery this service offers to its Sender.
type Senders map[claim.Delivery]Sender

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
	LeaseFor      time.Duration // how long a leased claim is ours [2m]; must exceed AttemptMax, by the time a claim may wait for a worker
	AttemptMax    time.Duration // the longest one attempt takes [LeaseFor/2]; a claim leased ahead starts only with this much lease left
	PollInterval  time.Duration // fallback when NOTIFY is missed [1s]
	ReapInterval  time.Duration // how often expired leases are returned [15s]
	StatsInterval time.Duration // how often the backlog gauges refresh [5s]
	BackoffMin    time.Duration // first retry delay [1s]
	BackoffMax    time.Duration // retry delay cap [5m]
	ProbeInterval time.Duration // while the broker is unreachable, probe it this often [1s]
	MaxPendingAge time.Duration // give up (failed) after this long pending [168h]
	MaxRefusals   int           // give up after this many refusals in a row while other claims get through [5]
	StallBackoff  time.Duration // the longest delay after a timeout while other claims get through [10s]
	StallAttempts int           // … for this many attempts of a claim [5]
	ShutdownGrace time.Duration // in-flight attempts may finish within this at shutdown [10s]
	// Health receives what attempts show of ThingsBoard's MQTT transport and
	// REST API [a board of its own].
	Health *health.Board
	// Dependencies are what the deliveries depend on, each with its probe:
	// one circuit breaker each (breaker.go). [the mqtt sender's own probe,
	// when it has one]
	Dependencies []Dependency
	// TrialClaims are sent while a breaker is half-open, before it closes [4].
	TrialClaims int
}

// Dependency is a part of ThingsBoard that some deliveries need (its MQTT
// transport; its HTTP APIs), named as in the health board, with a probe that
// tells whether it answers without sending a claim.
type Dependency struct {
	Name       string
	Deliveries []claim.Delivery
	Probe      Prober
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
	if c.TrialClaims <= 0 {
		c.TrialClaims = 4
	}
	set(&c.StallBackoff, 10*time.Second)
	if c.StallAttempts <= 0 {
		c.StallAttempts = 5
	}
	if c.MaxRefusals <= 0 {
		c.MaxRefusals = 5
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
	if c.Health == nil {
		c.Health = health.New(nil)
	}
}

// Dispatcher sends pending claims. Create with New, start with Run.
type Dispatcher struct {
	store      Store
	senders    Senders
	cfg        Config
	log        *slog.Logger
	metrics    *metrics.Metrics
	onFinal    func(uuid.UUID) // told when a claim reaches a final status here
	wake       chan struct{}
	breakers   []*breaker
	breakerFor map[claim.Delivery]*breaker

	mu            sync.Mutex
	lastDelivered map[claim.Delivery]time.Time // when ThingsBoard last took a claim, by delivery
}

// New returns a Dispatcher. onFinal may be nil.
func New(st Store, senders Senders, cfg Config, log *slog.Logger, m *metrics.Metrics, onFinal func(uuid.UUID)) *Dispatcher {
	cfg.defaults()
	if onFinal == nil {
		onFinal = func(uuid.UUID) {}
	}
	d := &Dispatcher{store: st, senders: senders, cfg: cfg, log: log, metrics: m, onFinal: onFinal,
		wake: make(chan struct{}, 1), lastDelivered: map[claim.Delivery]time.Time{}, breakerFor: map[claim.Delivery]*breaker{}}
	deps := cfg.Dependencies
	if deps == nil {
		if p, ok := senders[claim.DeliveryMQTT].(Prober); ok {
			deps = []Dependency{{Name: health.MQTT, Deliveries: []claim.Delivery{claim.DeliveryMQTT}, Probe: p}}
		}
	}
	for _, dep := range deps {
		b := newBreaker(dep.Name, dep.Deliveries, dep.Probe, cfg.TrialClaims)
		d.breakers = append(d.breakers, b)
		for _, dl := range dep.Deliveries {
			d.breakerFor[dl] = b
		}
	}
	return d
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
	trial    int       // the half-open round it is a trial claim of (0: none)
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
	for _, b := range d.breakers {
		bg.Go(func() { d.probe(ctx, b) })
	}

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
				held, since := d.held(job.Delivery)
				switch {
				case ctx.Err() != nil: // shutting down: not started, handed back below
					d.untried(job)
					unsent = append(unsent, job.Job)
				case held: // its dependency stopped answering since it was leased
					d.untried(job)
					d.hold([]claim.Job{job.Job}, since)
				case time.Until(job.leaseEnd) < d.cfg.AttemptMax: // waited too long: the lease might end mid-attempt
					d.untried(job)
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
			full, stop := d.leaseInto(ctx, free, jobs, slots)
			if stop {
				return
			}
			if full {
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

// leaseInto leases up to free due claims of the deliveries whose breakers let
// them through (all of a closed breaker's, a few trial claims of a
// half-open one's, none of an open one's) and queues them. full: every free
// slot was filled; stop: shutdown began.
func (d *Dispatcher) leaseInto(ctx context.Context, free int, jobs chan<- leasedJob, slots chan struct{}) (full, stop bool) {
	allowed := make([]claim.Delivery, 0, len(d.senders))
	type trial struct {
		b *breaker
		n int
	}
	var trials []trial
	for dl := range d.senders {
		if d.breakerFor[dl] == nil {
			allowed = append(allowed, dl)
		}
	}
	for _, b := range d.breakers {
		switch all, n := b.allowance(); {
		case all:
			allowed = append(allowed, b.deliveries...)
		case n > 0:
			trials = append(trials, trial{b, n})
		}
	}
	queue := func(n int, deliveries []claim.Delivery, isTrial *breaker) int {
		if n <= 0 || len(deliveries) == 0 {
			return 0
		}
		// Not cancelled by shutdown: a lease cut off mid-query may have
		// committed, and rows we never saw would stay leased until expiry.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		leaseEnd := time.Now().Add(d.cfg.LeaseFor)
		leased, err := d.store.Lease(lctx, n, d.cfg.LeaseFor, deliveries)
		cancel()
		switch {
		case errors.Is(err, claim.ErrCannotDecrypt):
			d.log.Error("leased claims this process cannot decrypt; handed them back", "err", err)
		case err != nil:
			d.log.Warn("cannot lease claims; will retry", "err", err)
		}
		if ctx.Err() != nil {
			d.release(leased)
			stop = true
			return 0
		}
		round := 0
		if isTrial != nil {
			round = isTrial.leased(len(leased))
		}
		for _, job := range leased {
			<-slots // there are free ones: only this loop takes them
			jobs <- leasedJob{Job: job, leaseEnd: leaseEnd, trial: round}
		}
		return len(leased)
	}
	got := queue(free, allowed, nil)
	for _, t := range trials {
		if stop {
			break
		}
		ask := min(free-got, t.n)
		if ask <= 0 {
			break
		}
		n := queue(ask, t.b.deliveries, t.b)
		got += n
		if n == 0 && t.b.idle() { // nothing to try: the probe's answer decides
			d.recovered(ctx, t.b)
		}
	}
	return got == free, stop
}

// untried gives a trial claim's slot back to its breaker when the claim is
// handed back without an attempt.
func (d *Dispatcher) untried(lj leasedJob) {
	if b := d.breakerFor[lj.Delivery]; b != nil {
		b.untried(lj.trial)
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
		d.untried(lj)
		d.release([]claim.Job{job})
		return
	}
	d.metrics.InFlight.Inc()
	start := time.Now()
	// The attempt ends before the lease does, whatever the sender's own
	// timeouts and retries add up to (the REST deliveries make several
	// requests, each retried): past the lease another dispatcher may send
	// the claim at the same time. A second is left for the outcome's report.
	sctx, cancel := context.WithDeadline(ctx, lj.leaseEnd.Add(-time.Second))
	receipt, err := d.send(sctx, job)
	cancel()
	d.metrics.InFlight.Dec()

	var out claim.Outcome
	final := func() { d.onFinal(job.ID) }
	var landed func()
	switch {
	case err == nil:
		out, landed = claim.OutcomeOf(job, claim.OutcomeDelivered, nil, 0), final
		out.Receipt = receipt
		d.metrics.DeliveryLatency.Observe(time.Since(job.CreatedAt).Seconds())
		log.Info("claim delivered", "latency", time.Since(job.CreatedAt).Round(time.Millisecond))
	case claim.KindOf(err) == claim.FailRejected:
		out, landed = claim.OutcomeOf(job, claim.OutcomeRejected, err, 0), final
		log.Warn("claim rejected by ThingsBoard for good", "err", err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		log.Info("attempt cut short by shutdown; releasing the claim")
		d.metrics.AttemptDuration.WithLabelValues("released").Observe(time.Since(start).Seconds())
		d.untried(lj)
		d.release([]claim.Job{job})
		return
	default:
		age := time.Since(job.PendingSince)
		refused := d.refusedForGood(job, err)
		switch {
		case age >= d.cfg.MaxPendingAge:
			gaveUp := fmt.Errorf("still undelivered after %s; last error: %w", d.cfg.MaxPendingAge, err)
			out, landed = claim.OutcomeOf(job, claim.OutcomeFailed, gaveUp, 0), final
			log.Error("claim failed: giving up", "err", err, "pending_for", age.Round(time.Second))
		case refused != nil:
			out, landed = claim.OutcomeOf(job, claim.OutcomeFailed, refused, 0), final
			log.Error("claim failed: ThingsBoard keeps refusing it while it takes other claims", "err", refused)
		default:
			next := min(d.backoff(job, err), d.cfg.MaxPendingAge-age)
			if b := d.breakerFor[job.Delivery]; b != nil && claim.KindOf(err) == claim.FailUnreachable {
				// Held, not retried on its own backoff: sent again when the
				// breaker closes. Said once, in this attempt's event.
				_, since := b.isOpen()
				if since.IsZero() {
					since = time.Now()
				}
				err = claim.FailureFor(claim.FailUnreachable, claim.ReasonOf(err), fmt.Errorf(
					"held: %s unreachable since %s; sent again as soon as it answers: %w", b.dep, stamp(since), err))
				// A report that lands after the breaker closed again missed
				// that expedite: expedite again.
				landed = func() {
					if open, _ := b.isOpen(); !open {
						d.expedite(context.Background(), b)
					}
				}
			}
			out = claim.OutcomeOf(job, claim.OutcomeRetry, err, next)
			log.Warn("claim not delivered; will retry", "err", err, "retry_in", next.Round(time.Millisecond))
		}
	}
	if err != nil {
		d.metrics.DeliveryFailures.WithLabelValues(string(job.Delivery), claim.ReasonOf(err)).Inc()
	} else {
		d.sawDelivered(job.Delivery)
	}
	d.sawDependency(job.Delivery, err)
	if b := d.breakerFor[job.Delivery]; b != nil {
		switch b.outcome(err, lj.trial, time.Now()) {
		case opened:
			d.tripped(b, err)
		case closedAgain:
			d.recovered(context.WithoutCancel(ctx), b)
		}
	}
	d.metrics.AttemptDuration.WithLabelValues(string(out.Kind)).Observe(time.Since(start).Seconds())
	d.metrics.Deliveries.WithLabelValues(string(out.Kind)).Inc()
	rep.add(report{out: out, leaseEnd: lj.leaseEnd, landed: landed})
}

// backoff is the delay before job's next attempt: exponential with full
// jitter (Backoff). A timeout while ThingsBoard delivers other claims of the
// same delivery says more about this machine (a stall: CPU, a paused VM, a
// full disk) than about the claim, so for the first StallAttempts attempts
// its delay is capped at StallBackoff: a stall of a few seconds does not
// push claims into minutes of backoff.
func (d *Dispatcher) backoff(job claim.Job, err error) time.Duration {
	next := Backoff(job.Attempt, d.cfg.BackoffMin, d.cfg.BackoffMax)
	if job.Attempt > d.cfg.StallAttempts || !timedOut(err) {
		return next
	}
	d.mu.Lock()
	last := d.lastDelivered[job.Delivery]
	d.mu.Unlock()
	if time.Since(last) > d.cfg.StallBackoff*2 {
		return next // nothing else gets through either: back off as usual
	}
	return min(next, d.cfg.StallBackoff)
}

// timedOut reports a failure that is a wait running out (no PUBACK in time,
// no HTTP answer in time) rather than an answer.
func timedOut(err error) bool {
	return claim.ReasonOf(err) == "puback_timeout" || errors.Is(err, context.DeadlineExceeded)
}

// refusedForGood returns why job should fail now rather than be retried:
// ThingsBoard refused it (claim.FailRefused) MaxRefusals times in a row
// while it delivered other claims of the same delivery in the last
// BackoffMax×2 (at least a minute), which a device profile explains (docs/thingsboard.md §9). Nil
// when the claim is to be retried: a refusal while nothing else gets through
// may be ThingsBoard being overloaded.
func (d *Dispatcher) refusedForGood(job claim.Job, err error) error {
	if claim.KindOf(err) != claim.FailRefused || job.Refusals+1 < d.cfg.MaxRefusals {
		return nil
	}
	d.mu.Lock()
	last := d.lastDelivered[job.Delivery]
	d.mu.Unlock()
	if time.Since(last) > max(2*d.cfg.BackoffMax, time.Minute) {
		return nil
	}
	why := "ThingsBoard keeps refusing this device's claims while it takes other devices' claims"
	switch claim.ReasonOf(err) {
	case "connack_3":
		why = "CONNACK 3 (server unavailable) for this device while others connect: its device profile does not allow MQTT " +
			"(its transport type is not MQTT or DEFAULT)"
	case "closed_before_puback":
		why = "ThingsBoard closes the connection on this device's claim while it acknowledges others: its device profile " +
			"does not take JSON claims over MQTT (payload type PROTOBUF), or a device rate limit keeps refusing it"
	}
	return fmt.Errorf("refused %d times in a row: %s. Fix the device's profile in ThingsBoard and retry the claim "+
		"(POST /claims/{id}/retry), or claim it with delivery http or attribute; last error: %w", job.Refusals+1, why, err)
}

// sawDelivered notes that ThingsBoard took a claim of this delivery.
func (d *Dispatcher) sawDelivered(delivery claim.Delivery) {
	d.mu.Lock()
	d.lastDelivered[delivery] = time.Now()
	d.mu.Unlock()
}

// sawDependency reports what an attempt of delivery showed of the ThingsBoard
// part it used: up when it answered, down when it did not answer at all or
// refused claimsvc's own credentials.
func (d *Dispatcher) sawDependency(delivery claim.Delivery, err error) {
	dep := health.REST
	if delivery == claim.DeliveryMQTT {
		dep = health.MQTT
	}
	switch claim.KindOf(err) {
	case claim.FailUnreachable:
		d.cfg.Health.Set(dep, false, err.Error())
	case claim.FailUnauthorized:
		d.cfg.Health.Set(dep, false, "ThingsBoard refuses claimsvc's credentials (check CLAIMSVC_TB_API_KEY or CLAIMSVC_TB_USERNAME/PASSWORD): "+err.Error())
	default:
		if err == nil || claim.KindOf(err) == claim.FailRejected {
			d.cfg.Health.Set(dep, true, "")
		}
	}
}

// send hands job to the sender of its delivery.
func (d *Dispatcher) send(ctx context.Context, job claim.Job) (claim.Receipt, error) {
	s, ok := d.senders[job.Delivery]
	if !ok { // a replica configured without it (e.g. no ThingsBoard REST settings)
		return claim.Receipt{}, claim.Failure(claim.FailTransient,
			fmt.Errorf("this replica cannot deliver %q claims: its ThingsBoard settings lack what that delivery needs", job.Delivery))
	}
	return s.Send(ctx, job)
}

// held reports whether claims of delivery are held by an open breaker, and
// since when.
func (d *Dispatcher) held(delivery claim.Delivery) (bool, time.Time) {
	if b := d.breakerFor[delivery]; b != nil {
		return b.isOpen()
	}
	return false, time.Time{}
}

// hold hands back claims leased before their dependency stopped answering,
// unsent and uncounted, saying so once in each claim's audit trail.
func (d *Dispatcher) hold(jobs []claim.Job, since time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	why := "held: ThingsBoard unreachable since " + stamp(since) + "; sent as soon as it answers"
	if err := d.store.Hold(ctx, jobs, why); err != nil {
		d.log.Warn("cannot hand back held claims; their leases expire by themselves", "claims", len(jobs), "err", err)
		return
	}
	d.metrics.Deliveries.WithLabelValues("held").Add(float64(len(jobs)))
}

// tripped: b's dependency stopped answering. Its claims are held from now
// on; its probe starts.
func (d *Dispatcher) tripped(b *breaker, err error) {
	d.cfg.Health.Set(b.dep, false, "unreachable: "+err.Error())
	d.log.Warn("ThingsBoard does not answer: holding its claims and probing it", "dependency", b.dep,
		"deliveries", b.deliveries, "every", d.cfg.ProbeInterval, "err", err)
}

// recovered: b closed again after an outage. Everything held goes out now.
func (d *Dispatcher) recovered(ctx context.Context, b *breaker) {
	d.cfg.Health.Set(b.dep, true, "")
	_, since := b.isOpen()
	n := d.expedite(ctx, b)
	held, _ := d.store.Pending(ctx, b.deliveries)
	d.log.Info("ThingsBoard answers again: sending the claims held by the outage", "dependency", b.dep,
		"outage", time.Since(since).Round(time.Millisecond), "held_claims", held, "rescheduled", n)
	d.Wake()
}

// expedite makes b's claims that failed for want of an answer due now.
func (d *Dispatcher) expedite(ctx context.Context, b *breaker) int64 {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := d.store.Expedite(ctx, claim.FailUnreachable, b.deliveries)
	if err != nil {
		d.log.Warn("claims held by an outage could not be rescheduled; they wait for their backoff", "dependency", b.dep, "err", err)
	}
	return n
}

// probe watches b: while it is open, it probes the dependency every
// ProbeInterval, and when the dependency answers, lets the breaker half-open
// (trial claims first, every held claim due at once).
func (d *Dispatcher) probe(ctx context.Context, b *breaker) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.tripped:
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.cfg.ProbeInterval):
			}
			err := b.probe.Probe(ctx)
			if ctx.Err() != nil {
				return
			}
			if claim.KindOf(err) == claim.FailUnreachable {
				continue
			}
			if err != nil {
				d.log.Error("ThingsBoard answers, but refuses the probe", "dependency", b.dep, "err", err)
			}
			break
		}
		if b.probed() {
			d.log.Info("ThingsBoard answers the probe: trying a few held claims first", "dependency", b.dep, "trial", b.trial)
			d.expedite(context.WithoutCancel(ctx), b)
			d.Wake()
		}
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

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
		if ctx.Err() == nil {
			d.cfg.Health.Set(health.Database, false, "the backlog query failed: "+err.Error())
		}
		return
	}
	d.cfg.Health.Set(health.Database, true, "")
	d.metrics.Pending.Set(float64(b.Pending))
	if b.OldestAccept.IsZero() {
		d.metrics.OldestPending.Set(0)
	} else {
		d.metrics.OldestPending.Set(time.Since(b.OldestAccept).Seconds())
	}
}
