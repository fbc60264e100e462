package http

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/health"
)

// MaxPreferWait caps `Prefer: wait=N` (docs/design.md §2: 30 s).
const MaxPreferWait = 30

// tokenFrom reads the device token from the path or the X-Device-Token header
// and returns it with the name to report it under.
type tokenFrom func(r *http.Request) (token, field string, err error)

func pathToken(r *http.Request) (string, string, error) {
	tok := chi.URLParam(r, "token")
	if r.URL.RawPath != "" { // chi matched on the escaped path: decode the segment
		dec, err := url.PathUnescape(tok)
		if err != nil {
			return "", "token", invalidField("token", "is not a valid URL path segment")
		}
		tok = dec
	}
	return tok, "token", nil
}

func headerToken(r *http.Request) (string, string, error) {
	return r.Header.Get("X-Device-Token"), "X-Device-Token", nil
}

func invalidField(field, msg string) error {
	return &claim.Error{Code: claim.CodeInvalid, Message: "the request breaks the field rules",
		Fields: []claim.FieldError{{Field: field, Message: msg}}}
}

// deviceToken extracts and checks a token for the read routes.
func deviceToken(r *http.Request, from tokenFrom) (claim.Token, error) {
	tok, field, err := from(r)
	if err != nil {
		return "", err
	}
	if !claim.ValidToken(tok) {
		msg := "must be 1-128 printable ASCII characters without spaces or '/'"
		if tok == "" {
			msg = "is required"
		}
		return "", invalidField(field, msg)
	}
	return claim.Token(tok), nil
}

// createClaim handles POST /devices/{token}/claim and POST /devices/claim.
//
// A caller without an API key (the firmware, or someone guessing tokens)
// never learns a claim's delivery outcome from this answer
// (docs/security.md §3): Prefer: wait is not applied for it, the new claim
// is followed to its outcome against the caller's rejected-token budget,
// and a replay that shows a rejected claim costs that budget.
func (s *server) createClaim(from tokenFrom) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gs, ok := s.admit(w, r)
		if !ok {
			return
		}
		defer gs.end()
		c, replayed, wait, err := s.intake(w, r, from)
		if err != nil {
			s.metrics.ClaimsAccepted.WithLabelValues(acceptOutcome(err)).Inc()
			writeError(w, r, s.log, err)
			return
		}
		outcome := "created"
		if replayed {
			outcome = "replayed"
			w.Header().Set("Idempotent-Replayed", "true")
		} else {
			s.wake()
			gs.created(c.ID)
		}
		s.metrics.ClaimsAccepted.WithLabelValues(outcome).Inc()
		applied := false
		switch {
		case !keyHolder(r):
			if c.Status == claim.StatusRejected {
				gs.missed()
			}
		case wait >= 0 && (wait == 0 || c.Status.Final()):
			applied = true
		case wait > 0:
			if release, ok := s.waitSlot(); ok { // else: answered at once, without Preference-Applied
				applied = true
				c = s.waitFinal(r.Context(), c, time.Duration(wait)*time.Second)
				release()
			}
		}
		if applied {
			w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(wait))
		}
		// 200 only for what the contract says: a replay, or a final claim
		// within an applied wait. A claim replaced in its own intake
		// transaction (superseded at once) is still a 202: stored, read it.
		status := http.StatusAccepted
		if replayed || (applied && c.Status.Final()) {
			status = http.StatusOK
		}
		// Location names a route for key holders; a caller without a key
		// (a device) reads its claims at /devices/claims instead.
		if keyHolder(r) {
			w.Header().Set("Location", "/claims/"+c.ID.String())
		}
		writeJSON(w, "application/json", status, viewsFor(r, c)[0])
	}
}

// intake decodes, validates and stores one claim request. wait is the applied
// Prefer: wait in seconds, or -1 when none was asked for.
func (s *server) intake(w http.ResponseWriter, r *http.Request, from tokenFrom) (c claim.Claim, replayed bool, wait int, err error) {
	wait = preferWait(r.Header.Values("Prefer"))
	req, err := s.parseClaim(w, r, from)
	if err != nil {
		return c, false, wait, err
	}
	acc, err := s.store.Create(r.Context(), req, s.hold)
	return acc.Claim, acc.Replayed, wait, err
}

