// Package wire holds the JSON bodies of claimsvc's public API
// (api/openapi.yaml, docs/design.md §2) that both sides use: the server
// (internal/http) writes them and the Go client (internal/client) reads them,
// so the two cannot drift apart. Nothing here holds a device token or a
// secret key.
package wire

import (
	"fmt"
	"strings"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Claim is the public face of a claim (docs/design.md §2.4).
type Claim struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"`
	Delivery      string     `json:"delivery"`
	DeviceName    *string    `json:"deviceName"`
	TokenHint     string     `json:"tokenHint"`
	HasSecret     bool       `json:"hasSecret"`
	DurationMs    *int64     `json:"durationMs"`
	Attempts      int        `json:"attempts"`
	LastError     *string    `json:"lastError"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
	DeliveredAt   *time.Time `json:"deliveredAt"`
	ExpiresAt     *time.Time `json:"expiresAt"`
	ClaimedAt     *time.Time `json:"claimedAt"`
	CustomerID    *string    `json:"customerId"`
}

// Final reports whether the claim's status is final (every status but
// pending).
func (c Claim) Final() bool { return c.Status != string(claim.StatusPending) }

// FieldError names a field that breaks a rule.
type FieldError = claim.FieldError

// Problem is an RFC 9457 problem details body, claimsvc's answer to a
// request it refused.
type Problem struct {
	Type            string       `json:"type"`
	Title           string       `json:"title"`
	Status          int          `json:"status"`
	Detail          string       `json:"detail"`
	RequestID       string       `json:"requestId"`
	Errors          []FieldError `json:"errors,omitempty"`
	BlockingClaimID string       `json:"blockingClaimId,omitempty"`
	OriginalClaimID string       `json:"originalClaimId,omitempty"` // with an Idempotency-Key reused
}

// Error makes a Problem the error of the call that got it: status, title,
// detail, and the fields and claims it names.
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" && p.Detail != p.Title {
		b.WriteString(": " + p.Detail)
	}
	for _, f := range p.Errors {
		fmt.Fprintf(&b, "; %s %s", f.Field, f.Message)
	}
	if p.BlockingClaimID != "" {
		b.WriteString("; blocking claim " + p.BlockingClaimID)
	}
	if p.OriginalClaimID != "" {
		b.WriteString("; the key's claim " + p.OriginalClaimID)
	}
	return b.String()
}

// BatchResult is one claim's outcome in a batch answer.
type BatchResult struct {
	Index int `json:"index"`
	// HTTPStatus is the HTTP status this claim would have had on the single
	// route (202 created, 200 replayed, or the problem's); named so that it
	// cannot be taken for the claim's own status (claim.status).
	HTTPStatus int      `json:"httpStatus"`
	Replayed   bool     `json:"replayed,omitempty"`
	Claim      *Claim   `json:"claim,omitempty"`
	Problem    *Problem `json:"problem,omitempty"`
}

// BatchAnswer is the answer to POST /claims:batch: one result per item, in
// the items' order.
type BatchAnswer struct {
	Results  []BatchResult `json:"results"`
	Created  int           `json:"created"`
	Replayed int           `json:"replayed"`
	Failed   int           `json:"failed"`
}

// Stats is GET /stats: the claims by status and the backlog, as
// `claimsvc status` shows them.
type Stats struct {
	At      time.Time        `json:"at"`
	Counts  map[string]int64 `json:"counts"`
	Total   int64            `json:"total"`
	Backlog Backlog          `json:"backlog"`
}

// Backlog is the pending part of Stats.
type Backlog struct {
	Pending                 int64      `json:"pending"`
	Due                     int64      `json:"due"`
	WithErrors              int64      `json:"withErrors"`
	OldestPendingSince      *time.Time `json:"oldestPendingSince"`
	OldestPendingAgeSeconds float64    `json:"oldestPendingAgeSeconds"`
}
