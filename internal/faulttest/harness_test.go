// Package faulttest breaks claimsvc for real and checks its promises (docs/design.md
// §8): `claimsvc serve` runs as a process built from this tree, with its own
// database, broker and load, and the tests SIGKILL it, stop the broker, cut
// the database off, and run replicas side by side. The short variants run in
// `make test`; CLAIMSVC_LONG_TESTS=1 (make test-long) runs the long ones.
// Every test logs a "figures:" line; docs/reliability.md quotes them.
package faulttest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/syncbuf"
	"github.com/jackc/pgx/v5"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// binary is the claimsvc executable TestMain builds for this package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "claimsvc")
	build := exec.Command("go", "build", "-o", binary, "github.com/claimsvc/claimsvc/cmd/claimsvc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "faulttest: cannot build claimsvc:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// long reports whether the long variants were asked for.
func long() bool { return os.Getenv("CLAIMSVC_LONG_TESTS") == "1" }

// pick returns short in `make test`, long under CLAIMSVC_LONG_TESTS=1.
func pick[T any](short, long_ T) T {
	if long() {
		return long_
	}
	return short
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// service is one `claimsvc serve` process, restartable on the same address.
type service struct {
	t    *testing.T
	addr string
	env  []string
	out  *syncbuf.Buffer // every run's stdout and stderr

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// apiKey is what the load sends, as a factory tool would; dataKey seals the
// claims of every service of the package (replicas of a test share it).
const apiKey = "FAULTTEST_API_KEY_0123456789"

var dataKey = base64.StdEncoding.EncodeToString([]byte("faulttest data key: 32 bytes....")[:32])

// baseEnv is what every service in these tests runs with: an API key and a
// data key, as an operator must configure; small timeouts so that a killed
// replica's leases come back within seconds, fast gauges, no rate limits (the
// load comes from one IP and retries per token).
func baseEnv(dbURL, mqttURL string) map[string]string {
	sum := sha256.Sum256([]byte(apiKey))
	return map[string]string{
		"CLAIMSVC_API_KEYS": hex.EncodeToString(sum[:]), "CLAIMSVC_DATA_KEY": dataKey,
		"CLAIMSVC_DATABASE_URL": dbURL, "CLAIMSVC_MQTT_URL": mqttURL,
		"CLAIMSVC_WORKERS": "8", "CLAIMSVC_DB_MAX_CONNS": "10",
		"CLAIMSVC_MQTT_CONNECT_TIMEOUT": "2s", "CLAIMSVC_MQTT_ACK_TIMEOUT": "2s", "CLAIMSVC_LEASE_DURATION": "8s",
		"CLAIMSVC_STATS_INTERVAL": "1s", "CLAIMSVC_SHUTDOWN_TIMEOUT": "4s",
		"CLAIMSVC_RATE_LIMIT_IP": "off", "CLAIMSVC_RATE_LIMIT_TOKEN": "off", "CLAIMSVC_LOG_FORMAT": "text",
	}
}

// startService runs claimsvc serve with env and waits until /readyz is 200.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	s := &service{t: t, addr: freeAddr(t), out: &syncbuf.Buffer{}}
	s.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "CLAIMSVC_HTTP_ADDR=" + s.addr}
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	t.Cleanup(s.kill)
	s.start()
	return s
}

func (s *service) url() string { return "http://" + s.addr }

// start runs the process (again) and waits up to 15 s for readiness.
func (s *service) start() {
	s.t.Helper()
	s.mu.Lock()
	cmd := exec.Command(binary, "serve")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.out, s.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start claimsvc: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if status(s.url()+"/readyz") == 200 {
			return
		}
		select {
		case <-exited:
			s.t.Fatalf("claimsvc exited at start:\n%s", tail(s.out.String(), 3000))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("claimsvc not ready within 15 s:\n%s", tail(s.out.String(), 3000))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone. Safe when down.
func (s *service) kill() { s.signal(syscall.SIGKILL) }

// stop sends SIGTERM (graceful shutdown) and waits.
func (s *service) stop() { s.signal(syscall.SIGTERM) }

func (s *service) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func status(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// metric reads one unlabelled sample from the service's /metrics; -1 when
// the service does not answer.
func (s *service) metric(name string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(s.url() + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// body returns the body of GET path ("" when the service does not answer).
func (s *service) body(path string) string {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(s.url() + path)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// sum runs a query returning one number on the service's database.
func (s *service) sum(t *testing.T, dbURL, query string, args ...any) float64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v float64
	if err := conn.QueryRow(t.Context(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

// recorder is an MQTT broker in the test process (mochi) that counts the
// claims it receives per device token (the MQTT username) and notices when
// two connections with the same client id (claimsvc-{claim id}) are open at
// once, i.e. one claim being sent by two dispatchers at the same moment. It
// outlives every claimsvc process of a test.
type recorder struct {
	srv  *mochi.Server
	addr string

	mu       sync.Mutex
	count    map[string]int // token → PUBLISHes received
	times    []time.Time    // when each PUBLISH arrived
	active   map[string]int // client id → open connections
	overlaps int
	ackDelay time.Duration // hold each PUBACK this long (attempts in flight)
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{count: map[string]int{}, active: map[string]int{}}
	r.srv = mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := r.srv.AddHook(&recorderHook{r: r}, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "rec", Address: "127.0.0.1:0"})
	if err := r.srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	r.addr = l.Address()
	go func() { _ = r.srv.Serve() }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *recorder) url() string { return "tcp://" + r.addr }

func (r *recorder) setAckDelay(d time.Duration) {
	r.mu.Lock()
	r.ackDelay = d
	r.mu.Unlock()
}

// deliveries returns token → count.
func (r *recorder) deliveries() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.count))
	for k, v := range r.count {
		out[k] = v
	}
	return out
}

// publishedBetween counts the PUBLISHes that arrived between a and b.
func (r *recorder) publishedBetween(a, b time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.times {
		if !at.Before(a) && !at.After(b) {
			n++
		}
	}
	return n
}

func (r *recorder) overlapCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.overlaps
}

type recorderHook struct {
	mochi.HookBase
	r *recorder
}

func (h *recorderHook) ID() string { return "faulttest-recorder" }

func (h *recorderHook) Provides(b byte) bool {
	return slices.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnConnect, mochi.OnDisconnect, mochi.OnPublish}, b)
}

func (h *recorderHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *recorderHook) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

func (h *recorderHook) OnConnect(cl *mochi.Client, _ packets.Packet) error {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if strings.HasPrefix(cl.ID, "claimsvc-") && h.r.active[cl.ID] > 0 {
		h.r.overlaps++
	}
	h.r.active[cl.ID]++
	return nil
}

func (h *recorderHook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if h.r.active[cl.ID]--; h.r.active[cl.ID] <= 0 {
		delete(h.r.active, cl.ID)
	}
}

func (h *recorderHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	h.r.mu.Lock()
	h.r.count[string(cl.Properties.Username)]++
	h.r.times = append(h.r.times, time.Now())
	d := h.r.ackDelay
	h.r.mu.Unlock()
	if d > 0 {
		time.Sleep(d) // PUBACK follows this hook
	}
	return pk, nil
}

// load posts claims, each for its own device token, the way a careful client
// would: with an Idempotency-Key, and again (same key) after a connection
// error, a 503 or a 429, until a 2xx arrives or the claim's time runs out.
// accepted holds each token that got a 2xx, with when.
type load struct {
	t      *testing.T
	prefix string
	urls   func() []string // where to send; one is picked per attempt

	mu       sync.Mutex
	accepted map[string]time.Time
	ids      map[string]string // token → claim id
	statuses map[int]int       // every answer's status (0: transport error)
	bad      []string          // unexpected answers
	retryOK  bool              // every 503/429 carried Retry-After
}

func newLoad(t *testing.T, prefix string, urls func() []string) *load {
	return &load{t: t, prefix: prefix, urls: urls, accepted: map[string]time.Time{}, ids: map[string]string{},
		statuses: map[int]int{}, retryOK: true}
}

// run sends claims from workers clients, one claim every interval each,
// until ctx ends; then it finishes the claims under way (up to giveUp each).
func (l *load) run(ctx context.Context, workers int, interval, giveUp time.Duration) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				l.claim(fmt.Sprintf("%s_%02d_%06d", l.prefix, w, n), giveUp)
			}
		})
	}
	wg.Wait()
}