// parseClaim turns a claim request (token, query, headers, body) into a valid
// claim.Request, or a client error. It touches no storage, so the fuzz tests
// drive it directly.
func (s *server) parseClaim(w http.ResponseWriter, r *http.Request, from tokenFrom) (claim.Request, error) {
	// Field rules broken anywhere (the token, ?force, the body's fields) are
	// answered together, one entry per field; anything else (a body that is
	// not JSON, too large, of another type) stops at once.
	var fields []claim.FieldError
	collect := func(err error) error {
		var ce *claim.Error
		if errors.As(err, &ce) && ce.Code == claim.CodeInvalid && len(ce.Fields) > 0 {
			for _, f := range ce.Fields {
				if !slices.ContainsFunc(fields, func(g claim.FieldError) bool { return g.Field == f.Field }) {
					fields = append(fields, f)
				}
			}
			return nil
		}
		return err
	}
	tok, field, err := from(r)
	if err = collect(err); err != nil {
		return claim.Request{}, err
	}
	in := claim.Input{Token: tok, IdempotencyKey: r.Header.Get("Idempotency-Key")}
	in.Force, err = forceParam(r)
	if err = collect(err); err != nil {
		return claim.Request{}, err
	}
	body, err := readBody(w, r, MaxClaimBody)
	if err != nil {
		return claim.Request{}, err
	}
	if body != nil {
		if err := collect(decodeClaim(body, bodyShape, &in)); err != nil {
			return claim.Request{}, err
		}
	}
	if _, ok := r.Header["Idempotency-Key"]; ok && in.IdempotencyKey == "" {
		_ = collect(invalidField("Idempotency-Key", "must be 1-128 printable ASCII characters"))
	}
	req, err := s.validate.Request(in)
	if err = collect(renameField(err, "token", field)); err != nil {
		return claim.Request{}, err
	}
	if fields != nil {
		return claim.Request{}, &claim.Error{Code: claim.CodeInvalid, Message: "the request breaks the field rules", Fields: fields}
	}
	return req, nil
}

// renameField reports a field rule under the name the client used for the
// field (the X-Device-Token header, a batch item's idempotencyKey).
func renameField(err error, from, to string) error {
	var ce *claim.Error
	if errors.As(err, &ce) && from != to {
		for i := range ce.Fields {
			if ce.Fields[i].Field == from {
				ce.Fields[i].Field = to
			}
		}
	}
	return err
}

// preferences yields each preference of Prefer headers (RFC 7240) as its
// name and value, without parameters.
func preferences(values []string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, v := range values {
			for _, pref := range strings.Split(v, ",") {
				name, val, _ := strings.Cut(strings.TrimSpace(strings.SplitN(pref, ";", 2)[0]), "=")
				if !yield(strings.TrimSpace(name), val) {
					return
				}
			}
		}
	}
}

// prefersWait reports whether the Prefer headers ask for wait, with any value.
func prefersWait(values []string) bool {
	for name := range preferences(values) {
		if strings.EqualFold(name, "wait") {
			return true
		}
	}
	return false
}

// preferWait finds wait=N in Prefer headers (RFC 7240); -1 when absent.
func preferWait(values []string) int {
	for name, val := range preferences(values) {
		if !strings.EqualFold(name, "wait") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
		if err != nil || n < 0 {
			continue
		}
		return min(n, MaxPreferWait)
	}
	return -1
}

// waitFinal holds the response until the claim is final or d passes.
func (s *server) waitFinal(ctx context.Context, c claim.Claim, d time.Duration) claim.Claim {
	if c.Status.Final() || d <= 0 {
		return c
	}
	done, cancel := s.hub.Subscribe(c.ID)
	defer cancel()
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(time.Second) // another replica may finish it; ours wakes done
	defer tick.Stop()
	for {
		select {
		case <-done:
			done = nil
		case <-tick.C:
		case <-timer.C:
			return c
		case <-ctx.Done():
			return c
		}
		if s.draining() { // shutting down: answer now (202), the claim is stored
			return c
		}
		if cur, err := s.store.Get(ctx, c.ID); err == nil {
			c = cur
			if c.Status.Final() {
				return c
			}
		}
	}
}

func acceptOutcome(err error) string {
	switch claim.ErrorCode(err) {
	case claim.CodeConflict, claim.CodeIdemReuse:
		return "conflict"
	case claim.CodeInvalid, claim.CodeMalformed, codeTooLarge, codeMediaType:
		return "invalid"
	case claim.CodeUnavailable:
		return "unavailable"
	case codeRateLimited:
		return "rate_limited"
	}
	return "error"
}

// limitParam reads ?limit= (1..max, default def).
func limitParam(r *http.Request, def, maxN int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxN {
		return 0, invalidField("limit", "must be an integer from 1 to "+strconv.Itoa(maxN))
	}
	return n, nil
}

