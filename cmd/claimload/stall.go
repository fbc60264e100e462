package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// runStall: the machine stalls, the broker stays healthy. claimsvc is
// stopped (SIGSTOP) for a few seconds while it delivers, as an overloaded
// machine or a paused VM stops it; when it resumes, every timer it had
// running has expired at once, so attempts under way fail as timeouts. Every
// claim must still be delivered soon after: a stall is not the broker
// failing and must not push claims into long backoff (the dispatcher caps
// the backoff of timeouts while other claims deliver, docs/reliability.md).
// The claims' events say which attempts failed, and why.
func (b *bench) runStall(ctx context.Context) error {
	w, err := b.prepareDelivery(ctx)
	if err != nil {
		return err
	}
	defer w.close()
	svc, err := b.startService(ctx, "stall", "tcp://"+b.opts.mqttAddr)
	if err != nil {
		return err
	}
	defer svc.stop()
	n, pause := b.plan.stallClaims, b.plan.stall
	prefix := "T" + b.runID + "-"

	resumed := make(chan time.Time, 1)
	go func() {
		// Stop it once deliveries are under way: a tenth delivered.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
			if got, _ := w.count(); got >= n/10 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = svc.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(pause)
		_ = svc.cmd.Process.Signal(syscall.SIGCONT)
		resumed <- time.Now()
	}()
	ours, err := b.e2eClaimsvc(ctx, svc, &w.tally, b.plan.e2eClients, n, prefix)
	if err != nil {
		return err
	}
	resume := <-resumed
	_, last := w.count()
	after := last.Sub(resume)
	failed, err := b.failedAttempts(ctx)
	if err != nil {
		return err
	}
	b.progress("stall: claimsvc stopped for %s mid-delivery; %d of %d delivered, the last %s after it resumed; failed attempts: %s",
		pause, ours.n, n, after.Round(time.Millisecond), failed)
	ok := ours.n == n && after <= 15*time.Second
	b.add(row{figure: fmt.Sprintf("stall: claimsvc stopped %s mid-delivery, broker healthy (%d claims)", pause, n),
		unit: "s from resume to the last delivery", ours: after.Seconds(), absolute: "≤ 15 s, all delivered", absOK: &ok,
		note: fmt.Sprintf("%d of %d delivered; failed attempts: %s", ours.n, n, failed)})
	return nil
}

// failedAttempts summarises the attempt events that did not deliver, by
// outcome and the first words of their detail (timestamps masked, so one
// cause is one group), from the run's database.
func (b *bench) failedAttempts(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT outcome,
			CASE WHEN length(d) > 72 THEN regexp_replace(left(d, 72), '\s+\S*$', '') || ' …' ELSE d END AS why, count(*)
		FROM (SELECT outcome, regexp_replace(coalesce(detail, ''), '\d{4}-\d\d-\d\dT[0-9:.]+Z', '<time>', 'g') AS d
			FROM claim_events WHERE kind = 'attempt' AND outcome <> 'delivered') AS failed
		GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5`)
	if err != nil {
		return "", err
	}
	var parts []string
	for rows.Next() {
		var outcome, why string
		var count int
		if err := rows.Scan(&outcome, &why, &count); err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", count, outcome, why))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(parts) == 0 {
		return "none", nil
	}
	return strings.Join(parts, ", "), nil
}
