package http_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"

	"github.com/claimsvc/claimsvc/api"
	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	claimhttp "github.com/claimsvc/claimsvc/internal/http"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
	"github.com/claimsvc/claimsvc/internal/notify"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

// env is one API server on a fresh database, with the OpenAPI router that
// every response is checked against.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	store  *store.Store
	router routers.Router
	hub    *notify.Hub
	logs   *bytes.Buffer
}

type option func(*claimhttp.Deps)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	return newEnvWithStore(t, storetest.New(t, nil), opts...)
}

func newEnvWithStore(t *testing.T, s *store.Store, opts ...option) *env {
	logs := &bytes.Buffer{}
	e := &env{t: t, store: s, hub: notify.New(), logs: logs, router: specRouter(t)}
	d := claimhttp.Deps{
		Store: s, Validator: claim.NewValidator(claim.Rules{}), Metrics: metrics.New(), Hub: e.hub,
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Hold: 24 * time.Hour,
		OpenAPI: api.Spec,
	}
	for _, o := range opts {
		o(&d)
	}
	e.srv = httptest.NewServer(claimhttp.NewServer(d))
	t.Cleanup(e.srv.Close)
	return e
}

func specDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("spec invalid: %v", err)
	}
	return doc
}

func specRouter(t *testing.T) routers.Router {
	doc := specDoc(t)
	doc.Servers = nil // match any host
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// do sends a request and checks the response against the OpenAPI spec.
func (e *env) do(method, path string, header map[string]string, body string) response {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	e.checkSpec(req, res, raw)
	if res.Header.Get("X-Request-Id") == "" {
		e.t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	return r
}

func (e *env) checkSpec(req *http.Request, res *http.Response, raw []byte) {
	e.t.Helper()
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
			return // no such route: nothing to check against
		}
		e.t.Errorf("%s %s: not in the spec: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(raw)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Errorf("%s %s → %d does not match the spec: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, raw)
	}
	// Every header a client acts on is declared for the answer it came with.
	if rs := route.Operation.Responses.Status(res.StatusCode); rs != nil && rs.Value != nil {
		for _, h := range actedOnHeaders {
			if res.Header.Get(h) != "" && rs.Value.Headers[h] == nil {
				e.t.Errorf("%s %s → %d carries %s, which the spec does not declare for it", req.Method, req.URL.Path, res.StatusCode, h)
			}
		}
	}
}

// actedOnHeaders are the response headers a client acts on, as the spec
// spells them (canonical).
var actedOnHeaders = []string{"X-Request-Id", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After",
	"Location", "Idempotent-Replayed", "Preference-Applied", "Www-Authenticate"}

func problemField(r response) string {
	errs, _ := r.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	f, _ := errs[0].(map[string]any)["field"].(string)
	return f
}

// TestFieldErrorsComeTogether: the token, ?force and the body's fields are
// reported in one answer, each field once.
func TestFieldErrorsComeTogether(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/devices/claim?force=maybe", nil, `{"durationMs":"x","deviceName":"   "}`)
	errs, _ := r.body["errors"].([]any)
	var got []string
	for _, x := range errs {
		f, _ := x.(map[string]any)["field"].(string)
		got = append(got, f)
	}
	want := []string{"force", "durationMs", "X-Device-Token", "deviceName"}
	slices.Sort(got)
	slices.Sort(want)
	if r.status != 422 || !slices.Equal(got, want) {
		t.Fatalf("%d %v, want the fields %v", r.status, got, want)
	}
}

// TestRouterMatchesSpec fails when a route exists in one and not the other.
func TestRouterMatchesSpec(t *testing.T) {
	t.Parallel()
	doc := specDoc(t)
	inSpec := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec[method+" "+path] = true
		}
	}
	e := newEnv(t)
	h := claimhttp.NewServer(claimhttp.Deps{Store: e.store, Validator: claim.NewValidator(claim.Rules{}), Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler)})
	inRouter := map[string]bool{}
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		inRouter[method+" "+strings.TrimSuffix(route, "/*")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range inRouter {
		if !inSpec[r] {
			t.Errorf("route %s is not in api/openapi.yaml", r)
		}
	}
	for r := range inSpec {
		if !inRouter[r] {
			t.Errorf("api/openapi.yaml has %s, the router does not", r)
		}
	}
}

