package claim

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// Job is a leased claim with what it takes to send it. Token and SecretKey
// are opened (decrypted) by the store and live only in memory for the
// attempt.
type Job struct {
	ID         uuid.UUID
	Lease      uuid.UUID // this lease's id: outcomes are applied only while it still holds
	Delivery   Delivery
	DeviceName string // "" when none was given (required for DeliveryAttribute)
	Token      Token
	SecretKey  *Secret
	DurationMs *int64
	Attempt    int // 1 for the first attempt
	// Refusals counts the attempts in a row that ThingsBoard answered but
	// refused (FailRefused), unbroken by any other kind of answer.
	Refusals     int
	CreatedAt    time.Time
	PendingSince time.Time
}

// Payload is the claim payload the job sends (see Payload).
func (j Job) Payload() []byte { return Payload(j.SecretKey, j.DurationMs) }

// FailureKind classifies why an attempt did not deliver its claim. The
// dispatcher decides by kind, never by an error's text, and the store keeps
// the kind of the last failure in its own column.
type FailureKind string

// The kinds of delivery failure.
const (
	// FailUnreachable: no answer from ThingsBoard at all (refused, timed out,
	// TLS failure). It says nothing about the claim: retry once it answers.
	FailUnreachable FailureKind = "unreachable"
	// FailRejected: ThingsBoard refused the claim for good: it does not know
	// the token (MQTT CONNACK 4 or 5, HTTP 401) or the device name, or the
	// device already has a customer. Final, never retried.
	FailRejected FailureKind = "rejected"
	// FailUnauthorized: ThingsBoard's REST API refused claimsvc's own
	// credentials (401/403): an operator's problem, not the claim's, so the
	// claim is retried, and the service reports it (metric, log, readiness).
	FailUnauthorized FailureKind = "unauthorized"
	// FailRefused: ThingsBoard answered but refused this claim in a way
	// that a device profile explains when it repeats (MQTT CONNACK 3, or the
	// connection closed before PUBACK: docs/thingsboard.md §9). Retried
	// with backoff; the dispatcher gives up early when it keeps happening
	// while ThingsBoard takes other claims.
	FailRefused FailureKind = "refused"
	// FailTransient: anything else; retried with backoff.
	FailTransient FailureKind = "transient"
)

// DeliveryError is a failed attempt with its kind and, where the sender
// knows one, a short reason code (such as "connack_3"; a bounded set, used as
// a metric label). Its text never holds a token or a secret.
type DeliveryError struct {
	Kind   FailureKind
	Reason string
	Err    error
}

func (e *DeliveryError) Error() string { return e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

// Failure wraps err as a DeliveryError of kind k.
func Failure(k FailureKind, err error) error { return &DeliveryError{Kind: k, Err: err} }

// FailureFor wraps err as a DeliveryError of kind k with a reason code.
func FailureFor(k FailureKind, reason string, err error) error {
	return &DeliveryError{Kind: k, Reason: reason, Err: err}
}

// ReasonOf returns the reason code of a failed attempt's error: its
// DeliveryError's reason, else its kind.
func ReasonOf(err error) string {
	var de *DeliveryError
	if errors.As(err, &de) && de.Reason != "" {
		return de.Reason
	}
	return string(KindOf(err))
}

// KindOf returns the kind of a failed attempt's error: the kind of the
// DeliveryError it wraps, or FailTransient.
func KindOf(err error) FailureKind {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Kind
	}
	return FailTransient
}

// OutcomeKind is what came of an attempt.
type OutcomeKind string

// The outcomes the store records.
const (
	OutcomeDelivered OutcomeKind = "delivered" // acknowledged: final; token and secret erased
	OutcomeRejected  OutcomeKind = "rejected"  // unknown token: final; token and secret erased
	OutcomeRetry     OutcomeKind = "retry"     // transient failure: pending again after Next
	OutcomeFailed    OutcomeKind = "failed"    // given up: token and secret kept for an operator's retry
)

// Outcome is one attempt's result, reported under the lease it ran under.
// It holds no token or secret.
type Outcome struct {
	Claim   uuid.UUID
	Lease   uuid.UUID
	Kind    OutcomeKind
	Failure FailureKind   // the last failure's kind; empty for Delivered
	Reason  string        // last_error and the events' detail; empty for Delivered
	Next    time.Duration // Retry: the next attempt is due this long after the report lands
	Receipt Receipt       // Delivered: what the delivery learnt
}

// Receipt is what a delivery learnt that the store keeps: ThingsBoard's id
// for the device (attribute claims resolve it by name) and the exact
// expiry written (attribute claims). Zero values: unknown, and the store
// computes the expiry from the delivery time and the duration.
type Receipt struct {
	DeviceID  string
	ExpiresAt time.Time
}

// OutcomeOf is the outcome of job j. err is the attempt's error (nil when
// delivered): its text is the reason kept, its kind (KindOf) the failure's.
func OutcomeOf(j Job, kind OutcomeKind, err error, next time.Duration) Outcome {
	o := Outcome{Claim: j.ID, Lease: j.Lease, Kind: kind, Next: next}
	if err != nil {
		o.Failure, o.Reason = KindOf(err), err.Error()
	}
	return o
}

// ErrLeaseLost means the claim was no longer held under the job's lease when
// its outcome was reported (the lease expired and was reaped or taken over,
// or an operator changed the claim). The report was not applied.
var ErrLeaseLost = errors.New("lease lost")

// ErrCannotDecrypt means leased claims were sealed with a data key this
// process does not have; they were handed back for a replica that has it.
var ErrCannotDecrypt = errors.New("cannot decrypt stored claims: check CLAIMSVC_DATA_KEY")

// Backlog is what the pending gauges show.
type Backlog struct {
	Pending      int64
	OldestAccept time.Time // zero when nothing is pending
}
