package console_test

import (
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/console"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

type env struct {
	t   *testing.T
	srv *httptest.Server
	st  *store.Store
	c   *http.Client
}

// newEnv serves a console on a fresh database, with API key "operator-key"
// configured unless open.
func newEnv(t *testing.T, open bool, keys ...string) *env {
	t.Helper()
	st := storetest.New(t, nil)
	d := console.Deps{Store: st, Canceller: st, Validator: claim.NewValidator(claim.Rules{}), Hold: time.Hour}
	if !open {
		if len(keys) == 0 {
			keys = []string{"operator-key"}
		}
		for _, k := range keys {
			sum := sha256.Sum256([]byte(k))
			d.KeyHashes = append(d.KeyHashes, sum[:])
		}
	}
	con, err := console.New(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close)
	r := chi.NewRouter()
	r.Mount("/ui", con.Handler())
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &env{t: t, srv: srv, st: st, c: &http.Client{Jar: jar}}
}

// answer is what a test reads of a response (its body read and closed).
type answer struct {
	StatusCode int
	Header     http.Header
	Request    *http.Request // the last one, after redirects
}

func (e *env) get(path string, h ...string) (answer, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	return e.do(req, h...)
}

func (e *env) post(path string, form url.Values, h ...string) (answer, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req, h...)
}

// do sends req with the header pairs h (name, value, …) and reads the answer.
func (e *env) do(req *http.Request, h ...string) (answer, string) {
	e.t.Helper()
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	res, err := e.c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, res.Request}, string(b)
}

// cookies are the browser's cookies for the console.
func (e *env) cookies() []*http.Cookie {
	u, _ := url.Parse(e.srv.URL + "/ui/")
	return e.c.Jar.Cookies(u)
}

// setCookies puts cookies into the browser, for the console's path (as a
// copied or forged cookie would be).
func (e *env) setCookies(cs []*http.Cookie) {
	u, _ := url.Parse(e.srv.URL + "/ui/")
	for _, c := range cs {
		c.Path = "/ui/"
	}
	e.c.Jar.SetCookies(u, cs)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

func (e *env) login(key string, h ...string) answer {
	e.t.Helper()
	_, body := e.get("/ui/login")
	res, _ := e.post("/ui/login", url.Values{"key": {key}, "csrf": {csrf(e.t, body)}, "next": {"/ui/claims"}}, h...)
	return res
}

func TestLoginSessionAndCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	res, _ := e.get("/ui/claims?status=pending")
	if res.Request.URL.Path != "/ui/login" || res.Request.URL.Query().Get("next") != "/ui/claims?status=pending" {
		t.Fatalf("without a session: %s", res.Request.URL)
	}
	if res := e.login("wrong-key"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", res.StatusCode)
	}
	// Without the login form's CSRF token.
	if res, _ := e.post("/ui/login", url.Values{"key": {"operator-key"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF: %d", res.StatusCode)
	}
	// Behind a TLS-terminating proxy the cookie is Secure.
	var set string
	e.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) == 1 {
			set = req.Response.Header.Get("Set-Cookie")
		}
		return nil
	}
	res = e.login("operator-key", "X-Forwarded-Proto", "https")
	if res.StatusCode != 200 || res.Request.URL.Path != "/ui/claims" {
		t.Fatalf("login: %d %s", res.StatusCode, res.Request.URL)
	}
	for _, want := range []string{"claimsvc_session=", "HttpOnly", "SameSite=Strict", "Secure", "Path=/ui/", "Max-Age=28800"} {
		if !strings.Contains(set, want) {
			t.Errorf("session cookie %q lacks %s", set, want)
		}
	}
	if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("security headers: %v", res.Header)
	}
	// The cookie is not Secure over plain HTTP (or the browser would drop it).
	set = ""
	e.login("operator-key")
	if strings.Contains(set, "Secure") || !strings.Contains(set, "HttpOnly") {
		t.Fatalf("plain HTTP cookie: %q", set)
	}
	// A forged cookie is no session.
	good := e.cookies()
	e.setCookies([]*http.Cookie{{Name: "claimsvc_session", Value: "AQAAAAB.forged"}})
	if res, _ := e.get("/ui/"); res.Request.URL.Path != "/ui/login" {
		t.Fatalf("forged cookie: %s", res.Request.URL)
	}
	e.setCookies(good)
	if res, _ := e.get("/ui/"); res.Request.URL.Path != "/ui/" {
		t.Fatalf("session lost: %s", res.Request.URL)
	}
}

