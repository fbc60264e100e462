package http

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// ConsolePrefix is where the operator console is mounted. Its routes are the
// internal ones: api/openapi.yaml does not describe them.
const ConsolePrefix = "/ui"

// routes is the whole API surface in one place; api/openapi.yaml describes
// every route here except those marked internal (under ConsolePrefix), and a
// test keeps them equal.
func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(withRequestID, s.observe)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, claim.Errorf(codeNoRoute, "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r, req.URL.Path), ", ")) // RFC 9110 §15.5.6
		writeError(w, req, s.log, claim.Errorf(codeMethod, "method not allowed on this route"))
	})

	r.Get("/livez", s.livez)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", s.metrics.Handler())
	r.Get("/openapi.yaml", s.openapi)

	r.Group(func(r chi.Router) { // device routes: the firmware calls them without a key
		r.Use(s.limits.clientIP(), s.limitByIP, s.authenticate, s.requireKey(s.access.RequireForClaims))
		r.Post("/devices/{token}/claim", s.limitByToken(pathToken, s.createClaim(pathToken)))
		r.Post("/devices/claim", s.limitByToken(headerToken, s.createClaim(headerToken)))
		r.Get("/devices/{token}/claims", s.limitByToken(pathToken, s.deviceClaims(pathToken)))
		r.Get("/devices/claims", s.limitByToken(headerToken, s.deviceClaims(headerToken)))
	})
	r.Group(func(r chi.Router) { // key holders: reads by id, the batch, operators
		r.Use(s.limits.clientIP(), s.limitByIP, s.authenticate, s.requireKey(true))
		r.Get("/claims/{id}", s.getClaim)
		r.Get("/claims/{id}/events", s.claimEvents)
		r.Post("/claims:batch", s.createBatch)
		r.Get("/claims", s.listClaims)
		r.Get("/stats", s.stats)
		r.Post("/claims/{id}/retry", s.retryClaim)
		r.Delete("/claims/{id}", s.cancelClaim)
	})
	if s.console != nil { // internal: the console asks for its own login
		r.Group(func(r chi.Router) {
			r.Use(s.limits.clientIP(), s.limitByIP)
			r.Mount(ConsolePrefix, s.console)
		})
	}
	return r
}

// allowed lists the methods routes serves at path. HEAD is not among them:
// the API is described method by method (api/openapi.yaml), and no client of
// it needs HEAD.
func allowed(routes chi.Routes, path string) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}