func TestCreateClaim202(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/devices/DEVICE_TOKEN_0001/claim", nil, `{"secretKey":"s3cret","durationMs":60000}`)
	if r.status != 202 || r.body["status"] != "pending" || r.body["tokenHint"] != "DEVI…01" || r.body["hasSecret"] != true ||
		r.body["durationMs"] != float64(60000) || !strings.HasPrefix(r.header.Get("Location"), "/claims/") {
		t.Fatalf("create: %d %s %v", r.status, r.raw, r.header)
	}
	if bytes.Contains(r.raw, []byte("s3cret")) || bytes.Contains(r.raw, []byte("DEVICE_TOKEN_0001")) {
		t.Fatal("view leaks token or secret")
	}
	got := e.do("GET", r.header.Get("Location"), nil, "")
	if got.status != 200 || got.body["id"] != r.body["id"] {
		t.Fatalf("get: %d %s", got.status, got.raw)
	}
	// Header form, empty body: the same device's claims list both.
	h := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "OTHER_TOKEN_0002"}, "")
	if h.status != 202 || h.body["hasSecret"] != false || h.body["durationMs"] != nil {
		t.Fatalf("header form: %d %s", h.status, h.raw)
	}
	list := e.do("GET", "/devices/claims", map[string]string{"X-Device-Token": "DEVICE_TOKEN_0001"}, "")
	if cs, _ := list.body["claims"].([]any); list.status != 200 || len(cs) != 1 {
		t.Fatalf("device list: %d %s", list.status, list.raw)
	}
	if l := e.do("GET", "/devices/DEVICE_TOKEN_0001/claims", nil, ""); l.status != 200 {
		t.Fatalf("device list by path: %d", l.status)
	}
	if ev := e.do("GET", r.header.Get("Location")+"/events", nil, ""); ev.status != 200 || !strings.Contains(string(ev.raw), `"accepted"`) {
		t.Fatalf("events: %d %s", ev.status, ev.raw)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"secretKey":"` + strings.Repeat("a", 5000) + `"}`
	for _, tc := range []struct {
		name   string
		path   string
		header map[string]string
		body   string
		status int
		field  string
	}{
		{"malformed JSON", "/devices/T1/claim", nil, `{"secretKey":`, 400, ""},
		{"unknown field", "/devices/T1/claim", nil, `{"secret":"x"}`, 400, ""},
		{"trailing data", "/devices/T1/claim", nil, `{} {}`, 400, ""},
		{"not an object", "/devices/T1/claim", nil, `[]`, 400, ""},
		{"null body", "/devices/T1/claim", nil, `null`, 400, ""},
		{"invalid UTF-8", "/devices/T1/claim", nil, "{\"secretKey\":\"\xff\"}", 400, ""},
		{"too large", "/devices/T1/claim", nil, big, 413, ""},
		{"wrong content type", "/devices/T1/claim", map[string]string{"Content-Type": "text/plain"}, `{}`, 415, ""},
		{"no content type", "/devices/T1/claim", map[string]string{"Content-Type": ""}, `{}`, 415, ""},
		{"token with slash", "/devices/a%2Fb/claim", nil, `{}`, 422, "token"},
		{"token with space", "/devices/a%20b/claim", nil, `{}`, 422, "token"},
		{"token too long", "/devices/" + strings.Repeat("x", 129) + "/claim", nil, `{}`, 422, "token"},
		{"missing header token", "/devices/claim", nil, `{}`, 422, "X-Device-Token"},
		{"secret too long", "/devices/T1/claim", nil, `{"secretKey":"` + strings.Repeat("a", 129) + `"}`, 422, "secretKey"},
		{"secret not a string", "/devices/T1/claim", nil, `{"secretKey":123}`, 422, "secretKey"},
		{"secret null", "/devices/T1/claim", nil, `{"secretKey":null}`, 422, "secretKey"},
		{"secret control character", "/devices/T1/claim", nil, `{"secretKey":"a\u0007"}`, 422, "secretKey"},
		{"duration string", "/devices/T1/claim", nil, `{"durationMs":"60000"}`, 422, "durationMs"},
		{"duration float", "/devices/T1/claim", nil, `{"durationMs":1.5}`, 422, "durationMs"},
		{"duration exponent", "/devices/T1/claim", nil, `{"durationMs":1e3}`, 422, "durationMs"},
		{"duration null", "/devices/T1/claim", nil, `{"durationMs":null}`, 422, "durationMs"},
		{"duration bool", "/devices/T1/claim", nil, `{"durationMs":true}`, 422, "durationMs"},
		{"duration zero", "/devices/T1/claim", nil, `{"durationMs":0}`, 422, "durationMs"},
		{"duration too long", "/devices/T1/claim", nil, `{"durationMs":2592000001}`, 422, "durationMs"},
		{"duration overflow", "/devices/T1/claim", nil, `{"durationMs":99999999999999999999}`, 422, "durationMs"},
		{"idempotency key too long", "/devices/T1/claim", map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, `{}`, 422, "Idempotency-Key"},
		{"bad force", "/devices/T1/claim?force=maybe", nil, `{}`, 422, "force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, tc.header, tc.body)
			if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" ||
				r.body["status"] != float64(tc.status) || r.body["requestId"] == "" || r.body["detail"] == "" {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
			if tc.field != "" && problemField(r) != tc.field {
				t.Fatalf("want field %q, got %s", tc.field, r.raw)
			}
		})
	}
	// Nothing of the above was stored.
	var n int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d claims stored by bad requests", n)
	}
	if r := e.do("GET", "/claims/not-a-uuid", nil, ""); r.status != 404 {
		t.Fatalf("bad id: %d", r.status)
	}
	if r := e.do("GET", "/claims/0193a0c4-0000-7000-8000-000000000000", nil, ""); r.status != 404 {
		t.Fatalf("unknown id: %d", r.status)
	}
	if r := e.do("PUT", "/devices/T1/claim", nil, ""); r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Fatalf("wrong method: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := e.do("DELETE", "/devices/claims", nil, ""); r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Fatalf("wrong method on a read: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := e.do("GET", "/claims?status=lost", nil, ""); r.status != 422 || problemField(r) != "status" {
		t.Fatalf("bad status filter: %d %s", r.status, r.raw)
	}
}

func TestReplayAndHoldRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"secretKey":"one","durationMs":60000}`
	first := e.do("POST", "/devices/DEVICE_TOKEN_0003/claim", map[string]string{"Idempotency-Key": "k1"}, body)
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.raw)
	}
	// Same Idempotency-Key, same request: replay.
	again := e.do("POST", "/devices/DEVICE_TOKEN_0003/claim", map[string]string{"Idempotency-Key": "k1"}, body)
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || again.body["id"] != first.body["id"] {
		t.Fatalf("idempotent replay: %d %s", again.status, again.raw)
	}
	// Same key, other request: refused.
	if r := e.do("POST", "/devices/DEVICE_TOKEN_0003/claim", map[string]string{"Idempotency-Key": "k1"}, `{"secretKey":"two"}`); r.status != 422 ||
		r.body["type"] != "urn:claimsvc:problem:idempotency-key-reused" {
		t.Fatalf("key reuse: %d %s", r.status, r.raw)
	}
	// Same token + secret + duration without a key: replay too.
	if r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "DEVICE_TOKEN_0003"}, body); r.status != 200 || r.body["id"] != first.body["id"] {
		t.Fatalf("same-request replay: %d %s", r.status, r.raw)
	}
	// Another secret while the first is pending: 409 naming it.
	c := e.do("POST", "/devices/DEVICE_TOKEN_0003/claim", nil, `{"secretKey":"two","durationMs":60000}`)
	if c.status != 409 || c.body["blockingClaimId"] != first.body["id"] || !strings.Contains(c.body["detail"].(string), "force") {
		t.Fatalf("conflict: %d %s", c.status, c.raw)
	}
	// force: a new claim.
	f := e.do("POST", "/devices/DEVICE_TOKEN_0003/claim?force=true", nil, `{"secretKey":"two","durationMs":60000}`)
	if f.status != 202 || f.body["id"] == first.body["id"] {
		t.Fatalf("force: %d %s", f.status, f.raw)
	}
	// Operators: cancel the forced one, then retry refuses a non-failed claim.
	id := f.body["id"].(string)
	if r := e.do("DELETE", "/claims/"+id, nil, ""); r.status != 200 || r.body["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.raw)
	}
	if r := e.do("DELETE", "/claims/"+id, nil, ""); r.status != 409 {
		t.Fatalf("cancel twice: %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/claims/"+id+"/retry", nil, ""); r.status != 409 {
		t.Fatalf("retry of cancelled: %d %s", r.status, r.raw)
	}
	all := e.do("GET", "/claims?limit=1", nil, "")
	if cs, _ := all.body["claims"].([]any); all.status != 200 || len(cs) != 1 || all.body["nextCursor"] == nil {
		t.Fatalf("list: %d %s", all.status, all.raw)
	}
	next := e.do("GET", "/claims?limit=1&cursor="+all.body["nextCursor"].(string), nil, "")
	if cs, _ := next.body["claims"].([]any); next.status != 200 || len(cs) != 1 {
		t.Fatalf("list page 2: %d %s", next.status, next.raw)
	}
}

