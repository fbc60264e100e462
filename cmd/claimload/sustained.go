package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// sustained is what a steady intake while the dispatcher delivers showed.
type sustained struct {
	rate            float64 // claims/s asked for
	intake          measured
	backlogStart    float64 // pending claims a few seconds in
	backlogEnd      float64 // at the end of the run
	backlogMax      float64
	delivered, sent int
}

// runSustained (full mode): intake at a steady rate, half of the end-to-end
// maximum measured before, for a minute while the dispatcher delivers. The
// backlog must not grow; the intake latency is what a factory sees under a
// realistic load, not at saturation.
func (b *bench) runSustained(ctx context.Context, maxRate float64) error {
	w, err := b.prepareDelivery(ctx)
	if err != nil {
		return err
	}
	defer w.close()
	svc, err := b.startService(ctx, "sustained", "tcp://"+b.opts.mqttAddr)
	if err != nil {
		return err
	}
	defer svc.stop()
	d := 60 * time.Second
	s := sustained{rate: maxRate / 2}
	n := int(s.rate * d.Seconds())
	prefix := "S" + b.runID + "-"
	done := w.expect(prefix, n)

	// Open loop: claim i is sent at start + i/rate by one of 64 clients,
	// whatever the answers of the others, as devices on a line arrive.
	const clients = 64
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rc := newRawClient(svc.base)
			defer rc.close()
			var mine measured
			for i := c; i < n && ctx.Err() == nil; i += clients {
				at := start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
				time.Sleep(time.Until(at))
				body := []byte(fmt.Sprintf(`{"secretKey":"%s%d","durationMs":60000}`, prefix, i+1))
				t0 := time.Now()
				st, _, err := rc.post(ctx, "/devices/"+token(prefix, int64(i+1))+"/claim", "application/json", body, nil)
				if err != nil || st != http.StatusAccepted {
					mine.errs++
					continue
				}
				mine.n++
				mine.lat = append(mine.lat, time.Since(t0))
			}
			mu.Lock()
			s.intake.n += mine.n
			s.intake.errs += mine.errs
			s.intake.lat = append(s.intake.lat, mine.lat...)
			mu.Unlock()
		})
	}
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
loop:
	for {
		select {
		case <-finished:
			break loop
		case <-sample.C:
			p, err := svc.metric("claimsvc_pending_claims")
			if err != nil {
				continue
			}
			if time.Since(start) < 5*time.Second {
				s.backlogStart = p
			}
			s.backlogMax = max(s.backlogMax, p)
		}
	}
	s.intake.elapsed = time.Since(start)
	time.Sleep(2 * time.Second) // the gauges refresh every few seconds
	s.backlogEnd, _ = svc.metric("claimsvc_pending_claims")
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	s.delivered, _ = w.count()
	s.sent = n
	b.progress("sustained: %.0f claims/s asked for %s: intake %.0f/s p50 %.2f p99 %.2f ms, %d errors; backlog %.0f → %.0f (max %.0f); %d of %d delivered",
		s.rate, d, s.intake.rate(), s.intake.pct(.5), s.intake.pct(.99), s.intake.errs, s.backlogStart, s.backlogEnd, s.backlogMax, s.delivered, n)

	figure := fmt.Sprintf("sustained, %.0f claims/s for %s (50%% of the end-to-end maximum)", s.rate, d)
	b.add(row{figure: figure, unit: "intake p99 ms", ours: s.intake.pct(.99), note: fmt.Sprintf("p50 %.2f ms; %d errors", s.intake.pct(.5), s.intake.errs)})
	// Not growing: what is pending at the end is at most a few seconds of intake.
	ok := s.backlogEnd <= 3*s.rate && s.delivered == n
	b.add(row{figure: figure, unit: "pending at the end", ours: s.backlogEnd, absolute: fmt.Sprintf("≤ %.0f (3 s of intake), all delivered", 3*s.rate), absOK: &ok,
		note: fmt.Sprintf("after 5 s: %.0f, max %.0f; %d of %d delivered within 30 s of the end", s.backlogStart, s.backlogMax, s.delivered, n)})
	return nil
}
