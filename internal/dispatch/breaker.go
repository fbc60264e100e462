package dispatch

import (
	"sync"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// A breaker stands for one dependency (ThingsBoard's MQTT transport, or its
// HTTP APIs) and the deliveries that use it (docs/design.md §10.15).
//
//   - closed: claims of its deliveries are leased and sent as usual;
//   - open: the dependency does not answer (an attempt found it
//     unreachable): nothing of its deliveries is leased, claims leased ahead
//     are handed back unsent, and the probe is the only traffic;
//   - half-open: the probe got an answer: a few trial claims are sent; when
//     they get answers the breaker closes and everything held goes out, when
//     one finds the dependency unreachable again it opens again.
//
// Only "no answer at all" (claim.FailUnreachable) opens it: a claim refused
// for its own reasons (an unknown token, a device profile) says the
// dependency is up.
type breaker struct {
	dep        string // its name in the health board: health.MQTT or health.REST
	deliveries []claim.Delivery
	probe      Prober
	trial      int // claims let through while half-open

	tripped chan struct{} // signalled when it opens: the probe starts

	mu       sync.Mutex
	state    breakerState
	since    time.Time // when it last opened
	cause    string    // the failure that opened it
	round    int       // half-open periods so far: a trial claim belongs to one
	inflight int       // half-open: trial claims leased and not yet answered or handed back
	answered int       // half-open: trial claims that got an answer
}

type breakerState int

const (
	closed breakerState = iota
	open
	halfOpen
)

func newBreaker(dep string, deliveries []claim.Delivery, probe Prober, trial int) *breaker {
	return &breaker{dep: dep, deliveries: deliveries, probe: probe, trial: trial, tripped: make(chan struct{}, 1)}
}

// allowance says what may be leased now: everything (closed), nothing
// (open), or up to n trial claims (half-open).
func (b *breaker) allowance() (all bool, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case closed:
		return true, 0
	case halfOpen:
		return false, max(0, b.trial-b.inflight-b.answered)
	}
	return false, 0
}

// isOpen reports whether its claims are held now, and since when.
func (b *breaker) isOpen() (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == open, b.since
}

// leased counts trial claims taken while half-open, and returns the round
// they belong to (0: not half-open any more, so they are not trials).
func (b *breaker) leased(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != halfOpen {
		return 0
	}
	b.inflight += n
	return b.round
}

// untried gives back the slot of a trial claim of round that was handed back
// without an attempt (held, released for a short lease, shutdown): without
// it the slot stays taken, the breaker never gets its answers and never
// closes, and nothing more of its deliveries is leased.
func (b *breaker) untried(round int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if round != 0 && round == b.round && b.state == halfOpen && b.inflight > 0 {
		b.inflight--
	}
}

// transition is what an outcome did to the breaker.
type transition int

const (
	stayed transition = iota
	opened
	closedAgain
)

// outcome records an attempt's result. round is the half-open round the
// claim was a trial claim of (0: not a trial claim); a trial of an earlier
// round counts for nothing.
func (b *breaker) outcome(err error, round int, now time.Time) transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	trial := round != 0 && round == b.round
	if trial && b.state == halfOpen && b.inflight > 0 {
		b.inflight--
	}
	if claim.KindOf(err) == claim.FailUnreachable && err != nil {
		if b.state == open {
			return stayed
		}
		b.state, b.since, b.cause, b.inflight, b.answered = open, now, err.Error(), 0, 0
		select {
		case b.tripped <- struct{}{}:
		default:
		}
		return opened
	}
	if b.state != halfOpen || !trial {
		return stayed
	}
	b.answered++
	if b.answered < b.trial {
		return stayed
	}
	b.state = closed
	return closedAgain
}

// idle closes a half-open breaker that has no trial claim in flight when
// nothing more is due to try: the probe's answer is all there is to go on.
func (b *breaker) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != halfOpen || b.inflight > 0 {
		return false
	}
	b.state = closed
	return true
}

// probed records that the probe got an answer: half-open. It returns false
// when the breaker was not open any more.
func (b *breaker) probed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != open {
		return false
	}
	b.state, b.inflight, b.answered = halfOpen, 0, 0
	b.round++
	return true
}
