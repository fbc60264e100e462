package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// MaxClaimBody is the largest claim body accepted (docs/design.md §2: 4 KiB).
const MaxClaimBody = 4 << 10

// readBody reads at most limit bytes of a JSON body. An empty body is fine
// (nil); a non-empty one must be JSON (415 otherwise) and valid UTF-8.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, claim.Errorf(codeTooLarge, "the body may be at most %d bytes", limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, claim.Errorf(codeTooLarge, "the body may be at most %d bytes", limit)
		}
		return nil, claim.Errorf(claim.CodeMalformed, "cannot read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, claim.Errorf(codeMediaType, "send the body as application/json")
	}
	if !utf8.Valid(body) {
		return nil, claim.Errorf(claim.CodeMalformed, "the body is not valid UTF-8")
	}
	return body, nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// claimBody is the claim request body with its values still raw, so that
// wrong JSON types can be reported per field (claimsvc is stricter than
// ThingsBoard: "60000" or 1.5 for durationMs are errors, not guesses).
type claimBody struct {
	SecretKey  json.RawMessage `json:"secretKey"`
	DurationMs json.RawMessage `json:"durationMs"`
}

// decodeClaimBody parses a claim body into in. body may be nil (no body).
func decodeClaimBody(body []byte, in *claim.Input) error {
	if body == nil {
		return nil
	}
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return claim.Errorf(claim.CodeMalformed, "the body must be a JSON object")
	}
	var raw claimBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return claim.Errorf(claim.CodeMalformed, "the body is not a valid claim: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return claim.Errorf(claim.CodeMalformed, "the body has data after the JSON object")
	}
	var fields []claim.FieldError
	if raw.SecretKey != nil {
		var s string
		if raw.SecretKey[0] != '"' || json.Unmarshal(raw.SecretKey, &s) != nil {
			fields = append(fields, claim.FieldError{Field: "secretKey", Message: "must be a string"})
		} else {
			in.SecretKey = &s
		}
	}
	if raw.DurationMs != nil {
		d, err := parseInteger(raw.DurationMs)
		if err != nil {
			fields = append(fields, claim.FieldError{Field: "durationMs", Message: err.Error()})
		} else {
			in.DurationMs = &d
		}
	}
	if fields != nil {
		return &claim.Error{Code: claim.CodeInvalid, Message: "the request breaks the field rules", Fields: fields}
	}
	return nil
}

// parseInteger accepts a JSON number without fraction or exponent.
func parseInteger(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, errors.New("must be an integer number of milliseconds (not a string, boolean or null)")
	}
	if strings.ContainsAny(s, ".eE") {
		return 0, errors.New("must be an integer number of milliseconds")
	}
	d, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be between 1 and %d", claim.MaxDurationMs)
	}
	return d, nil
}

// jsonProblem describes a decoding error without echoing values.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("wrong type for %q", te.Field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if len(name) > 66 {
			name = name[:64] + `…"`
		}
		return "unknown field " + name + " (allowed: secretKey, durationMs)"
	}
	return "invalid JSON"
}
