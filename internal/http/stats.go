package http

import (
	"net/http"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/wire"
)

// statsOf is GET /stats's answer.
func statsOf(st claim.Stats) wire.Stats {
	v := wire.Stats{At: st.At.UTC(), Counts: make(map[string]int64, len(st.Counts)), Total: st.Total,
		Backlog: wire.Backlog{Pending: st.Pending, Due: st.Due, WithErrors: st.WithErrors,
			OldestPendingSince: utc(st.OldestPendingSince), OldestPendingAgeSeconds: st.OldestPendingAge().Seconds()}}
	for k, n := range st.Counts {
		v.Counts[string(k)] = n
	}
	return v
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.store.Stats(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, "application/json", http.StatusOK, statsOf(st))
}
