package http_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	claimhttp "github.com/claimsvc/claimsvc/internal/http"
)

// results returns a batch answer's results (checked against the spec by do).
func results(t *testing.T, r response) []map[string]any {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	raw, _ := r.body["results"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
		if out[i]["index"] != float64(i) {
			t.Fatalf("result %d has index %v", i, out[i]["index"])
		}
	}
	return out
}

func problemOf(res map[string]any) map[string]any {
	p, _ := res["problem"].(map[string]any)
	return p
}

func claimOf(res map[string]any) map[string]any {
	c, _ := res["claim"].(map[string]any)
	return c
}

func TestBatchJSONArray(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `[
		{"token":"BATCH_TOKEN_0001","secretKey":"s1","durationMs":60000},
		{"token":"BATCH_TOKEN_0001","secretKey":"s1","durationMs":60000},
		{"token":"BATCH_TOKEN_0001","secretKey":"s2"},
		{"token":"a/b"},
		{"token":"BATCH_TOKEN_0002","secret":"x"},
		{"token":"BATCH_TOKEN_0003","durationMs":"60000","secretKey":7},
		{"token":"BATCH_TOKEN_0004","idempotencyKey":"k-1"},
		{"token":"BATCH_TOKEN_0005","idempotencyKey":"k-1"},
		{"token":"BATCH_TOKEN_0006","secretKey":"` + strings.Repeat("x", 5000) + `"},
		"not an object",
		{},
		{"token":"BATCH_TOKEN_0007","idempotencyKey":""},
		{"token":"BATCH_TOKEN_0008","token":"BATCH_TOKEN_0009"},
		{"Token":"BATCH_TOKEN_0010"}
	]`
	r := e.do("POST", "/claims:batch", nil, body)
	res := results(t, r)
	want := []struct {
		status int
		field  string
	}{{202, ""}, {200, ""}, {409, ""}, {422, "token"}, {400, ""}, {422, "durationMs"}, {202, ""}, {422, ""}, {413, ""}, {400, ""}, {422, "token"}, {422, "idempotencyKey"}, {400, ""}, {400, ""}}
	if len(res) != len(want) {
		t.Fatalf("%d results for %d claims: %s", len(res), len(want), r.raw)
	}
	for i, w := range want {
		if res[i]["httpStatus"] != float64(w.status) {
			t.Fatalf("claim %d: httpStatus %v, want %d: %v", i, res[i]["httpStatus"], w.status, res[i])
		}
		p := problemOf(res[i])
		if (w.status >= 400) != (p != nil) || (p != nil && p["status"] != float64(w.status)) {
			t.Fatalf("claim %d: problem %v", i, p)
		}
		if w.field != "" {
			errs, _ := p["errors"].([]any)
			found := false
			for _, e := range errs {
				found = found || e.(map[string]any)["field"] == w.field
			}
			if !found {
				t.Fatalf("claim %d: want field %q: %v", i, w.field, p)
			}
		}
	}
	first := claimOf(res[0])
	if first["status"] != "pending" || first["tokenHint"] != "BATC…01" || claimOf(res[1])["id"] != first["id"] || res[1]["replayed"] != true {
		t.Fatalf("created/replayed: %v %v", res[0], res[1])
	}
	if problemOf(res[2])["blockingClaimId"] != first["id"] {
		t.Fatalf("conflict does not name the blocking claim: %v", res[2])
	}
	if p := problemOf(res[7]); p["type"] != "urn:claimsvc:problem:idempotency-key-reused" || p["originalClaimId"] != claimOf(res[6])["id"] {
		t.Fatalf("key reuse: %v", res[7])
	}
	if r.body["created"] != float64(2) || r.body["replayed"] != float64(1) || r.body["failed"] != float64(11) {
		t.Fatalf("counts: %s", r.raw)
	}
	if bytes.Contains(r.raw, []byte("BATCH_TOKEN_0001")) || bytes.Contains(r.raw, []byte(`"s1"`)) {
		t.Fatal("the answer leaks a token or a secret")
	}
	var n int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d claims stored, want 2", n)
	}

	// The single route sees the batch's claims: the same request replays.
	single := e.do("POST", "/devices/BATCH_TOKEN_0001/claim", nil, `{"secretKey":"s1","durationMs":60000}`)
	if single.status != 200 || single.body["id"] != first["id"] {
		t.Fatalf("single after batch: %d %s", single.status, single.raw)
	}
	// Retrying the whole batch is safe: what was stored replays.
	again := results(t, e.do("POST", "/claims:batch", nil, `[{"token":"BATCH_TOKEN_0001","secretKey":"s1","durationMs":60000},{"token":"BATCH_TOKEN_0004","idempotencyKey":"k-1"}]`))
	if again[0]["httpStatus"] != float64(200) || again[1]["httpStatus"] != float64(200) || claimOf(again[0])["id"] != first["id"] {
		t.Fatalf("retried batch: %v", again)
	}
	// force applies to every claim.
	forced := results(t, e.do("POST", "/claims:batch?force=true", nil, `[{"token":"BATCH_TOKEN_0001","secretKey":"s2"}]`))
	if forced[0]["httpStatus"] != float64(202) || claimOf(forced[0])["id"] == first["id"] {
		t.Fatalf("forced: %v", forced)
	}
	m := e.do("GET", "/metrics", nil, "")
	if !strings.Contains(string(m.raw), `claimsvc_claims_accepted_total{outcome="created"} 3`) ||
		!strings.Contains(string(m.raw), `route="/claims:batch"`) {
		t.Fatalf("metrics: %s", m.raw)
	}
	if strings.Contains(e.logs.String(), "BATCH_TOKEN") {
		t.Fatal("logs carry a token")
	}
}

func TestBatchNDJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nd := map[string]string{"Content-Type": "application/x-ndjson"}
	body := "{\"token\":\"NDJSON_TOKEN_001\",\"secretKey\":\"a\"}\n\n" +
		"{\"token\":\"NDJSON_TOKEN_002\"\n" + // broken: fails alone
		"  {\"token\":\"NDJSON_TOKEN_003\",\"durationMs\":1000}  \r\n" +
		"[1,2]\n" +
		"{\"token\":\"NDJSON_TOKEN_004\"}" // no final newline
	res := results(t, e.do("POST", "/claims:batch", nd, body))
	want := []int{202, 400, 202, 400, 202}
	if len(res) != len(want) {
		t.Fatalf("%d results: %v", len(res), res)
	}
	for i, w := range want {
		if res[i]["httpStatus"] != float64(w) {
			t.Fatalf("line %d: %v, want %d", i, res[i], w)
		}
	}
	if claimOf(res[2])["durationMs"] != float64(1000) {
		t.Fatalf("durationMs: %v", res[2])
	}
}

func TestBatchWholeRequestProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	items := func(n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"token":"MANY_TOKEN_%05d"}`, i)
		}
		return b.String() + "]"
	}
	lines := strings.Repeat("{\"token\":\"LINE_TOKEN_0001\"}\n", claimhttp.MaxBatchItems+1)
	big := `[{"token":"BIG_TOKEN_0001","secretKey":"` + strings.Repeat("x", claimhttp.MaxBatchBody) + `"}]`
	for _, tc := range []struct {
		name   string
		query  string
		header map[string]string
		body   string
		status int
	}{
		{"1001 claims", "", nil, items(claimhttp.MaxBatchItems + 1), 413},
		{"1001 NDJSON lines", "", map[string]string{"Content-Type": "application/x-ndjson"}, lines, 413},
		{"too many bytes", "", nil, big, 413},
		{"wrong content type", "", map[string]string{"Content-Type": "text/plain"}, `[]`, 415},
		{"no content type", "", map[string]string{"Content-Type": ""}, `[{"token":"T1"}]`, 415},
		{"empty body", "", map[string]string{"Content-Type": "application/json"}, ``, 400},
		{"empty array", "", nil, `[]`, 400},
		{"empty NDJSON", "", map[string]string{"Content-Type": "application/x-ndjson"}, "\n\n", 400},
		{"an object", "", nil, `{"token":"T1"}`, 400},
		{"broken array", "", nil, `[{"token":"T1"},{"token":`, 400},
		{"data after the array", "", nil, `[{"token":"T1"}] []`, 400},
		{"invalid UTF-8", "", nil, "[{\"token\":\"T1\",\"secretKey\":\"\xff\"}]", 400},
		{"Idempotency-Key header", "", map[string]string{"Idempotency-Key": "k"}, `[{"token":"T1"}]`, 422},
		{"bad force", "?force=maybe", nil, `[{"token":"T1"}]`, 422},
		// Prefer: wait is refused, not ignored: a caller asking for outcomes
		// must not take the 202s for them.
		{"Prefer: wait", "", map[string]string{"Prefer": "wait=5"}, `[{"token":"T1"}]`, 422},
		{"Prefer: wait among others", "", map[string]string{"Prefer": "return=minimal, Wait=1"}, `[{"token":"T1"}]`, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/claims:batch"+tc.query, tc.header, tc.body)
			if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" || r.body["status"] != float64(tc.status) {
				t.Fatalf("got %d %.300s", r.status, r.raw)
			}
		})
	}
	var n int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d claims stored by refused batches", n)
	}
	// Exactly the limit is fine.
	if res := results(t, e.do("POST", "/claims:batch", nil, items(claimhttp.MaxBatchItems))); len(res) != claimhttp.MaxBatchItems || res[999]["httpStatus"] != float64(202) {
		t.Fatalf("1000 claims: %d results", len(res))
	}
}

func TestBatchDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	dead := deadStore(t)
	e := newEnvWithStore(t, dead)
	r := e.do("POST", "/claims:batch", nil, `[{"token":"DOWN_TOKEN_0001"},{"token":"DOWN_TOKEN_0002"}]`)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("db down: %d %s", r.status, r.raw)
	}
	// Only invalid claims: nothing to store, so the database is not needed.
	res := results(t, e.do("POST", "/claims:batch", nil, `[{"token":"a b"}]`))
	if res[0]["httpStatus"] != float64(422) {
		t.Fatalf("invalid only: %v", res)
	}
}