// deviceClaims handles GET /devices/{token}/claims and GET /devices/claims:
// a device reads its own claims by its own token, without a key. For a
// caller without a key, an answer that shows the token unknown (no claims)
// or rejected (its newest claim) costs the rejected-token budget: reading a
// guessed token's claims is the cheapest way to test it.
func (s *server) deviceClaims(from tokenFrom) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gs, ok := s.admit(w, r)
		if !ok {
			return
		}
		defer gs.end()
		tok, err := deviceToken(r, from)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		limit, err := limitParam(r, 50, 500)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		cs, err := s.store.ListByDevice(r.Context(), tok, limit)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if len(cs) == 0 || cs[0].Status == claim.StatusRejected {
			gs.missed()
		}
		writeJSON(w, "application/json", http.StatusOK, map[string]any{"claims": viewsFor(r, cs...)})
	}
}

func claimID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.Nil, claim.ErrNotFound
	}
	return id, nil
}

// withClaim answers with the claim that f returns for the {id} in the path.
func (s *server) withClaim(f func(context.Context, uuid.UUID) (claim.Claim, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := claimID(r)
		if err == nil {
			var c claim.Claim
			if c, err = f(r.Context(), id); err == nil {
				writeJSON(w, "application/json", http.StatusOK, view(c))
				return
			}
		}
		writeError(w, r, s.log, err)
	}
}

func (s *server) getClaim(w http.ResponseWriter, r *http.Request) { s.withClaim(s.store.Get)(w, r) }

func (s *server) retryClaim(w http.ResponseWriter, r *http.Request) {
	s.withClaim(func(ctx context.Context, id uuid.UUID) (claim.Claim, error) {
		force, err := forceParam(r)
		if err != nil {
			return claim.Claim{}, err
		}
		c, err := s.store.Retry(ctx, id, s.hold, force)
		if err == nil {
			s.wake()
		}
		return c, err
	})(w, r)
}

func (s *server) cancelClaim(w http.ResponseWriter, r *http.Request) {
	s.withClaim(s.canceller.Cancel)(w, r)
}

func (s *server) claimEvents(w http.ResponseWriter, r *http.Request) {
	id, err := claimID(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	evs, err := s.store.Events(r.Context(), id)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, "application/json", http.StatusOK, map[string]any{"events": evs})
}

func (s *server) listClaims(w http.ResponseWriter, r *http.Request) {
	status := claim.Status(r.URL.Query().Get("status"))
	if status != "" && !status.Valid() {
		writeError(w, r, s.log, invalidField("status", "must be one of "+statusList()))
		return
	}
	limit, err := limitParam(r, 50, 500)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	page, err := s.store.List(r.Context(), status, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	body := map[string]any{"claims": views(page.Claims), "nextCursor": nil}
	if page.NextCursor != "" {
		body["nextCursor"] = page.NextCursor
	}
	writeJSON(w, "application/json", http.StatusOK, body)
}

func (s *server) livez(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, "application/json", http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the database answers within 1 s and the process is
// not shutting down.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining() {
		writeError(w, r, s.log, claim.Errorf(claim.CodeUnavailable, "shutting down"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.health.Set(health.Database, false, "does not answer within 1 s")
		writeError(w, r, s.log, claim.Errorf(claim.CodeUnavailable, "the database does not answer"))
		return
	}
	s.health.Set(health.Database, true, "")
	// Ready means claims can be taken: the database answers. The other
	// dependencies are shown for operators; claims wait in the database
	// while they are away.
	// Why a dependency is down names its address (the broker's, ThingsBoard's
	// URL): key holders only, like a claim's lastError (docs/security.md §1.2).
	// A probe never needs a key: a wrong or stale one is not refused here,
	// it only hides the detail.
	deps := s.health.Snapshot()
	if key, ok := presentedKey(r); !s.access.open() && (!ok || !s.access.allowed(key)) {
		for name, st := range deps {
			st.Detail = ""
			deps[name] = st
		}
	}
	writeJSON(w, "application/json", http.StatusOK, readiness{Status: "ready", Dependencies: deps})
}

// readiness is /readyz's answer.
type readiness struct {
	Status       string                  `json:"status"`
	Dependencies map[string]health.State `json:"dependencies,omitempty"`
}

func (s *server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(s.spec)
}

// forceParam reads ?force= (default false).
func forceParam(r *http.Request) (bool, error) {
	f := r.URL.Query().Get("force")
	if f == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(f)
	if err != nil {
		return false, invalidField("force", "must be true or false")
	}
	return b, nil
}

// statusList names every claim status, for messages.
func statusList() string {
	names := make([]string, len(claim.Statuses))
	for i, st := range claim.Statuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}
