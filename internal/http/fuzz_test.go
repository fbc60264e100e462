package http

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/metrics"
)

// parseOnly routes the two claim-creating routes to parseClaim alone (no
// storage): a valid request is stored in *got and answered 204, anything else
// gets its problem. Each call logs into its own buffer.
func parseOnly(v *claim.Validator, m *metrics.Metrics, got *claim.Request) (http.Handler, *bytes.Buffer) {
	logs := &bytes.Buffer{}
	s := &server{validate: v, metrics: m, log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	r := chi.NewRouter()
	r.Use(withRequestID, s.observe)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, claim.Errorf(codeNoRoute, "no such route"))
	})
	parse := func(from tokenFrom) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			req, err := s.parseClaim(w, r, from)
			if err != nil {
				writeError(w, r, s.log, err)
				return
			}
			*got = req
			w.WriteHeader(http.StatusNoContent)
		}
	}
	r.Post("/devices/{token}/claim", parse(pathToken))
	r.Post("/devices/claim", parse(headerToken))
	return r, logs
}

// checkRequest asserts that an accepted request obeys every field rule.
func checkRequest(t testing.TB, req claim.Request) {
	t.Helper()
	if !claim.ValidToken(string(req.Token)) {
		t.Fatalf("accepted an invalid token %q", req.Token)
	}
	if sk := req.SecretKey; sk != nil {
		if !utf8.ValidString(string(*sk)) || utf8.RuneCountInString(string(*sk)) > 128 || strings.ContainsFunc(string(*sk), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted a bad secret %q", *sk)
		}
	}
	if d := req.DurationMs; d != nil && (*d < 1 || *d > claim.MaxDurationMs) {
		t.Fatalf("accepted durationMs %d", *d)
	}
	if k := req.IdempotencyKey; len(k) > 128 || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		t.Fatalf("accepted Idempotency-Key %q", k)
	}
}

// FuzzClaimRequest drives the request decoder and validator with arbitrary
// tokens (path segment or X-Device-Token), Idempotency-Key, content type and
// body. It must never panic, never answer 5xx, never accept a request that
// breaks a field rule, and never echo the token or secret in a problem.
// Seeds run as a normal test; `make fuzz` runs it for longer.
func FuzzClaimRequest(f *testing.F) {
	seeds := []struct {
		seg, token, idem, ctype string
		body                    string
	}{
		{"DEVICE_TOKEN_0001", "", "", "application/json", `{"secretKey":"s","durationMs":60000}`},
		{"", "DEVICE_TOKEN_0001", "k1", "application/json", `{}`},
		{"", "DEVICE_TOKEN_0001", "", "", ``},
		{"a%2Fb", "", "", "application/json", `{}`},
		{"..", "", "", "application/json", `{}`},
		{"%2E%2E", "", "", "application/json", `{}`},
		{"a%00b", "", "", "application/json", `{}`},
		{"%ff%fe", "", "", "application/json", `{}`},
		{"", "tok\x00en", "", "application/json", `{}`},
		{"", "tok/en", "", "application/json", `{}`},
		{"", "DEVICE_TOKEN_0001", "k\r\nX-Evil: 1", "application/json", `{}`},
		{"", "DEVICE_TOKEN_0001", "ключ", "application/json", `{}`},
		{"", "DEVICE_TOKEN_0001", "", "application/merge-patch+json", `{"secretKey":"\u0000"}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json; charset=\x00", `{}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"secretKey":"\ud800"}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", "{\"secretKey\":\"\xff\"}"},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"durationMs":1e400}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"durationMs":-0}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"durationMs":99999999999999999999999}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"secretKey":"a","secretKey":"b"}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"DurationMS":5}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"secretKey":{"x":[1,2,{}]}}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", strings.Repeat("[", 3000)},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"secretKey":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"x":` + strings.Repeat(`{"a":`, 500) + `1` + strings.Repeat(`}`, 500) + `}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", `{"secretKey":"` + strings.Repeat("é", 200) + `"}`},
		{"", "DEVICE_TOKEN_0001", "", "application/json", strings.Repeat(" ", 5000)},
		{"", "DEVICE_TOKEN_0001", "", "text/plain", `{}`},
		{"", strings.Repeat("T", 129), "", "application/json", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.seg, s.token, s.idem, s.ctype, []byte(s.body))
	}
	v, m := claim.NewValidator(0), metrics.New()
	f.Fuzz(func(t *testing.T, seg, token, idem, ctype string, body []byte) {
		var got claim.Request
		h, logs := parseOnly(v, m, &got)
		target := "/devices/claim"
		if seg != "" {
			target = "/devices/" + seg + "/claim"
		}
		req, err := http.NewRequest(http.MethodPost, "http://claimsvc.test"+target, bytes.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		if seg == "" {
			req.Header["X-Device-Token"] = []string{token}
		}
		if idem != "" {
			req.Header["Idempotency-Key"] = []string{idem}
		}
		req.Header["Content-Type"] = []string{ctype}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 500 {
			t.Fatalf("%s → %d %s\nlogs: %s", target, res.StatusCode, raw, logs)
		}
		if res.StatusCode == http.StatusNoContent {
			checkRequest(t, got)
		} else {
			if res.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d without a problem body: %s", res.StatusCode, raw)
			}
			for _, secret := range []string{token, idem} {
				if len(secret) >= 12 && !bytes.Contains(body, []byte(secret)) && bytes.Contains(raw, []byte(secret)) {
					t.Fatalf("problem echoes an input: %s", raw)
				}
			}
		}
		if strings.Contains(logs.String(), "panic") {
			t.Fatalf("panic logged: %s", logs)
		}
	})
}

// FuzzDecodeClaimBody checks the body decoder alone: only client-error codes,
// and a decoded body always has the JSON types the rules demand.
func FuzzDecodeClaimBody(f *testing.F) {
	for _, b := range []string{`{}`, `{"secretKey":"x"}`, `{"durationMs":1}`, `{"durationMs":1.0}`, `{"secretKey":null}`,
		`{} {}`, `[]`, `null`, `{"a":1}`, `{"secretKey":"` + strings.Repeat("x", 200) + `"}`, `{"durationMs":-9223372036854775809}`} {
		f.Add([]byte(b))
	}
	v := claim.NewValidator(0)
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 {
			return // readBody turns an empty body into nil
		}
		in := claim.Input{Token: "DEVICE_TOKEN_0001"}
		err := decodeClaim(body, bodyShape, &in)
		if err != nil {
			var ce *claim.Error
			if !errors.As(err, &ce) || (ce.Code != claim.CodeMalformed && ce.Code != claim.CodeInvalid) {
				t.Fatalf("decode error without a client code: %v", err)
			}
			return
		}
		req, err := v.Request(in)
		if err != nil {
			if claim.ErrorCode(err) != claim.CodeInvalid {
				t.Fatalf("validator: %v", err)
			}
			return
		}
		checkRequest(t, req)
	})
}
