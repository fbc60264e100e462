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

// claimShape is where a claim object comes from, which decides the fields it
// may hold: the body of POST /devices/…/claim carries only the claim itself
// (the token is in the path or X-Device-Token, the Idempotency-Key in a
// header); an item of POST /claims:batch carries them too.
type claimShape struct {
	what    string   // "the body", "the claim": for messages
	invalid string   // the message for a structural problem, before its reason
	fields  []string // the fields allowed, exactly as spelled
}

var (
	bodyShape = claimShape{what: "the body", invalid: "the body is not a valid claim",
		fields: []string{"secretKey", "durationMs", "delivery", "deviceName"}}
	itemShape = claimShape{what: "the claim", invalid: "the claim is not valid",
		fields: []string{"token", "secretKey", "durationMs", "delivery", "deviceName", "idempotencyKey"}}
)

// decodeClaim parses one claim object of the given shape into in. It is
// stricter than encoding/json and than ThingsBoard: field names must match
// exactly (no case folding), each may appear once, unknown fields are refused,
// and each value must have its JSON type ("60000" or 1.5 for durationMs is an
// error, not a guess), so that a factory tool's bug surfaces at the factory.
// Structural problems are CodeMalformed (400); wrong types, CodeInvalid (422)
// naming every field.
func decodeClaim(raw []byte, shape claimShape, in *claim.Input) error {
	if !utf8.Valid(raw) {
		return claim.Errorf(claim.CodeMalformed, "%s is not valid UTF-8", shape.what)
	}
	if b := bytes.TrimLeft(raw, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return claim.Errorf(claim.CodeMalformed, "%s must be a JSON object", shape.what)
	}
	vals, err := decodeObject(raw, shape.fields)
	if err != nil {
		return claim.Errorf(claim.CodeMalformed, "%s: %s", shape.invalid, err)
	}
	var fields []claim.FieldError
	str := func(name string) *string {
		raw, ok := vals[name]
		if !ok {
			return nil
		}
		var v string
		if raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
			fields = append(fields, claim.FieldError{Field: name, Message: "must be a string"})
			return nil
		}
		if substituted(raw, v) {
			fields = append(fields, claim.FieldError{Field: name, Message: "must be valid Unicode: a lone surrogate (\\ud800 to \\udfff) cannot be stored as sent"})
			return nil
		}
		return &v
	}
	if tok := str("token"); tok != nil {
		in.Token = *tok
	}
	in.SecretKey = str("secretKey")
	if d := str("delivery"); d != nil {
		in.Delivery = *d
		if *d == "" {
			fields = append(fields, claim.FieldError{Field: "delivery", Message: "must be one of: mqtt, http, attribute"})
		}
	}
	in.DeviceName = str("deviceName")
	if raw, ok := vals["durationMs"]; ok {
		d, err := parseInteger(raw)
		if err != nil {
			fields = append(fields, claim.FieldError{Field: "durationMs", Message: err.Error()})
		} else {
			in.DurationMs = &d
		}
	}
	if key := str("idempotencyKey"); key != nil {
		if *key == "" {
			fields = append(fields, claim.FieldError{Field: "idempotencyKey", Message: "must be 1-128 printable ASCII characters"})
		}
		in.IdempotencyKey = *key
	}
	if fields != nil {
		return &claim.Error{Code: claim.CodeInvalid, Message: "the request breaks the field rules", Fields: fields}
	}
	return nil
}

// decodeObject reads one JSON object, nothing after it, and returns each
// key's raw value. Keys must be among allowed, exactly, and appear once: two
// "token" keys in one object would otherwise silently name the second device.
// Errors never echo a value.
func decodeObject(raw []byte, allowed []string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return nil, errors.New(jsonProblem(err))
	}
	vals := make(map[string]json.RawMessage, len(allowed))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New(jsonProblem(err))
		}
		key, _ := tok.(string) // object keys are strings, or Token fails
		switch {
		case !contains(allowed, key):
			return nil, fmt.Errorf("unknown field %s (allowed: %s; names are case-sensitive)", quoteName(key), strings.Join(allowed, ", "))
		case vals[key] != nil:
			return nil, fmt.Errorf("field %s appears more than once", quoteName(key))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New(jsonProblem(err))
		}
		vals[key] = v
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, errors.New(jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return vals, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// quoteName quotes a field name for a message, cut to 64 characters: the
// name is the client's, not a value, but it is still kept short.
func quoteName(name string) string {
	if utf8.RuneCountInString(name) > 64 {
		name = string([]rune(name)[:64]) + "…"
	}
	return strconv.Quote(name)
}

// parseInteger accepts a JSON number without fraction or exponent.
func parseInteger(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
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

// substituted reports whether decoding raw (a JSON string) put U+FFFD in v
// for something that was not U+FFFD: encoding/json replaces a lone surrogate
// escape silently, which would store a secret other than the one sent.
func substituted(raw []byte, v string) bool {
	n := strings.Count(v, "\uFFFD")
	if n == 0 {
		return false
	}
	sent := bytes.Count(raw, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(raw), []byte(`\ufffd`))
	return n > sent
}

// jsonProblem describes a decoding error without echoing values.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	}
	return "invalid JSON"
}
