package http

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/wire"
)

// Codes for failures that only the HTTP layer knows about.
const (
	codeTooLarge     claim.Code = "too-large"
	codeMediaType    claim.Code = "unsupported-media-type"
	codeUnauthorized claim.Code = "unauthorized"
	codeForbidden    claim.Code = "forbidden"
	codeRateLimited  claim.Code = "rate-limited"
	codeNoRoute      claim.Code = "no-route"
	codeMethod       claim.Code = "method-not-allowed"
)

// statuses is the one place where errors become HTTP statuses.
var statuses = map[claim.Code]struct {
	status int
	title  string
}{
	claim.CodeMalformed:   {http.StatusBadRequest, "Malformed request"},
	codeUnauthorized:      {http.StatusUnauthorized, "API key required"},
	codeForbidden:         {http.StatusForbidden, "API key not accepted"},
	claim.CodeNotFound:    {http.StatusNotFound, "Not found"},
	codeNoRoute:           {http.StatusNotFound, "Not found"},
	codeMethod:            {http.StatusMethodNotAllowed, "Method not allowed"},
	claim.CodeConflict:    {http.StatusConflict, "Conflict"},
	codeTooLarge:          {http.StatusRequestEntityTooLarge, "Request body too large"},
	codeMediaType:         {http.StatusUnsupportedMediaType, "Unsupported media type"},
	claim.CodeInvalid:     {http.StatusUnprocessableEntity, "Invalid request"},
	claim.CodeIdemReuse:   {http.StatusUnprocessableEntity, "Idempotency-Key reused"},
	codeRateLimited:       {http.StatusTooManyRequests, "Too many requests"},
	claim.CodeInternal:    {http.StatusInternalServerError, "Internal error"},
	claim.CodeUnavailable: {http.StatusServiceUnavailable, "Service unavailable"},
}

// problemType is the URI naming a kind of problem.
func problemType(c claim.Code) string { return "urn:claimsvc:problem:" + string(c) }

// appError is err as claimsvc's application error: errors without a code are
// internal.
func appError(err error) *claim.Error {
	var e *claim.Error
	if !errors.As(err, &e) {
		e = &claim.Error{Code: claim.CodeInternal, Message: "internal error", Err: err}
	}
	return e
}

// problemFor builds the problem for err: the one place that decides status,
// title and what a client may see. Internal errors show only the request id.
func problemFor(r *http.Request, err error) wire.Problem {
	e := appError(err)
	s, ok := statuses[e.Code]
	if !ok {
		s = statuses[claim.CodeInternal]
	}
	p := wire.Problem{
		Type: problemType(e.Code), Title: s.title, Status: s.status, Detail: e.Message,
		RequestID: requestID(r.Context()), Errors: e.Fields,
	}
	if s.status == http.StatusInternalServerError {
		p.Type, p.Detail = problemType(claim.CodeInternal), "internal error; the request id identifies it in the service's log"
	}
	if e.Blocking != nil {
		p.BlockingClaimID = e.Blocking.String()
	}
	if e.Original != nil {
		p.OriginalClaimID = e.Original.String()
	}
	return p
}

// writeError answers with the problem for err. Server errors are logged with
// their cause; refusals with a cause at debug level.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := appError(err)
	p := problemFor(r, e)
	switch {
	case p.Status >= 500:
		log.ErrorContext(r.Context(), "request failed", "code", e.Code, "err", e)
	case e.Err != nil:
		log.DebugContext(r.Context(), "request refused", "code", e.Code, "err", e)
	}
	if e.Code == claim.CodeUnavailable || e.Code == codeRateLimited {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "5")
		}
	}
	writeJSON(w, "application/problem+json", p.Status, p)
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
