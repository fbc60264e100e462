package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	keyHolderKey        // the request carries an accepted API key (or none is configured)
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// withRequestID keeps a well-formed inbound X-Request-Id, otherwise makes one,
// and echoes it on every response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			id = uuid.Must(uuid.NewV7()).String()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe logs and measures each request by its route pattern, never by its
// raw path (a path may hold a device token), and turns panics into 500s.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, r, s.log, &claim.Error{Code: claim.CodeInternal, Message: "internal error"})
				}
			}
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			d := time.Since(start)
			s.metrics.HTTPDuration.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(rec.status)).Observe(d.Seconds())
			level := slog.LevelInfo
			if route == "/livez" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug
			}
			s.log.Log(r.Context(), level, "request", "request_id", requestID(r.Context()), "method", r.Method,
				"route", route, "status", rec.status, "bytes", rec.bytes, "duration_ms", float64(d.Microseconds())/1000)
		}()
		next.ServeHTTP(rec, r)
	})
}

// Access decides who may call which routes (docs/security.md §1.2). Keys are
// configured as SHA-256 hex digests (CLAIMSVC_API_KEYS), so the service never
// holds them in clear. Whenever keys are configured, every route but the
// device routes and the probes needs one: operators' routes, reads of a
// claim by id and its events, and the batch.
type Access struct {
	KeyHashes [][]byte // SHA-256 of each accepted key
	// RequireForClaims makes the device routes (create a claim, read a
	// device's claims by its token) need a key too.
	RequireForClaims bool
}

// presentedKey reads "Authorization: Bearer K" or "X-API-Key: K".
func presentedKey(r *http.Request) (string, bool) {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k, true
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), true
	}
	return "", false
}

// allowed compares the key's digest with every configured digest in constant
// time (no early exit), so timing reveals nothing about which matched.
func (a Access) allowed(key string) bool {
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for _, h := range a.KeyHashes {
		ok |= subtle.ConstantTimeCompare(sum[:], h)
	}
	return ok == 1
}

// open reports whether no API key is configured and none is required: the
// demo, or the explicit opt-out. Every caller then counts as a key holder.
func (a Access) open() bool { return len(a.KeyHashes) == 0 && !a.RequireForClaims }

// authenticate runs on every API route. A presented key that is not accepted
// gets 403 wherever it is sent (a factory tool with a wrong key learns it at
// once instead of being served as a caller without a key); an accepted key
// marks the request as a key holder's (keyHolder). Without configured keys
// every caller is a key holder.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.access.open() {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyHolderKey, true)))
			return
		}
		key, ok := presentedKey(r)
		switch {
		case !ok:
			next.ServeHTTP(w, r)
		case !s.access.allowed(key): // also when keys are required but none is configured (config refuses that)
			writeError(w, r, s.log, claim.Errorf(codeForbidden, "the API key is not accepted"))
		default:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyHolderKey, true)))
		}
	})
}

// keyHolder reports whether the request carries an accepted API key, or no
// key is configured at all.
func keyHolder(r *http.Request) bool {
	ok, _ := r.Context().Value(keyHolderKey).(bool)
	return ok
}

// requireKey answers 401 to a caller without a key where one is required
// (after authenticate).
func (s *server) requireKey(required bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if !required {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !keyHolder(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="claimsvc"`)
				writeError(w, r, s.log, claim.Errorf(codeUnauthorized, "send an API key: Authorization: Bearer <key> or X-API-Key"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// methodLabel bounds the method label: a client can send any method name,
// and each would otherwise become a new time series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
