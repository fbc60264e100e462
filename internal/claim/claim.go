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

// Status is where a claim stands. See docs/design.md §2 "Statuses" and
// docs/design.md §9.
type Status string

const (
	StatusPending   Status = "pending"   // stored, not yet acknowledged by ThingsBoard
	StatusDelivered Status = "delivered" // ThingsBoard acknowledged it (PUBACK, HTTP 200, attribute written)
	StatusRejected  Status = "rejected"  // ThingsBoard does not know the token or the device, or it is already claimed
	StatusFailed    Status = "failed"    // undelivered after MaxPendingAge, or a permanent local error
	StatusCancelled Status = "cancelled" // cancelled while pending, or an attribute claim revoked
	StatusClaimed   Status = "claimed"   // the device now belongs to a customer
	StatusExpired   Status = "expired"   // expiresAt passed and no customer has the device
	// StatusSuperseded: a newer attribute claim for the device replaced it
	// (ThingsBoard keeps the last claimingData written).
	StatusSuperseded Status = "superseded"
)

// Statuses lists every status, in the order a claim may pass through them.
var Statuses = []Status{StatusPending, StatusDelivered, StatusClaimed, StatusExpired, StatusSuperseded,
	StatusRejected, StatusFailed, StatusCancelled}

// Final reports whether no further delivery attempt will happen without an
// operator: every status but pending. A delivered claim may still become
// claimed, expired, superseded or (attribute) cancelled.
func (s Status) Final() bool { return s != StatusPending }

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}

// Delivery is how a claim reaches ThingsBoard (docs/design.md §9).
type Delivery string

const (
	// DeliveryMQTT: the device-side claim on v1/devices/me/claim, as the
	// device (docs/thingsboard.md §1.2). Lives in ThingsBoard's claim cache.
	DeliveryMQTT Delivery = "mqtt"
	// DeliveryHTTP: the same device-side claim through the HTTP device API
	// (docs/thingsboard.md §1.3); opens no device session.
	DeliveryHTTP Delivery = "http"
	// DeliveryAttribute: the server-side claimingData attribute, written
	// through the REST API (docs/thingsboard.md §3.2); survives restarts
	// and a customer's typo.
	DeliveryAttribute Delivery = "attribute"
)

// Deliveries lists every delivery.
var Deliveries = []Delivery{DeliveryMQTT, DeliveryHTTP, DeliveryAttribute}

// Valid reports whether d is a known delivery.
func (d Delivery) Valid() bool {
	return d == DeliveryMQTT || d == DeliveryHTTP || d == DeliveryAttribute
}

// DeviceSide reports whether d registers the claim as the device does, in
// ThingsBoard's claim cache (docs/thingsboard.md §3.1).
func (d Delivery) DeviceSide() bool { return d != DeliveryAttribute }

// ThingsBoardDefaultDuration is what ThingsBoard applies when a claim carries
// no durationMs (security.claim.duration, 24 h).
const ThingsBoardDefaultDuration = 24 * time.Hour

// MaxDurationMs is the longest claim window claimsvc accepts (365 days, for
// attribute claims; device-side claims are capped lower, by ThingsBoard's
// claim cache: see Rules.CacheTTL).
const MaxDurationMs = 31_536_000_000

// MaxDeviceName is the longest device name accepted (ThingsBoard's limit).
const MaxDeviceName = 255

// Claim is one stored claim, as the API shows it: never its token or secret.
type Claim struct {
	ID            uuid.UUID
	Status        Status
	Delivery      Delivery
	DeviceName    string // "" when the request named none
	TokenHint     string
	HasSecret     bool
	DurationMs    *int64
	Attempts      int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	NextAttemptAt *time.Time
	DeliveredAt   *time.Time
	// ExpiresAt is when ThingsBoard forgets the claim: set at delivery to
	// deliveredAt + duration (ThingsBoard's 24 h default when none was
	// sent), or the expirationTime written for an attribute claim.
	ExpiresAt  *time.Time
	ClaimedAt  *time.Time // with StatusClaimed: when claimsvc saw the customer
	CustomerID string     // with StatusClaimed: ThingsBoard's customer id
}

// ExpiryAfter is when a claim delivered at t with durationMs expires in
// ThingsBoard: t + duration, or ThingsBoard's 24 h default without one.
func ExpiryAfter(t time.Time, durationMs *int64) time.Time {
	d := ThingsBoardDefaultDuration
	if durationMs != nil {
		d = time.Duration(*durationMs) * time.Millisecond
	}
	return t.Add(d)
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
	SecretKey      *Secret  // nil: absent (ThingsBoard's default "")
	DurationMs     *int64   // nil: absent (ThingsBoard's default, 24 h)
	Delivery       Delivery // never empty once validated
	DeviceName     string   // "" when none was given
	IdempotencyKey string   // "" when none
	Force          bool     // ?force=true: override the hold rule
}

// Fingerprint identifies "the same request" (token + secret + duration, and
// the delivery and device name when they are not the defaults) for replays
// after the token and secret are erased. It is an HMAC keyed with the token,
// so the stored value cannot be used to guess a short secret without the
// token, which is no longer stored once the claim is final. A request with
// the default delivery and no device name has the fingerprint it had before
// deliveries existed, so replays work across the upgrade.
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
	if (r.Delivery != "" && r.Delivery != DeliveryMQTT) || r.DeviceName != "" {
		m.Write([]byte{0})
		m.Write([]byte(r.Delivery))
		m.Write([]byte{0})
		m.Write([]byte(r.DeviceName))
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
