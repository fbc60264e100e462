package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// prefill stores n pending claims directly (COPY), as claimsvc would have:
// sealed token and secret, hash, hint, fingerprint, an 'accepted' event.
// claimsvc is not running meanwhile, so the backlog is whole when it starts.
func (b *bench) prefill(ctx context.Context, n int, prefix string) error {
	dur := int64(60000)
	now := time.Now()
	rows := make([][]any, 0, n)
	for i := range n {
		tok := token(prefix, int64(i+1))
		sec := claim.Secret(fmt.Sprintf("%s%d", prefix, i+1))
		r := claim.Request{Token: claim.Token(tok), SecretKey: &sec, DurationMs: &dur}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		rows = append(rows, []any{id, r.Token.Hash(), claim.Hint(tok), b.sealer.Seal([]byte(tok), id[:], "token"),
			b.sealer.Seal([]byte(sec), id[:], "secret"), true, dur, r.Fingerprint(), now})
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"claims"},
		[]string{"id", "token_hash", "token_hint", "token", "secret", "has_secret", "duration_ms", "fingerprint", "next_attempt_at"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy claims: %w", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO claim_events (claim_id, kind) SELECT id, 'accepted' FROM claims`); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `VACUUM ANALYZE claims`)
	return err
}

// backlogResult is what the backlog run measured.
type backlogResult struct {
	n            int
	drain        time.Duration // process start → last claim seen on the broker
	peakRSS      float64       // MB, VmHWM
	peakRoutines float64
	idleRoutines float64 // after draining
}

// drainBacklog starts claimsvc on a prefilled backlog and samples its memory
// and goroutines until every claim reached the broker.
func (b *bench) drainBacklog(ctx context.Context, w *watcher, n int, prefix string) (backlogResult, error) {
	done := w.expect(prefix, n)
	svc, err := b.startService(ctx, "backlog", "tcp://"+b.opts.mqttAddr)
	if err != nil {
		return backlogResult{}, err
	}
	defer svc.stop()
	defer b.profile(svc, "backlog", b.plan.intakeFor)()
	res := backlogResult{n: n}
	sample := func() {
		if peak, _, err := svc.memory(); err == nil {
			res.peakRSS = max(res.peakRSS, peak)
		}
		if g, err := svc.metric("go_goroutines"); err == nil {
			res.peakRoutines = max(res.peakRoutines, g)
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(b.plan.backlogTimeout)
wait:
	for {
		sample()
		select {
		case <-done:
			break wait
		case <-tick.C:
		case <-deadline:
			got, _ := w.count()
			return res, fmt.Errorf("backlog: %d of %d claims drained within %s", got, n, b.plan.backlogTimeout)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	_, last := w.count()
	res.drain = last.Sub(svc.started)
	time.Sleep(500 * time.Millisecond) // outcomes recorded, workers idle
	sample()
	if g, err := svc.metric("go_goroutines"); err == nil {
		res.idleRoutines = g
	}
	return res, nil
}
