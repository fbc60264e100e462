package tbemu

import (
	"io"
	"net/http"
)

// handleDeviceHTTPClaim is the HTTP device API POST /api/v1/{token}/claim (docs/thingsboard.md §1.3): 401 with
// an empty body for an unknown token, 200 with an empty body once the claim is queued, 500 for a bad
// payload (with Gson's message for a syntax error, as TB 3.7+ does).
func (e *Emulator) handleDeviceHTTPClaim(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	e.st.mu.Lock()
	d := e.st.byToken[token]
	var id, name string
	if d != nil {
		id, name = d.ID, d.Name
	}
	e.st.mu.Unlock()
	if d == nil {
		e.log.Info("http claim refused: unknown access token", "token", tokenHint(token))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 52428800))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	req, err := parseClaimPayload(body)
	if err != nil {
		e.log.Warn("invalid claim payload", "device", name, "transport", "http", "error", err.Error())
		w.WriteHeader(http.StatusInternalServerError)
		if errorKind(err) == kindSyntax {
			_, _ = io.WriteString(w, err.Error())
		}
		return
	}
	// Registration runs after the 200 has been written, as after a PUBACK (docs/thingsboard.md §7.2).
	acked := make(chan struct{})
	defer close(acked)
	e.enqueue(registration{
		deviceID: id,
		req:      req,
		acked:    acked,
		event: ClaimEvent{Transport: "http", Topic: "POST /api/v1/{token}/claim", Username: token,
			DeviceName: name, Payload: body},
	})
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