// TestLogoutEndsTheSession: after a logout, a copy of the session's cookie
// (another tab, a stolen one) no longer opens the console.
func TestLogoutEndsTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	if res := e.login("operator-key"); res.Request.URL.Path != "/ui/claims" {
		t.Fatalf("login: %s", res.Request.URL)
	}
	copied := e.cookies()
	_, page := e.get("/ui/")
	if res, _ := e.post("/ui/logout", url.Values{"csrf": {csrf(t, page)}}); res.Request.URL.Path != "/ui/login" {
		t.Fatalf("logout: %s", res.Request.URL)
	}
	e.setCookies(copied)
	if res, _ := e.get("/ui/"); res.Request.URL.Path != "/ui/login" {
		t.Fatalf("the session's cookie still opens the console after its logout: %s", res.Request.URL)
	}
	// A new login is a new session.
	if res := e.login("operator-key"); res.Request.URL.Path != "/ui/claims" {
		t.Fatalf("login again: %s", res.Request.URL)
	}
}

func TestSessionEndsWhenItsKeyIsRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, "old-key", "new-key")
	e.login("old-key")
	cookies := e.cookies()
	// The same database (the same session key), a console that has only the new key.
	sum := sha256.Sum256([]byte("new-key"))
	con, err := console.New(t.Context(), console.Deps{Store: e.st, Validator: claim.NewValidator(claim.Rules{}), KeyHashes: [][]byte{sum[:]}})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Mount("/ui", con.Handler())
	srv := httptest.NewServer(r)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	u2, _ := url.Parse(srv.URL + "/ui/")
	jar.SetCookies(u2, cookies)
	res, err := (&http.Client{Jar: jar}).Get(srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.Path != "/ui/login" {
		t.Fatalf("a session of a removed key: %s", res.Request.URL)
	}
}

func TestActionsNeedCSRFAndAreByTheConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.login("operator-key")
	acc, err := e.st.Create(t.Context(), claim.Request{Token: "CSRF_TOKEN_000001", Delivery: claim.DeliveryMQTT}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := "/ui/claims/" + acc.Claim.ID.String()
	_, page := e.get(path)
	if res, _ := e.post(path+"/cancel", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cancel without CSRF: %d", res.StatusCode)
	}
	if res, _ := e.post(path+"/cancel", url.Values{"csrf": {csrf(t, page)}}, "Origin", "https://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cancel from another origin: %d", res.StatusCode)
	}
	// Behind a reverse proxy that sends its upstream's name as Host, the
	// browser's origin is the forwarded host.
	res, body := e.post(path+"/cancel", url.Values{"csrf": {csrf(t, page)}},
		"Origin", "https://claims.example.com", "X-Forwarded-Host", "claims.example.com")
	if res.StatusCode != 200 || !strings.Contains(body, "The claim is cancelled.") {
		t.Fatalf("cancel: %d", res.StatusCode)
	}
	evs, _ := e.st.Events(t.Context(), acc.Claim.ID)
	sum := sha256.Sum256([]byte("operator-key"))
	want := "console:" + strings.ToLower(strings.TrimSpace(hexOf(sum[:4])))
	if len(evs) != 2 || evs[1].Kind != "cancelled" || evs[1].Actor != want {
		t.Fatalf("events: %+v (want actor %s)", evs, want)
	}
	if !strings.Contains(body, "by console (key "+want[len("console:"):]+")") {
		t.Fatal("the page does not say who cancelled it")
	}
	// Cancelling again is refused, on the claim's page.
	_, page = e.get(path)
	if res, body := e.post(path+"/cancel", url.Values{"csrf": {csrf(t, page)}}); res.StatusCode != http.StatusConflict || !strings.Contains(body, "Not done") {
		t.Fatalf("second cancel: %d", res.StatusCode)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestPagesNeverShowATokenOrASecret: a claim made through the form, refused
// forms shown again, the list, the claim, the overview, and a whole token
// typed as a hint.
func TestPagesNeverShowATokenOrASecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	const token, secret = "SECRET_DEVICE_TOKEN_42", "very-secret-value"
	_, page := e.get("/ui/new")
	// A bad duration: the form comes back, without the token and the secret.
	res, body := e.post("/ui/new", url.Values{"csrf": {csrf(t, page)}, "token": {token}, "secretKey": {secret}, "duration": {"soon"}})
	if res.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, token) || strings.Contains(body, secret) {
		t.Fatalf("refused form: %d, leaks: %v", res.StatusCode, strings.Contains(body, token) || strings.Contains(body, secret))
	}
	res, body = e.post("/ui/new", url.Values{"csrf": {csrf(t, page)}, "token": {token}, "secretKey": {secret}, "deviceName": {"Boiler 7"}, "duration": {"2h"}})
	if res.StatusCode != 200 || !strings.Contains(body, "SECR…42") || !strings.Contains(body, "2h") {
		t.Fatalf("created: %d %s", res.StatusCode, res.Request.URL)
	}
	pages := []string{res.Request.URL.Path, "/ui/", "/ui/claims", "/ui/claims?device=boil", "/ui/claims?hint=SECR", "/ui/claims?hint=SECR...42",
		"/ui/claims?hint=" + token, "/ui/import"}
	for _, p := range pages {
		_, body := e.get(p)
		if strings.Contains(body, token) || strings.Contains(body, secret) {
			t.Errorf("%s shows the token or the secret", p)
		}
	}
	_, body = e.get("/ui/claims?hint=" + token)
	if !strings.Contains(body, "never takes a whole token") {
		t.Error("a whole token as a hint is not refused")
	}
	_, body = e.get("/ui/claims?hint=SECR...42")
	if !strings.Contains(body, "Boiler 7") {
		t.Error("the hint as shown finds nothing")
	}
}

func TestImportThroughTheConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	_, page := e.get("/ui/import")
	csv := "token,deviceName,secretKey\nIMPORT_TOKEN_0001,Dev 1,s1\nbad token,Dev 2,s2\nIMPORT_TOKEN_0003,Dev 3,s3\n"
	uploadFile := func(name, csv string) answer {
		var b strings.Builder
		b.WriteString("--X\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf(t, page) + "\r\n")
		b.WriteString("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name + "\"\r\nContent-Type: text/csv\r\n\r\n" + csv + "\r\n--X--\r\n")
		req, _ := http.NewRequest("POST", e.srv.URL+"/ui/import", strings.NewReader(b.String()))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=X")
		res, err := e.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return answer{res.StatusCode, res.Header, res.Request}
	}
	upload := func() answer { return uploadFile("../line 3.csv", csv) }
	// A file with more rows than the console takes is refused before it is
	// all read (its memory stays bounded), and its import slot is free again.
	var big strings.Builder
	big.WriteString("token,durationMs\n")
	for range 20_001 {
		big.WriteString("x,7d\n")
	}
	if res := uploadFile("big.csv", big.String()); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a file over the row limit: %d", res.StatusCode)
	}
	for run := range 2 { // the same file twice: nothing twice
		res := upload()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Request.URL.Path, "/ui/imports/") {
			t.Fatalf("upload: %d %s", res.StatusCode, res.Request.URL)
		}
		var body string
		for deadline := time.Now().Add(10 * time.Second); ; {
			_, body = e.get(res.Request.URL.Path)
			if strings.Contains(body, `id="import-state">done<`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("import not done:\n%s", body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		want := "2 created"
		if run == 1 {
			want = "2 already stored"
		}
		if !strings.Contains(body, want) || !strings.Contains(body, "line 3.csv") || !strings.Contains(body, "1 not accepted") ||
			!regexp.MustCompile(`<td class="right">3</td><td>token: must be`).MatchString(body) {
			t.Fatalf("run %d:\n%s", run, body)
		}
	}
	st, _ := e.st.Stats(t.Context())
	if st.Total != 2 {
		t.Fatalf("%d claims", st.Total)
	}
	// A long file name is cut between characters, never inside one.
	if res := uploadFile(strings.Repeat("é", 150)+".csv", csv); res.StatusCode != 200 {
		t.Fatalf("a long non-ASCII file name: %d", res.StatusCode)
	}
}
