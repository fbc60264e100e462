package http_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawDo writes req byte for byte to the test server (the Go client refuses to
// send most of these) and reads one response. halfClose ends the request
// stream after req and body (the server then sees the client leave).
func (e *env) rawDo(t *testing.T, req string, body io.Reader, halfClose bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.srv.Listener.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { // the server may answer and close before the body is written
		_, _ = io.WriteString(conn, req)
		if body != nil {
			_, _ = io.Copy(conn, body)
		}
		if halfClose {
			_ = conn.(*net.TCPConn).CloseWrite()
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, raw
}

// post builds a raw POST with the given target, extra header lines and body.
func post(target, headers, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: claimsvc\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		target, headers, len(body), body)
}

// TestHostileInputs sends what an attacker or a broken client might, through
// the real HTTP server and database: never a 5xx, never a panic, nothing
// stored except by the requests that were accepted, and no input echoed in a
// response header.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	deepArray := strings.Repeat("[", 3000) + strings.Repeat("]", 3000)
	deepObject := `{"secretKey":` + strings.Repeat(`{"a":`, 1000) + `1` + strings.Repeat(`}`, 1000) + `}`
	cases := []struct {
		name string
		req  string
		body io.Reader // streamed after req (for huge bodies)
		want int       // exact status; 0: any status below 500
	}{
		{"huge body with Content-Length", "POST /devices/HUGE_TOKEN_0001/claim HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n",
			io.LimitReader(neverEnding('a'), 8<<20), 413},
		{"huge chunked body", "POST /devices/HUGE_TOKEN_0002/claim HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
			chunked(io.LimitReader(neverEnding('{'), 1<<20)), 413},
		{"huge header", "POST /devices/claim HTTP/1.1\r\nHost: c\r\nX-Device-Token: " + strings.Repeat("T", 2<<20) + "\r\nContent-Length: 0\r\n\r\n", nil, 431},
		{"deep JSON array", post("/devices/DEEP_TOKEN_0001/claim", "", deepArray[:4000]), nil, 400},
		{"deep JSON object in a field", post("/devices/DEEP_TOKEN_0002/claim", "", deepObject), nil, 413},
		{"deep JSON object within the limit", post("/devices/DEEP_TOKEN_0003/claim", "", `{"secretKey":`+strings.Repeat(`{"a":`, 600)+`1`+strings.Repeat(`}`, 600)+`}`), nil, 422},
		{"invalid UTF-8 body", post("/devices/UTF8_TOKEN_0001/claim", "", "{\"secretKey\":\"\xc3\x28\"}"), nil, 400},
		{"a lone surrogate escape", post("/devices/UTF8_TOKEN_0002/claim", "", `{"secretKey":"a\ud800b"}`), nil, 422},
		{"U+FFFD as sent", post("/devices/UTF8_TOKEN_0003/claim", "", `{"secretKey":"a\ufffdb"}`), nil, 202},
		{"invalid UTF-8 in the path", post("/devices/%ff%fe/claim", "", `{}`), nil, 422},
		{"raw invalid UTF-8 in the path", post("/devices/\xff\xfe/claim", "", `{}`), nil, 0},
		{"invalid UTF-8 in X-Device-Token", post("/devices/claim", "X-Device-Token: \xff\xfe\xfd\r\n", `{}`), nil, 422},
		{"token with /", post("/devices/a/b/claim", "", `{}`), nil, 404},
		{"token with %2F", post("/devices/a%2Fb/claim", "", `{}`), nil, 422},
		{"token with %2f in the header", post("/devices/claim", "X-Device-Token: a%2fb\r\n", `{}`), nil, 202},
		{"token ..", post("/devices/../claim", "", `{}`), nil, 202},
		{"token %2E%2E", post("/devices/%2E%2E/claim", "", `{}`), nil, 200}, // same device and request as "..": a replay
		{"token with %00", post("/devices/a%00b/claim", "", `{}`), nil, 422},
		{"NUL in X-Device-Token", post("/devices/claim", "X-Device-Token: a\x00b\r\n", `{}`), nil, 400},
		{"path traversal to another route", post("/devices/x/../../claims/x/retry", "", `{}`), nil, 0},
		{"Idempotency-Key header injection", post("/devices/IDEM_TOKEN_0001/claim", "Idempotency-Key: k1\r\nX-Evil: injected\r\n", `{}`), nil, 202},
		{"Idempotency-Key with bare CR", post("/devices/IDEM_TOKEN_0002/claim", "Idempotency-Key: k1\rX-Evil: injected\r\n", `{}`), nil, 400},
		{"Idempotency-Key with a tab", post("/devices/IDEM_TOKEN_0003/claim", "Idempotency-Key: k\t1\r\n", `{}`), nil, 422},
		{"Idempotency-Key with UTF-8", post("/devices/IDEM_TOKEN_0004/claim", "Idempotency-Key: ключ\r\n", `{}`), nil, 422},
		{"Idempotency-Key with %0d%0a", post("/devices/IDEM_TOKEN_0005/claim", "Idempotency-Key: k%0d%0aX-Evil:%20injected\r\n", `{}`), nil, 202},
		{"Idempotency-Key of 10 KiB", post("/devices/IDEM_TOKEN_0006/claim", "Idempotency-Key: "+strings.Repeat("k", 10<<10)+"\r\n", `{}`), nil, 422},
		{"empty Idempotency-Key", post("/devices/IDEM_TOKEN_0007/claim", "Idempotency-Key: \r\n", `{}`), nil, 422},
		{"X-Request-Id injection", post("/devices/REQID_TOKEN_01/claim", "X-Request-Id: a\r\nX-Evil: injected\r\n", `{}`), nil, 202},
		{"Prefer wait overflow", post("/devices/PREFER_TOKEN_1/claim", "Prefer: wait=99999999999999999999999\r\n", `{}`), nil, 202},
		{"Prefer wait negative", post("/devices/PREFER_TOKEN_2/claim", "Prefer: wait=-5, wait=;;;\r\n", `{}`), nil, 202},
		{"force with NUL", post("/devices/FORCE_TOKEN_01/claim?force=%00", "", `{}`), nil, 422},
		{"content type with NUL parameter", "POST /devices/CT_TOKEN_0001/claim HTTP/1.1\r\nHost: c\r\nContent-Type: application/json; charset=\"\x01\"\r\nContent-Length: 2\r\n\r\n{}", nil, 0},
		{"number overflow", post("/devices/NUM_TOKEN_0001/claim", "", `{"durationMs":1e999999}`), nil, 422},
		{"duplicate keys", post("/devices/DUP_TOKEN_0001/claim", "", `{"secretKey":"a","secretKey":"b"}`), nil, 400},
		{"case-folded field name", post("/devices/DUP_TOKEN_0001/claim", "", `{"SecretKey":"a"}`), nil, 400},
		{"token of 64 KiB in the path", post("/devices/"+strings.Repeat("x", 64<<10)+"/claim", "", `{}`), nil, 422},
		{"API key of 64 KiB", post("/claims/00000000-0000-0000-0000-000000000000/retry", "Authorization: Bearer "+strings.Repeat("k", 64<<10)+"\r\n", ``), nil, 404},
		{"unknown method", "BREW /devices/T1/claim HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n", nil, 405},
	}
	accepted := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, raw := e.rawDo(t, tc.req, tc.body, false) //nolint:bodyclose // rawDo closes it
			if res.StatusCode >= 500 || (tc.want != 0 && res.StatusCode != tc.want) {
				t.Fatalf("got %d, want %d: %.300s", res.StatusCode, tc.want, raw)
			}
			if res.StatusCode == http.StatusAccepted {
				accepted++
			}
			if res.Header.Get("X-Evil") != "" || strings.Contains(fmt.Sprint(res.Header), "injected") {
				t.Fatalf("input reflected into response headers: %v", res.Header)
			}
		})
	}
	t.Run("body shorter than Content-Length", func(t *testing.T) {
		res, raw := e.rawDo(t, "POST /devices/SHORT_TOKEN_01/claim HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}", nil, true) //nolint:bodyclose // rawDo closes it
		if res.StatusCode != 400 {
			t.Fatalf("got %d: %s", res.StatusCode, raw)
		}
	})
	if strings.Contains(e.logs.String(), "panic") {
		t.Fatalf("a request panicked:\n%s", e.logs.String())
	}
	var stored int
	if err := e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != accepted {
		t.Fatalf("%d claims stored, %d requests answered 202", stored, accepted)
	}
	if r := e.do("GET", "/livez", nil, ""); r.status != 200 {
		t.Fatalf("server unwell after hostile inputs: %d", r.status)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// chunked encodes r with HTTP/1.1 chunked transfer coding.
func chunked(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := fmt.Fprintf(pw, "%x\r\n%s\r\n", n, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_, _ = io.WriteString(pw, "0\r\n\r\n")
				_ = pw.Close()
				return
			}
		}
	}()
	return pr
}
