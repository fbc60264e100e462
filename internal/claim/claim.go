// Package claim holds claimsvc's domain: what a claim is, its statuses, the
// rules a request must follow, and the errors that the HTTP layer maps to
// statuses in one place. It knows nothing of SQL, MQTT or HTTP.
package claim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Status is where a claim stands. See docs/design.md §2 "Statuses".
type Status string

const (
	StatusPending   Status = "pending"   // stored, not yet acknowledged by ThingsBoard
	StatusDelivered Status = "delivered" // ThingsBoard's MQTT transport sent PUBACK
	StatusRejected  Status = "rejected"  // CONNACK 4/5: ThingsBoard does not know the token
	StatusFailed    Status = "failed"    // undelivered after MaxPendingAge, or a permanent local error
	StatusCancelled Status = "cancelled" // cancelled by an operator while pending
)

// Final reports whether no further delivery will happen without an operator.
func (s Status) Final() bool { return s != StatusPending }

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusDelivered, StatusRejected, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// ThingsBoardDefaultDuration is what ThingsBoard applies when a claim carries
// no durationMs (security.claim.duration, 24 h).
const ThingsBoardDefaultDuration = 24 * time.Hour

// MaxDurationMs is the longest claim window claimsvc accepts (30 days).
const MaxDurationMs = 2_592_000_000

// Claim is one stored claim. Token and SecretKey are only populated where the
// claim may still be sent (the dispatcher's lease); they are erased from the
// database once the claim is delivered, rejected or cancelled.
type Claim struct {
	ID            uuid.UUID
	Status        Status
	TokenHint     string
	HasSecret     bool
	DurationMs    *int64
	Attempts      int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	NextAttemptAt *time.Time
	DeliveredAt   *time.Time
}

// ExpiresAt is when ThingsBoard forgets the claim: deliveredAt + duration, or
// ThingsBoard's 24 h default when no duration was sent.
func (c Claim) ExpiresAt() *time.Time {
	if c.DeliveredAt == nil {
		return nil
	}
	d := ThingsBoardDefaultDuration
	if c.DurationMs != nil {
		d = time.Duration(*c.DurationMs) * time.Millisecond
	}
	t := c.DeliveredAt.Add(d)
	return &t
}

// Token is a device access token. It never prints itself: logging a Token by
// mistake yields a hint, not the secret.
type Token string

// String returns the hint, so fmt and slog never show the token.
func (t Token) String() string { return Hint(string(t)) }

// LogValue keeps the token out of structured logs.
func (t Token) LogValue() slog.Value { return slog.StringValue(Hint(string(t))) }

// Hash is the SHA-256 of the token, the only form kept once a claim is final.
func (t Token) Hash() []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// Hint is the first 4 and last 2 characters of a token of at least 12
// characters, otherwise "…": enough to tell devices apart, not to use one.
func Hint(token string) string {
	if len(token) < 12 {
		return "…"
	}
	return token[:4] + "…" + token[len(token)-2:]
}

// Secret is a claim secret key. Like Token it never prints itself.
type Secret string

func (Secret) String() string       { return "[redacted]" }
func (Secret) GoString() string     { return "[redacted]" }
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }
func (t Token) GoString() string    { return Hint(string(t)) }

// Request is a validated claim request.
type Request struct {
	Token          Token
	SecretKey      *Secret // nil: absent (ThingsBoard's default "")
	DurationMs     *int64  // nil: absent (ThingsBoard's default, 24 h)
	IdempotencyKey string  // "" when none
	Force          bool    // ?force=true: override the hold rule
}

// Fingerprint identifies "the same request" (token + secret + duration) for
// replays after the token and secret are erased. It is an HMAC keyed with the
// token, so the stored value cannot be used to guess a short secret without
// the token, which is no longer stored once the claim is final.
func (r Request) Fingerprint() []byte {
	m := hmac.New(sha256.New, []byte(r.Token))
	if r.SecretKey != nil {
		m.Write([]byte{1})
		m.Write([]byte(*r.SecretKey))
	} else {
		m.Write([]byte{0})
	}
	m.Write([]byte{0})
	if r.DurationMs != nil {
		m.Write([]byte(strconv.FormatInt(*r.DurationMs, 10)))
	}
	return m.Sum(nil)
}

// Payload is the MQTT claim payload ThingsBoard expects: compact JSON, each key
// present only when it has a value, durationMs always a JSON number.
func Payload(secret *Secret, durationMs *int64) []byte {
	type payload struct {
		SecretKey  *string `json:"secretKey,omitempty"`
		DurationMs *int64  `json:"durationMs,omitempty"`
	}
	var p payload
	if secret != nil {
		s := string(*secret)
		p.SecretKey = &s
	}
	p.DurationMs = durationMs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" stays "<": the bytes a device would send
	_ = enc.Encode(p)        // cannot fail: two plain fields
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
