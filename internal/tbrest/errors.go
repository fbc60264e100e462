package tbrest

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kind says what went wrong with a call. Its values are also the outcome labels given to
// Config.OnRequest, so they never change.
type Kind string

const (
	// KindUnreachable: no HTTP answer at all (connection refused, DNS, TLS, a timeout, a connection
	// cut before the answer was read). For a request with a body, ThingsBoard may have received it.
	KindUnreachable Kind = "unreachable"
	// KindUnauthorized: ThingsBoard refused the credentials or their permissions (401, even after
	// logging in again, or 403), or a two-factor login, or no credentials are configured. An
	// operator has to act.
	KindUnauthorized Kind = "unauthorized"
	// KindUnknownToken: the HTTP device API answered 401: ThingsBoard knows no device with that
	// access token (docs/thingsboard.md §1.3).
	KindUnknownToken Kind = "unknown_token"
	// KindNotFound: the device does not exist (404). errors.Is(err, ErrNotFound) is true.
	KindNotFound Kind = "not_found"
	// KindClient: any other 4xx answer (400, 405, 429, …). Never retried.
	KindClient Kind = "client_error"
	// KindServer: a 5xx answer, after the retries.
	KindServer Kind = "server_error"
	// KindBadResponse: an answer this client cannot use: a redirect, an unexpected status, a body
	// that is not the JSON expected or is larger than 1 MiB.
	KindBadResponse Kind = "bad_response"
	// KindCanceled: the caller's context ended before an answer. The error wraps ctx.Err().
	KindCanceled Kind = "canceled"
	// KindInvalid: the arguments were refused before anything was sent (an empty name or token, a
	// device id that is not a UUID).
	KindInvalid Kind = "invalid_argument"
)

// OutcomeOK is the outcome given to Config.OnRequest for a 2xx answer; every other outcome is a Kind.
const OutcomeOK = "ok"

var (
	// ErrNotFound is wrapped by the *Error of a call whose device does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoCredentials is wrapped by the *Error (KindUnauthorized) of a REST call made by a
	// Client configured without an API key or a user name.
	ErrNoCredentials = errors.New("no ThingsBoard REST credentials configured")
	// errTwoFactor: the login answered a pre-verification token, usable only for a second factor.
	errTwoFactor = errors.New("the user has two-factor authentication; use an API key or another user")
)

// Error is the error of every call that failed. Its text names the operation and the kind, the
// HTTP status and ThingsBoard's errorCode when there was an answer, and a cause when there was
// none. It never holds a URL, a credential, a device token, a secret key or an answer's body.
type Error struct {
	Op     string // the operation, one of the Op constants
	Kind   Kind
	Status int   // the HTTP status; 0 when there was no answer
	Code   int   // ThingsBoard's errorCode from the answer's body (docs/thingsboard.md §4.1); 0 when absent
	Err    error // the cause, stripped of URLs and secrets; may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tbrest ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if e.Status != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
		if e.Code != 0 {
			b.WriteString(", errorCode ")
			b.WriteString(strconv.Itoa(e.Code))
		}
		b.WriteString(")")
	}
	if e.Err != nil && !errors.Is(e.Err, ErrNotFound) {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or "" when err is not (and wraps no) *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// IsUnreachable reports whether ThingsBoard gave no HTTP answer at all.
func IsUnreachable(err error) bool { return KindOf(err) == KindUnreachable }

// IsUnauthorized reports whether ThingsBoard refused claimsvc's REST credentials or their
// permissions: an operator problem, not a claim's.
func IsUnauthorized(err error) bool { return KindOf(err) == KindUnauthorized }

// IsUnknownToken reports whether the HTTP device API refused the device token (401).
func IsUnknownToken(err error) bool { return KindOf(err) == KindUnknownToken }

// redacted is a cause whose text had to be cleaned. It still matches context.Canceled and
// context.DeadlineExceeded when the original did.
type redacted struct {
	msg string
	ctx error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.ctx }

// timeoutError is the cause of a request that hit Config.Timeout.
type timeoutError struct{ d time.Duration }

func (t *timeoutError) Error() string { return "no answer within " + t.d.String() }
func (t *timeoutError) Unwrap() error { return context.DeadlineExceeded }

var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"']*`)

// cleanCause returns err without the request URL (net/http's *url.Error quotes it whole) and with
// every secret replaced. It keeps the original error when its text is already clean, so errors.As
// still finds a *net.OpError and the like.
func cleanCause(err error, secrets []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := urlPattern.ReplaceAllString(msg, "[url]")
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "[redacted]")
		}
	}
	if clean == msg {
		return err
	}
	r := &redacted{msg: clean}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		r.ctx = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		r.ctx = context.Canceled
	}
	return r
}

// permanentTransport reports transport errors that a retry cannot heal: the server's certificate
// was refused, or it does not speak TLS.
func permanentTransport(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &rh)
}

// invalid is the error of a call refused before anything was sent.
func invalid(op, what string) *Error {
	return &Error{Op: op, Kind: KindInvalid, Err: errors.New(what)}
}