// burst sends claims from workers clients as fast as each gets answers, for
// d, and returns the claims accepted per second: intake capacity.
func (l *load) burst(workers int, d time.Duration, tag string) float64 {
	var n sync.WaitGroup
	var count atomic.Int64
	start := time.Now()
	for w := range workers {
		n.Go(func() {
			for i := 0; time.Since(start) < d; i++ {
				token := fmt.Sprintf("%s_%s_%02d_%06d", l.prefix, tag, w, i)
				l.claim(token, 5*time.Second)
				l.mu.Lock()
				_, ok := l.accepted[token]
				l.mu.Unlock()
				if ok {
					count.Add(1)
				}
			}
		})
	}
	n.Wait()
	return float64(count.Load()) / time.Since(start).Seconds()
}

func (l *load) claim(token string, giveUp time.Duration) {
	client := http.Client{Timeout: 5 * time.Second}
	body := `{"secretKey":"` + token + `"}`
	deadline := time.Now().Add(giveUp)
	h := fnv.New32a()
	_, _ = h.Write([]byte(token))
	spread := int(h.Sum32() % 1024) // which service a claim starts with
	for i := spread; time.Now().Before(deadline); i++ {
		urls := l.urls()
		req, _ := http.NewRequest("POST", urls[i%len(urls)]+"/devices/claim", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Device-Token", token)
		req.Header.Set("Idempotency-Key", token)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		res, err := client.Do(req)
		code := 0
		var view struct{ ID string }
		if err == nil {
			code = res.StatusCode
			if code == 503 || code == 429 {
				if res.Header.Get("Retry-After") == "" {
					l.mu.Lock()
					l.retryOK = false
					l.mu.Unlock()
				}
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			_ = json.Unmarshal(raw, &view)
			if code != 503 && code != 429 && code/100 != 2 {
				l.mu.Lock()
				l.bad = append(l.bad, fmt.Sprintf("%d %s", code, raw))
				l.mu.Unlock()
				return
			}
		}
		l.mu.Lock()
		l.statuses[code]++
		if code/100 == 2 {
			l.accepted[token] = time.Now()
			l.ids[token] = view.ID
		}
		l.mu.Unlock()
		if code/100 == 2 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *load) snapshot() (accepted map[string]time.Time, statuses map[int]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	accepted = make(map[string]time.Time, len(l.accepted))
	for k, v := range l.accepted {
		accepted[k] = v
	}
	statuses = make(map[int]int, len(l.statuses))
	for k, v := range l.statuses {
		statuses[k] = v
	}
	return accepted, statuses
}

// check fails the test on answers other than 2xx, 503 and 429, or on a
// 503/429 without Retry-After.
func (l *load) check() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) > 0 {
		l.t.Errorf("%d unexpected answers, e.g. %s", len(l.bad), l.bad[0])
	}
	if !l.retryOK {
		l.t.Error("a 503 or 429 came without Retry-After")
	}
}

// waitDelivered waits until every accepted token was delivered at least once
// (per deliveries), up to within; it returns the tokens still missing.
func waitDelivered(accepted map[string]time.Time, deliveries func() map[string]int, within time.Duration) (missing []string) {
	deadline := time.Now().Add(within)
	for {
		got := deliveries()
		missing = missing[:0]
		for tok := range accepted {
			if got[tok] == 0 {
				missing = append(missing, tok)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// duplicates counts extra deliveries of accepted tokens.
func duplicates(accepted map[string]time.Time, got map[string]int) int {
	n := 0
	for tok := range accepted {
		if got[tok] > 1 {
			n += got[tok] - 1
		}
	}
	return n
}

// proxy is a TCP proxy in front of a server (PostgreSQL) that the test can
// cut (listener closed, every connection reset) and restore on the same port.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

func (p *proxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); done <- struct{}{} }
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut makes the database unreachable: new connections are refused and open
// ones reset.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, as when a network path dies
		}
		c.Close()
	}
}

// restore listens on the same address again.
func (p *proxy) restore() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port can take a moment to be free again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

var errTimeout = errors.New("timed out")

// eventually polls f every 50 ms until it returns true or within passes.
func eventually(within time.Duration, f func() bool) error {
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
