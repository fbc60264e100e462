package http

import (
	"net/http"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// statsView is GET /stats: the claims by status and the backlog, as
// `claimsvc status` shows them.
type statsView struct {
	At      time.Time        `json:"at"`
	Counts  map[string]int64 `json:"counts"`
	Total   int64            `json:"total"`
	Backlog backlogView      `json:"backlog"`
}

type backlogView struct {
	Pending                 int64      `json:"pending"`
	Due                     int64      `json:"due"`
	WithErrors              int64      `json:"withErrors"`
	OldestPendingSince      *time.Time `json:"oldestPendingSince"`
	OldestPendingAgeSeconds float64    `json:"oldestPendingAgeSeconds"`
}

func statsOf(st claim.Stats) statsView {
	v := statsView{At: st.At.UTC(), Counts: make(map[string]int64, len(st.Counts)), Total: st.Total,
		Backlog: backlogView{Pending: st.Pending, Due: st.Due, WithErrors: st.WithErrors,
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