func TestPreferWaitReturnsTheFinalStatus(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, "127.0.0.1:0", func(u string) bool { return u != "UNKNOWN_TOKEN_09" })
	e := newEnv(t)
	pub, _ := mqtt.New(mqtt.Config{URL: b.URL()})
	d := dispatch.New(e.store, dispatch.Senders{claim.DeliveryMQTT: pub}, dispatch.Config{Workers: 2}, slog.New(slog.DiscardHandler), metrics.New(), e.hub.Done)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	start := time.Now()
	r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "DEVICE_TOKEN_0009", "Prefer": "wait=5"}, `{"secretKey":"x"}`)
	if r.status != 200 || r.body["status"] != "delivered" || r.header.Get("Preference-Applied") != "wait=5" || r.body["expiresAt"] == nil {
		t.Fatalf("wait: %d %s %v", r.status, r.raw, r.header)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
	rej := e.do("POST", "/devices/UNKNOWN_TOKEN_09/claim", map[string]string{"Prefer": "wait=99"}, ``)
	if rej.status != 200 || rej.body["status"] != "rejected" || rej.header.Get("Preference-Applied") != "wait=30" {
		t.Fatalf("rejected: %d %s", rej.status, rej.raw)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("operator-key"))
	keys := func(require bool) option {
		return func(d *claimhttp.Deps) {
			d.Access = claimhttp.Access{KeyHashes: [][]byte{sum[:]}, RequireForClaims: require}
		}
	}
	open := newEnv(t, keys(false))
	if r := open.do("POST", "/devices/T1/claim", nil, ""); r.status != 202 {
		t.Fatalf("claims need no key unless required: %d", r.status)
	}
	if r := open.do("GET", "/claims", nil, ""); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("operator route without key: %d", r.status)
	}
	if r := open.do("GET", "/claims", map[string]string{"Authorization": "Bearer nope"}, ""); r.status != 403 {
		t.Fatalf("wrong key: %d", r.status)
	}
	if r := open.do("GET", "/claims", map[string]string{"Authorization": "Bearer operator-key"}, ""); r.status != 200 {
		t.Fatalf("right key: %d", r.status)
	}
	strict := newEnv(t, keys(true))
	if r := strict.do("POST", "/devices/T1/claim", nil, ""); r.status != 401 {
		t.Fatalf("required key missing: %d", r.status)
	}
	if r := strict.do("POST", "/devices/T1/claim", map[string]string{"X-API-Key": "operator-key"}, ""); r.status != 202 {
		t.Fatalf("required key given: %d", r.status)
	}
	if r := strict.do("GET", "/livez", nil, ""); r.status != 200 {
		t.Fatalf("probes need no key: %d", r.status)
	}
	// Required, but no key configured: closed, not open.
	closed := newEnv(t, func(d *claimhttp.Deps) { d.Access = claimhttp.Access{RequireForClaims: true} })
	if r := closed.do("POST", "/devices/T1/claim", map[string]string{"X-API-Key": "anything"}, ""); r.status != 403 {
		t.Fatalf("required key with none configured: %d", r.status)
	}
}

