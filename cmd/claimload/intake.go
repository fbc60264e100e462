package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// load runs op from clients goroutines until d passes or max operations
// started, and records each operation's latency. op returns how many claims
// it stored (0 on failure).
func load(ctx context.Context, clients int, d time.Duration, max int64, op func(ctx context.Context, seq int64) int) measured {
	return loadEach(ctx, clients, d, max, func() (func(context.Context, int64) int, func()) { return op, func() {} })
}

// loadEach is load with per-client state: perClient returns a client's op
// and what to do when it is done.
func loadEach(ctx context.Context, clients int, d time.Duration, max int64, perClient func() (func(ctx context.Context, seq int64) int, func())) measured {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var started atomic.Int64
	var mu sync.Mutex
	var total measured
	var wg sync.WaitGroup
	t0 := time.Now()
	for range clients {
		wg.Go(func() {
			op, done := perClient()
			defer done()
			var mine measured
			for ctx.Err() == nil {
				seq := started.Add(1)
				if seq > max {
					break
				}
				s := time.Now()
				n := op(ctx, seq)
				if ctx.Err() != nil && n == 0 {
					break // cut off by the deadline: not a failure
				}
				if n == 0 {
					mine.errs++
					continue
				}
				mine.n += n
				mine.lat = append(mine.lat, time.Since(s))
			}
			mu.Lock()
			total.n += mine.n
			total.errs += mine.errs
			total.lat = append(total.lat, mine.lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.elapsed = time.Since(t0)
	return total
}

// token is the benchmark's device token number seq of a run: 20 characters
// like ThingsBoard's, unique per run.
func token(prefix string, seq int64) string { return fmt.Sprintf("%s%012d", prefix, seq) }

// intakeClaimsvc: POST /devices/{token}/claim → 202, one new device each.
func (b *bench) intakeClaimsvc(ctx context.Context, svc *service, clients int, prefix string) measured {
	body := []byte(`{"secretKey":"bench-secret","durationMs":60000}`)
	return loadEach(ctx, clients, b.plan.intakeFor, b.plan.intakeMax, func() (func(context.Context, int64) int, func()) {
		c := newRawClient(svc.base)
		return func(ctx context.Context, seq int64) int {
			if st, _, err := c.post(ctx, "/devices/"+token(prefix, seq)+"/claim", "application/json", body, nil); err != nil || st != http.StatusAccepted {
				return 0
			}
			return 1
		}, c.close
	})
}

// baselineSQL is the plain one-row INSERT that the pgx baseline commits: the
// same row claimsvc stores, into a copy of the claims table with the same
// indexes and constraints (no hold or idempotency lookups, no audit event).
const baselineSQL = `INSERT INTO bench_baseline (id, token_hash, token_hint, token, secret, has_secret, duration_ms,
	fingerprint, next_attempt_at) VALUES ($1, $2, $3, $4, $5, true, $6, $7, now())`

// intakeBaseline: a plain pgx loop at the same concurrency (connections
// capped at baselineMaxConns), one claim per transaction: with autocommit,
// the single-statement INSERT (one round trip, one durable commit: the floor
// a user compares with); without, BEGIN; INSERT; COMMIT (three round trips).
// The CPU cost is measured while the pool's connections still exist: the
// backends' CPU is read from their processes.
func (b *bench) intakeBaseline(ctx context.Context, clients int, prefix string, autocommit bool) (measured, cpuCost, error) {
	cfg, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		return measured{}, cpuCost{}, err
	}
	cfg.MaxConns = int32(min(clients, baselineMaxConns))
	cfg.MinConns = cfg.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return measured{}, cpuCost{}, err
	}
	defer pool.Close()
	if err := warm(ctx, pool); err != nil {
		return measured{}, cpuCost{}, err
	}
	secret := claim.Secret("bench-secret")
	dur := int64(60000)
	m, cost := cpuMeter(b, 0, func() measured { return b.baselineLoop(ctx, pool, clients, prefix, autocommit, secret, dur) })
	return m, cost, nil
}

func (b *bench) baselineLoop(ctx context.Context, pool *pgxpool.Pool, clients int, prefix string, autocommit bool, secret claim.Secret, dur int64) measured {
	return load(ctx, clients, b.plan.intakeFor, b.plan.intakeMax, func(ctx context.Context, seq int64) int {
		tok := token(prefix, seq)
		r := claim.Request{Token: claim.Token(tok), SecretKey: &secret, DurationMs: &dur}
		id, _ := uuid.NewV7()
		args := []any{id, r.Token.Hash(), claim.Hint(tok), b.sealer.Seal([]byte(tok), id[:], "token"),
			b.sealer.Seal([]byte(secret), id[:], "secret"), dur, r.Fingerprint()}
		if autocommit {
			if _, err := pool.Exec(ctx, baselineSQL, args...); err != nil {
				return 0
			}
			return 1
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit: a no-op
		if _, err := tx.Exec(ctx, baselineSQL, args...); err != nil {
			return 0
		}
		if tx.Commit(ctx) != nil {
			return 0
		}
		return 1
	})
}

// warm opens the pool's connections before the clock starts.
func warm(ctx context.Context, pool *pgxpool.Pool) error {
	n := int(pool.Config().MaxConns)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			c, err := pool.Acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
			c.Release()
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// batchClaimsvc: POST /claims:batch with batchSize new devices per request.
func (b *bench) batchClaimsvc(ctx context.Context, svc *service, clients int, prefix string) measured {
	size := int64(b.plan.batchSize)
	return loadEach(ctx, clients, b.plan.intakeFor, b.plan.intakeMax/size+1, func() (func(context.Context, int64) int, func()) {
		c := newRawClient(svc.base)
		return func(ctx context.Context, seq int64) int {
			var body strings.Builder
			body.WriteByte('[')
			for i := range size {
				if i > 0 {
					body.WriteByte(',')
				}
				fmt.Fprintf(&body, `{"token":%q,"secretKey":"bench-secret","durationMs":60000}`, token(prefix, (seq-1)*size+i))
			}
			body.WriteByte(']')
			if st, ok, err := c.post(ctx, "/claims:batch", "application/json", []byte(body.String()), allCreated); err != nil || st != http.StatusOK || !ok {
				return 0
			}
			return int(size)
		}, c.close
	})
}

// allCreated accepts a batch answer in which every claim was stored.
func allCreated(ans []byte) bool { return bytes.Contains(ans, []byte(`"failed":0}`)) }
