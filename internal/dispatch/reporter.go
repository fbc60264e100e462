package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// report is an attempt's outcome on its way to the store.
type report struct {
	out      claim.Outcome
	leaseEnd time.Time // the lease holds until about then: no point storing it later
	landed   func()    // called once the outcome is stored; may be nil
}

// reporter stores outcomes in batches, off the workers' path: a worker hands
// its outcome over and is free as soon as the attempt ends. One statement
// stores everything queued meanwhile (store.Finish), so the cost of a report
// is shared the way intake shares commits.
//
// Nothing is weakened by the wait: the claim stays leased until its outcome
// lands, so no one sends it meanwhile, and the lease fence applies to each
// outcome. An outcome that never lands (the database is away until the lease
// runs out, or shutdown's grace ends) means the claim is sent again after the
// lease expires, never a lost claim. The queue is bounded: when it is full,
// workers wait (backpressure).
type reporter struct {
	store Store
	log   *slog.Logger
	queue chan report
	batch int // outcomes per statement at most
}

func newReporter(st Store, log *slog.Logger, batch int) *reporter {
	return &reporter{store: st, log: log, queue: make(chan report, batch), batch: batch}
}

// add queues r, waiting while the queue is full.
func (r *reporter) add(rep report) { r.queue <- rep }

// close tells run that nothing more comes: it stores what is queued and returns.
func (r *reporter) close() { close(r.queue) }

// run stores queued outcomes until close, taking whatever is queued (up to
// batch) into each statement. giveUp ends retries while the database is away.
func (r *reporter) run(giveUp context.Context) {
	batch := make([]report, 0, r.batch)
	for first := range r.queue {
		batch = append(batch[:0], first)
	take:
		for len(batch) < r.batch {
			select {
			case rep, ok := <-r.queue:
				if !ok {
					break take
				}
				batch = append(batch, rep)
			default:
				break take
			}
		}
		r.flush(giveUp, batch)
	}
}

// flush stores batch. While the database is away it tries again, dropping
// each outcome whose lease would be over by the next try, until giveUp.
func (r *reporter) flush(giveUp context.Context, batch []report) {
	outs := make([]claim.Outcome, 0, len(batch))
	pause := 100 * time.Millisecond
	for {
		outs = outs[:0]
		for _, rep := range batch {
			outs = append(outs, rep.out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		lost, err := r.store.Finish(ctx, outs)
		cancel()
		if err == nil {
			for i, rep := range batch {
				if lost[i] != nil {
					r.notStored(rep, lost[i])
				} else if rep.landed != nil {
					rep.landed()
				}
			}
			return
		}
		keep := batch[:0]
		for _, rep := range batch {
			if time.Now().Add(pause).Before(rep.leaseEnd) && giveUp.Err() == nil {
				keep = append(keep, rep)
			} else {
				r.notStored(rep, err)
			}
		}
		if batch = keep; len(batch) == 0 {
			return
		}
		select {
		case <-giveUp.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

func (r *reporter) notStored(rep report, err error) {
	msg := "cannot record the attempt's outcome; the lease will expire and the claim be sent again"
	if errors.Is(err, claim.ErrLeaseLost) {
		msg = "the attempt's outcome was not recorded: the claim's lease ended first (it expired or the claim was changed)"
	}
	r.log.Warn(msg, "claim", rep.out.Claim, "outcome", rep.out.Kind, "err", err)
}
