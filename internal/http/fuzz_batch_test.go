package http

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/metrics"
)

// FuzzBatchDecode drives the POST /claims:batch decoder (JSON array or
// NDJSON) and each item's decoding and validation: no panic, only client
// errors, accepted items obey the field rules, and NDJSON items are exactly
// the body's non-blank lines.
func FuzzBatchDecode(f *testing.F) {
	var manyLines strings.Builder // over the scanner's first 4 KiB buffer
	for i := range 60 {
		fmt.Fprintf(&manyLines, `{"token":"DEVICE_TOKEN_%04d","secretKey":"%s"}`+"\n", i, strings.Repeat("s", 100))
	}
	for _, seed := range []struct {
		ndjson bool
		body   string
	}{
		{false, `[{"token":"DEVICE_TOKEN_0001","secretKey":"s","durationMs":60000}]`},
		{false, `[{"token":"T1"},{"token":"T2","idempotencyKey":"k"}]`},
		{false, `[]`}, {false, `{}`}, {false, `[1,"x",null,[]]`}, {false, `[{"token":"a/b"}] x`},
		{false, `[{"token":"T1","extra":1}]`}, {false, "[{\"token\":\"\xff\"}]"},
		{false, `[` + strings.Repeat(`[`, 2000) + `]`},
		{true, "{\"token\":\"T1\"}\n{\"token\":\"T2\"}\r\n\n  \n{broken\n"},
		{true, manyLines.String()},
		{true, strings.Repeat("\n", 5000)},
		{true, `{"token":"T1","idempotencyKey":""}`},
	} {
		f.Add(seed.ndjson, []byte(seed.body))
	}
	s := &server{validate: claim.NewValidator(claim.Rules{}), metrics: metrics.New()}
	f.Fuzz(func(t *testing.T, ndjson bool, body []byte) {
		ctype := "application/json"
		if ndjson {
			ctype = "application/x-ndjson"
		}
		req := httptest.NewRequest(http.MethodPost, "/claims:batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		items, err := readBatch(httptest.NewRecorder(), req)
		if err != nil {
			if c := claim.ErrorCode(err); c != claim.CodeMalformed && c != codeTooLarge && c != codeMediaType {
				t.Fatalf("readBatch: %v", err)
			}
			return
		}
		if ndjson {
			var want [][]byte
			for _, l := range bytes.Split(body, []byte("\n")) {
				if l = bytes.TrimSpace(l); len(l) > 0 {
					if len(l) > MaxClaimBody {
						l = nil
					}
					want = append(want, l)
				}
			}
			if len(want) != len(items) {
				t.Fatalf("%d NDJSON items, the body has %d lines", len(items), len(want))
			}
			for i := range want {
				if !bytes.Equal(want[i], items[i]) {
					t.Fatalf("NDJSON item %d is %q, its line is %q", i, items[i], want[i])
				}
			}
		}
		for _, raw := range items {
			r, _, err := s.batchRequest(raw, false)
			if err != nil {
				var ce *claim.Error
				if !errors.As(err, &ce) || (ce.Code != claim.CodeMalformed && ce.Code != claim.CodeInvalid && ce.Code != codeTooLarge) {
					t.Fatalf("item error without a client code: %v", err)
				}
				continue
			}
			checkRequest(t, r)
		}
	})
}
