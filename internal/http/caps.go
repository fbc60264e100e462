package http

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Caps bound what concurrent requests may hold (docs/security.md §4).
type Caps struct {
	// Waiters is how many Prefer: wait requests are held at once
	// (CLAIMSVC_MAX_WAITERS); one more is answered at once (202).
	Waiters int
	// Batches is how many POST /claims:batch requests are handled at once
	// (CLAIMSVC_MAX_BATCHES); one more waits up to BatchWait, then
	// gets 503 with Retry-After. Its body is not read while it waits.
	Batches int
	// BatchWait is how long a batch waits for a slot (default 5 s).
	BatchWait time.Duration
}

// Defaults of Caps.
const (
	DefaultMaxWaiters = 256
	DefaultMaxBatches = 4
	DefaultBatchWait  = 5 * time.Second
)

func (c Caps) withDefaults() Caps {
	if c.Waiters <= 0 {
		c.Waiters = DefaultMaxWaiters
	}
	if c.Batches <= 0 {
		c.Batches = DefaultMaxBatches
	}
	if c.BatchWait <= 0 {
		c.BatchWait = DefaultBatchWait
	}
	return c
}

// MaxHeaderBytes bounds a request's header block (net/http allows 4 KiB
// more for the request line): a device token is at most 128 bytes, an API
// key a few dozen.
const MaxHeaderBytes = 8 << 10

// NewHTTPServer returns the API's http.Server with its limits: header size
// and read timeouts (slow clients are cut), and a write timeout that lets a
// Prefer: wait answer out.
func NewHTTPServer(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      MaxPreferWait*time.Second + 15*time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          errLog,
	}
}

// waitSlot takes a waiter's slot, or reports that all are taken; release
// gives it back.
func (s *server) waitSlot() (release func(), ok bool) {
	select {
	case s.waiters <- struct{}{}:
		s.metrics.Sec.Waiters.Inc()
		return func() { <-s.waiters; s.metrics.Sec.Waiters.Dec() }, true
	default:
		s.metrics.Sec.WaitsDeclined.Inc()
		return nil, false
	}
}

// batchSlot waits up to Caps.BatchWait for a batch's slot. Without one it
// answers 503 (nothing was stored) and returns ok false.
func (s *server) batchSlot(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	select {
	case s.batches <- struct{}{}:
		return func() { <-s.batches }, true
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.batchWait)
	defer cancel()
	select {
	case s.batches <- struct{}{}:
		return func() { <-s.batches }, true
	case <-ctx.Done():
	}
	s.metrics.Sec.BatchesRefused.Inc()
	w.Header().Set("Retry-After", "1")
	writeError(w, r, s.log, claim.Errorf(claim.CodeUnavailable,
		"too many batches are being stored at once; nothing was stored, send it again after Retry-After"))
	return nil, false
}
