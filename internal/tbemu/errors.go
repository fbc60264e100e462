package tbemu

import (
	"encoding/json"
	"net/http"
)

// ThingsBoard's ThingsboardErrorCode values used by the emulated endpoints.
const (
	errCodeGeneral          = 2
	errCodeAuthentication   = 10
	errCodeJWTExpired       = 11
	errCodePermissionDenied = 20
	errCodeBadRequestParams = 31
	errCodeItemNotFound     = 32
)

// Messages of ThingsBoard's error responses (docs/thingsboard.md §4.1).
const (
	msgAuthFailed     = "Authentication failed"
	msgBadCredentials = "Invalid username or password"
	msgTokenExpired   = "Token has expired"
	msgNoPermission   = "You don't have permission to perform this operation!"
	msgItemNotFound   = "Requested item wasn't found!"
)

// tbError is ThingsBoard's error body {status, message, errorCode, timestamp}.
type tbError struct {
	Status    int    `json:"status"`
	Message   string `json:"message"`
	ErrorCode int    `json:"errorCode"`
	Timestamp int64  `json:"timestamp"`
}

// writeError writes ThingsBoard's error JSON.
func (e *Emulator) writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, tbError{Status: status, Message: msg, ErrorCode: code, Timestamp: e.cfg.Clock.Now().UnixMilli()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // Jackson does not escape <, > and &
	_ = enc.Encode(v)
}
