package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Group commit: concurrent Create calls are coalesced into shared
// transactions. A fixed number of committer goroutines each take the first
// waiting request and then every request already queued behind it (up to
// maxBatch), and store them with createMany in one transaction: one commit,
// one WAL flush, a handful of round trips for the whole group. Nothing waits
// on a timer: a lone request is committed at once, and requests queue up (and
// so group) only while every committer is busy. Each request gets its own
// outcome; the commit's failure is every request's failure.
//
// The wake-up for dispatchers (NOTIFY) is not part of the intake
// transaction: PostgreSQL holds one database-wide lock from a NOTIFY until its
// transaction's commit record is flushed, so every committing transaction
// with a NOTIFY waits for the previous one's fsync, and concurrent commits no
// longer share a flush (a single INSERT per transaction fell from 2,900 to
// 800 per second at 32 clients with a NOTIFY in each; docs/performance.md §3).
// A committed group only signals the notifier goroutine, which sends one
// NOTIFY on its own (it writes no WAL, so it holds the lock briefly) for any
// number of groups committed meanwhile. Notifications are a hint; dispatchers
// poll too.

// GroupCommit configures group commit. Zero values take the defaults.
type GroupCommit struct {
	Committers int           // transactions in flight at once [4]
	MaxBatch   int           // requests per transaction [64]
	TxTimeout  time.Duration // one group's transaction [15s]
}

// Option configures Open.
type Option func(*Store)

// WithGroupCommit sets how Create groups requests into transactions.
func WithGroupCommit(g GroupCommit) Option {
	return func(s *Store) { s.gc = g }
}

func (g *GroupCommit) defaults() {
	if g.Committers <= 0 {
		g.Committers = 4
	}
	if g.MaxBatch <= 0 {
		g.MaxBatch = 64
	}
	if g.TxTimeout <= 0 {
		g.TxTimeout = 15 * time.Second
	}
}

// request is one Create call waiting for its group's commit.
type request struct {
	ctx  context.Context
	req  claim.Request
	hold time.Duration
	done chan claim.ItemResult // buffered: a committer never blocks on a caller who left
}

// committers runs the committer goroutines until Close.
type committers struct {
	queue   chan *request
	notify  chan struct{} // buffered 1: a group committed claims to deliver
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when every committer has returned
	wg      sync.WaitGroup
}

var errClosed = errors.New("the claim store is closed")

func (s *Store) startCommitters() {
	s.gc.defaults()
	c := &committers{
		queue:   make(chan *request, s.gc.Committers*s.gc.MaxBatch),
		notify:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	for range s.gc.Committers {
		c.wg.Go(func() { s.commitLoop(c) })
	}
	c.wg.Go(func() { s.notifyLoop(c) })
	go func() { c.wg.Wait(); close(c.stopped) }()
	s.group = c
}

// closeCommitters lets the committers finish the groups they hold, fails
// what is still queued, and waits for them.
func (s *Store) closeCommitters() {
	s.closeOnce.Do(func() { close(s.group.stop) })
	<-s.group.stopped
}

// enqueue hands req to a committer and waits for its outcome.
func (s *Store) enqueue(ctx context.Context, req claim.Request, hold time.Duration) (claim.Accepted, error) {
	r := &request{ctx: ctx, req: req, hold: hold, done: make(chan claim.ItemResult, 1)}
	select {
	case s.group.queue <- r:
	case <-ctx.Done():
		return claim.Accepted{}, claim.Unavailable(ctx.Err())
	case <-s.group.stop:
		return claim.Accepted{}, claim.Unavailable(errClosed)
	}
	select {
	case res := <-r.done:
		return res.Accepted, res.Err
	case <-ctx.Done():
		// The group may still commit it: the caller is gone either way.
		return claim.Accepted{}, claim.Unavailable(ctx.Err())
	case <-s.group.stopped:
		select {
		case res := <-r.done:
			return res.Accepted, res.Err
		default:
			return claim.Accepted{}, claim.Unavailable(errClosed)
		}
	}
}

// committed tells the notifier that claims became due; it never blocks.
func (c *committers) committed() {
	select {
	case c.notify <- struct{}{}:
	default: // a NOTIFY is pending already and will cover these claims too
	}
}

// notifyLoop sends one NOTIFY for every run of committed groups, until Close.
// A failed NOTIFY is dropped: dispatchers poll, and Listen reconnects.
func (s *Store) notifyLoop(c *committers) {
	for {
		select {
		case <-c.stop:
			return
		case <-c.notify:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.outbox.Exec(ctx, "SELECT pg_notify($1, '')", NotifyChannel)
		cancel()
	}
}

func (s *Store) commitLoop(c *committers) {
	var carry *request // a request of another hold, held for the next group
	group := make([]*request, 0, s.gc.MaxBatch)
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-c.queue:
			case <-c.stop:
				for { // fail what nobody will commit now
					select {
					case r := <-c.queue:
						r.done <- claim.ItemResult{Err: claim.Unavailable(errClosed)}
					default:
						return
					}
				}
			}
		}
		group = append(group[:0], first)
	fill:
		for len(group) < s.gc.MaxBatch {
			select {
			case r := <-c.queue:
				if r.hold != first.hold {
					carry = r
					break fill
				}
				group = append(group, r)
			default:
				break fill
			}
		}
		s.commitGroup(group)
		clear(group)
	}
}

// commitGroup stores one group and answers each of its requests.
func (s *Store) commitGroup(group []*request) {
	items := make([]*item, 0, len(group))
	live := make([]*request, 0, len(group))
	for _, r := range group {
		if err := r.ctx.Err(); err != nil { // the caller left before we began
			r.done <- claim.ItemResult{Err: claim.Unavailable(err)}
			continue
		}
		it, err := newItem(r.req)
		if err != nil {
			r.done <- claim.ItemResult{Err: err}
			continue
		}
		it.actor = claim.ActorFrom(r.ctx)
		items = append(items, it)
		live = append(live, r)
	}
	if len(items) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.gc.TxTimeout)
	defer cancel()
	hold := live[0].hold
	err := s.createMany(ctx, items, hold)
	if err != nil && claim.ErrorCode(err) == claim.CodeInternal && len(items) > 1 {
		// Not the database going away: perhaps one request the database
		// refuses. Give each its own transaction so it fails alone.
		for i, it := range items {
			if e := s.createMany(ctx, []*item{it}, hold); e != nil {
				it.res = claim.ItemResult{Err: e}
			}
			live[i].done <- it.res
		}
		return
	}
	for i, it := range items {
		if err != nil {
			it.res = claim.ItemResult{Err: err}
		}
		live[i].done <- it.res
	}
}