// deadStore is a store whose database never answers: every query fails as
// an unreachable database does.
func deadStore(t *testing.T) *store.Store {
	t.Helper()
	dead, err := store.Open(t.Context(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	return dead
}

func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	dead := deadStore(t)
	e := newEnvWithStore(t, dead)
	r := e.do("POST", "/devices/T1/claim", nil, `{"secretKey":"x"}`)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("db down: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/readyz", nil, ""); r.status != 503 {
		t.Fatalf("readyz with db down: %d", r.status)
	}
	if r := e.do("GET", "/livez", nil, ""); r.status != 200 {
		t.Fatalf("livez: %d", r.status)
	}
}

func TestProbesAndDocs(t *testing.T) {
	t.Parallel()
	draining := false
	e := newEnv(t, func(d *claimhttp.Deps) { d.Draining = func() bool { return draining } })
	if r := e.do("GET", "/readyz", nil, ""); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
	draining = true
	if r := e.do("GET", "/readyz", nil, ""); r.status != 503 {
		t.Fatalf("readyz while draining: %d", r.status)
	}
	e.do("POST", "/devices/T1/claim", nil, "")
	e.do("FOO1", "/livez", nil, "") // any method name: must not become a label
	m := e.do("GET", "/metrics", nil, "")
	if strings.Contains(string(m.raw), "FOO1") || !strings.Contains(string(m.raw), `method="other"`) {
		t.Error("unknown methods are not folded into method=\"other\"")
	}
	for _, want := range []string{`claimsvc_claims_accepted_total{outcome="created"} 1`, `route="/devices/{token}/claim"`} {
		if !strings.Contains(string(m.raw), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m.raw), "/devices/T1/") {
		t.Error("metrics carry a raw path")
	}
	if r := e.do("GET", "/openapi.yaml", nil, ""); r.status != 200 || !bytes.Equal(r.raw, api.Spec) {
		t.Fatal("openapi.yaml not served")
	}
	r := e.do("GET", "/livez", map[string]string{"X-Request-Id": "factory-line-7.42"}, "")
	if r.header.Get("X-Request-Id") != "factory-line-7.42" {
		t.Fatal("inbound request id not kept")
	}
	if r := e.do("GET", "/livez", map[string]string{"X-Request-Id": "bad id\t"}, ""); r.header.Get("X-Request-Id") == "bad id\t" {
		t.Fatal("malformed request id kept")
	}
}

func TestLogsCarryNoTokenOrRawPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/devices/LEAKY_TOKEN_ABCDEF/claim", nil, `{"secretKey":"LEAKY_SECRET"}`)
	e.do("POST", "/devices/LEAKY_TOKEN_ABCDEF/claim", nil, `{"secretKey":"LEAKY_SECRET_2"}`)
	e.do("GET", "/devices/LEAKY_TOKEN_ABCDEF/claims", nil, "")
	if strings.Contains(e.logs.String(), "LEAKY") {
		t.Fatalf("logs leak: %s", e.logs.String())
	}
	if !strings.Contains(e.logs.String(), `"route":"/devices/{token}/claim"`) {
		t.Fatalf("logs lack the route pattern: %s", e.logs.String())
	}
}
