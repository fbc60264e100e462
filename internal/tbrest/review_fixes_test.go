package tbrest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// A 404 that is not ThingsBoard's (no errorCode 32: a proxy, a wrong path
// prefix in CLAIMSVC_TB_URL) does not reject the attribute claim for good.
func TestA404ThatIsNotThingsBoardsIsNoRejection(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<html><body>404 Not Found (nginx)</body></html>")
	})
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey})
	sec := claim.Secret("s3cret")
	_, err := AttributeSender{Client: c}.Send(ctxT(t), claim.Job{ID: uuid.New(), DeviceName: "dev-1", SecretKey: &sec})
	if claim.KindOf(err) == claim.FailRejected {
		t.Fatalf("a proxy's 404 rejected the claim for good: %v", err)
	}
}

// Attempt 1 writes claimingData but its answer is lost; the customer claims
// the device with that secret; attempt 2 finds a customer: the claim worked
// (delivered, and the tracker records claimed), it is not rejected.
func TestARetryFindingItsOwnClaimUsedIsDelivered(t *testing.T) {
	const devID = "5f0c2d3e-1111-4222-8333-944455556666"
	var written, customer atomic.Bool
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/tenant/devices":
			cust := nullCustomerID
			if customer.Load() {
				cust = "7d1e0000-0000-4000-8000-000000000001"
			}
			_, _ = io.WriteString(w, `{"id":{"id":"`+devID+`"},"name":"dev-1","customerId":{"id":"`+cust+`"}}`)
		default: // the attribute write: applied, but the answer comes too late
			written.Store(true)
			time.Sleep(300 * time.Millisecond)
		}
	})
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, Timeout: 100 * time.Millisecond, Retries: -1})
	sec := claim.Secret("s3cret")
	j := claim.Job{ID: uuid.New(), DeviceName: "dev-1", SecretKey: &sec, Attempt: 1}
	_, err := AttributeSender{Client: c}.Send(ctxT(t), j)
	if err == nil || claim.KindOf(err) == claim.FailRejected || !written.Load() {
		t.Fatalf("attempt 1: %v", err)
	}
	customer.Store(true) // the customer used the claimingData attempt 1 wrote
	j.Attempt = 2
	r, err := AttributeSender{Client: c}.Send(ctxT(t), j)
	if err != nil || r.DeviceID != devID {
		t.Fatalf("attempt 2: the claim that worked is not delivered: %+v %v", r, err)
	}
}

// A shutdown (ctx cancelled) during the retry backoff is a cancellation, not
// the last failure: the dispatcher releases the claim uncounted instead of
// recording an attempt and tripping the breaker (docs/design.md §10.5).
func TestCancelDuringBackoffIsCanceled(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey})
	c.backoffBase, c.backoffMax = time.Second, time.Second
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := c.ClaimAsDevice(ctx, "TOKEN", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during backoff: %v (kind %s)", err, KindOf(err))
	}
}
