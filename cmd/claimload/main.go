// Command claimload measures claimsvc on this machine against baselines run
// in the same invocation, and prints each figure with its baseline, their
// ratio and the docs/design.md §8 target:
//
//   - intake: POST /devices/{token}/claim → 202 at 1, 8, 32 and 128 clients
//     (claims/s, p50/p99, CPU per claim) against a plain pgx loop of
//     single-statement INSERTs in autocommit; at 32 clients also against
//     BEGIN; INSERT; COMMIT, and driven by wrk when it is installed;
//   - batch intake: POST /claims:batch at 1 and 8 clients against
//     single-request intake;
//   - end to end: first request → every claim delivered, for the mqtt
//     delivery (on the broker) and the http one (the emulator's device API),
//     against a raw paho loop and mosquitto_pub eight at a time;
//   - sustained (full mode): a steady intake at half the end-to-end maximum
//     for 60 s while the dispatcher delivers;
//   - stall: claimsvc stopped for seconds mid-delivery, the broker healthy;
//   - backlog: peak RSS and goroutines of `claimsvc serve` draining a backlog
//     of pending claims, and the time to drain it.
//
// It runs the claimsvc binary given by --claimsvc as a separate process on a
// fresh database of the local PostgreSQL (dropped afterwards) and the local
// Mosquitto, and talks to 127.0.0.1 only. Every loop is bounded in count and
// time. Figures that miss their target are marked; it exits non-zero only
// when the benchmark itself broke. `make bench` is the quick mode;
// `make bench-full` the full one.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// baselineMaxConns caps the pgx baseline's connections: PostgreSQL's default
// max_connections is 100, and the server is shared with claimsvc's pool.
const baselineMaxConns = 64

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "claimload:", err)
		os.Exit(1)
	}
}

type options struct {
	full       bool
	claimsvc   string
	adminURL   string
	mqttAddr   string
	keepDB     bool
	only       string
	profileDir string
	svcFlags   string
}

// plan sizes one mode's runs.
type plan struct {
	name           string
	levels         []int         // intake concurrencies
	intakeFor      time.Duration // per intake run (claimsvc and baseline each)
	intakeMax      int64         // claims per intake run at most
	batchSize      int
	e2eClients     int
	e2eClaims      int
	mosqClaims     int
	e2eTimeout     time.Duration
	backlog        int
	backlogTimeout time.Duration
	stallClaims    int           // claims of the stall run
	stall          time.Duration // how long claimsvc is stopped (full mode: longer than the 10 s PUBACK timeout)
}

var plans = map[bool]plan{
	false: {name: "quick", levels: []int{1, 32, 128}, intakeFor: 1500 * time.Millisecond, intakeMax: 100_000, batchSize: 1000,
		e2eClients: 32, e2eClaims: 3_000, mosqClaims: 200, e2eTimeout: 30 * time.Second,
		backlog: 10_000, backlogTimeout: 60 * time.Second, stallClaims: 2_000, stall: 2 * time.Second},
	true: {name: "full", levels: []int{1, 8, 32, 128}, intakeFor: 10 * time.Second, intakeMax: 1_000_000, batchSize: 1000,
		e2eClients: 32, e2eClaims: 30_000, mosqClaims: 2_000, e2eTimeout: 120 * time.Second,
		backlog: 100_000, backlogTimeout: 300 * time.Second, stallClaims: 10_000, stall: 12 * time.Second},
}

type bench struct {
	opts         options
	plan         plan
	out, log     io.Writer
	tmp          string
	dbURL        string
	dataKey      string
	sealer       *seal.Sealer
	serviceFlags []string
	rows         []row
	runID        string
	e2eMax       float64 // the end-to-end rate measured, for the sustained run
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("claimload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.full, "full", false, "full mode (minutes; 100,000-claim backlog) instead of the quick one (under a minute)")
	fs.StringVar(&o.claimsvc, "claimsvc", "bin/claimsvc", "the claimsvc binary to run (go build -o bin/claimsvc ./cmd/claimsvc)")
	fs.StringVar(&o.adminURL, "database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"a PostgreSQL maintenance database on 127.0.0.1; a fresh database is created beside it and dropped afterwards")
	fs.StringVar(&o.mqttAddr, "mqtt-addr", "127.0.0.1:1883", "the local MQTT broker (Mosquitto)")
	fs.BoolVar(&o.keepDB, "keep-db", false, "keep the benchmark database afterwards")
	fs.StringVar(&o.only, "only", "", "run only these parts, comma-separated: intake, batch, e2e, sustained (with e2e; full mode runs it anyway), stall, backlog")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU profiles of claimsvc (intake at 32 clients, end to end, backlog) into this directory")
	fs.StringVar(&o.svcFlags, "claimsvc-flags", "", "extra flags for every claimsvc started, space-separated (experiments; the report says so)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := localOnly(o); err != nil {
		return err
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
	}
	if _, err := os.Stat(o.claimsvc); err != nil {
		return fmt.Errorf("--claimsvc %s: %w (build it: go build -o bin/claimsvc ./cmd/claimsvc)", o.claimsvc, err)
	}
	b := &bench{opts: o, plan: plans[o.full], out: stdout, log: stderr}
	return b.main(ctx)
}

// localOnly refuses anything but 127.0.0.1: the benchmark floods what it
// talks to.
func localOnly(o options) error {
	u, err := url.Parse(o.adminURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
		return fmt.Errorf("--database-url: the benchmark runs against 127.0.0.1 only, not %q", h)
	}
	if h, _ := splitHostPort(o.mqttAddr); h != "127.0.0.1" {
		return fmt.Errorf("--mqtt-addr: the benchmark runs against 127.0.0.1 only, not %q", h)
	}
	return nil
}

func splitHostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "1883"
	}
	return h, p
}

func (b *bench) part(name string) bool {
	if b.opts.only == "" {
		return true
	}
	for _, p := range strings.Split(b.opts.only, ",") {
		if strings.TrimSpace(p) == name {
			return true
		}
	}
	return false
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "claimload: "+format+"\n", args...)
}

func (b *bench) main(ctx context.Context) error {
	start := time.Now()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	b.runID = hex.EncodeToString(rnd[:])
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b.dataKey = base64.StdEncoding.EncodeToString(key)
	var err error
	if b.sealer, err = seal.New([][]byte{key}); err != nil {
		return err
	}
	// All load comes from one IP and touches each device once: the rate
	// limits would only measure themselves.
	b.serviceFlags = append([]string{"--rate-limit-ip=off", "--rate-limit-token=off"}, strings.Fields(b.opts.svcFlags)...)
	if b.tmp, err = os.MkdirTemp("", "claimload-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	env, err := b.environment(ctx)
	if err != nil {
		return err
	}
	if err := b.createDB(ctx); err != nil {
		return err
	}
	if !b.opts.keepDB {
		defer b.dropDB()
	}

	var runErr error
	steps := []struct {
		name string
		f    func(context.Context) error
	}{{"intake", b.runIntake}, {"e2e", b.runE2E}, {"sustained", func(ctx context.Context) error {
		explicit := b.opts.only != "" && b.part("sustained")
		if !b.opts.full && !explicit || b.e2eMax == 0 {
			return nil // full mode (or asked for), after the end-to-end run
		}
		return b.runSustained(ctx, b.e2eMax)
	}}, {"stall", b.runStall}, {"backlog", b.runBacklog}}
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if s.name == "intake" && !b.part("intake") && !b.part("batch") ||
			s.name != "intake" && s.name != "sustained" && !b.part(s.name) {
			continue
		}
		if err := s.f(ctx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("%s: %w", s.name, err))
			b.progress("%s failed: %v", s.name, err)
		}
	}

	fmt.Fprintf(b.out, "\nclaimload %s mode, %s\n%s\n", b.plan.name, time.Now().UTC().Format(time.RFC3339), env)
	fmt.Fprint(b.out, table(b.rows))
	fmt.Fprintf(b.out, "\n%s\nwall time %s\n", b.notes(), time.Since(start).Round(time.Second))
	return runErr
}

// environment describes the machine, and checks that PostgreSQL and the
// broker answer.
func (b *bench) environment(ctx context.Context) (string, error) {
	model := "unknown CPU"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load := "?"
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(l))[:3], " ")
	}
	conn, err := pgx.Connect(ctx, b.opts.adminURL)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL at %s: %w", redact(b.opts.adminURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pgVersion, syncCommit string
	if err := conn.QueryRow(ctx, `SELECT split_part(version(), ' on ', 1), current_setting('synchronous_commit')`).Scan(&pgVersion, &syncCommit); err != nil {
		return "", err
	}
	c, err := net.DialTimeout("tcp", b.opts.mqttAddr, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("MQTT broker at %s: %w (start Mosquitto)", b.opts.mqttAddr, err)
	}
	c.Close()
	return fmt.Sprintf("machine: %d cores (%s), Go %s, load average at start %s (the machine may be shared)\n"+
		"PostgreSQL: %s at %s (synchronous_commit=%s); broker: %s; claimsvc: %s (separate process)",
		runtime.NumCPU(), model, runtime.Version(), load, pgVersion, redact(b.opts.adminURL), syncCommit,
		b.opts.mqttAddr, b.opts.claimsvc+" "+strings.Join(b.serviceFlags, " ")), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (b *bench) createDB(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.opts.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := "claimsvc_bench_" + b.runID
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(b.opts.adminURL)
	u.Path = "/" + name
	b.dbURL = u.String()
	b.progress("database %s", name)
	cmd := exec.CommandContext(ctx, b.opts.claimsvc, "migrate", "--log-format=text")
	cmd.Env = b.serviceEnv() // the database URL is a secret: never in argv
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("claimsvc migrate: %w\n%s", err, out)
	}
	return nil
}

// benchAPIKey is the key the load sends: the benchmark is a factory tool.
const benchAPIKey = "claimload-factory-key"

// serviceEnv is the environment of every claimsvc the benchmark runs: its
// secrets (the database URL, the data key) and the digest of its API key.
// Every other setting is a flag.
func (b *bench) serviceEnv() []string {
	sum := sha256.Sum256([]byte(benchAPIKey))
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"CLAIMSVC_DATABASE_URL=" + b.dbURL, "CLAIMSVC_DATA_KEY=" + b.dataKey, "CLAIMSVC_API_KEYS=" + hex.EncodeToString(sum[:])}
}

func (b *bench) dropDB() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.opts.adminURL)
	if err != nil {
		b.progress("cannot drop the benchmark database: %v", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS claimsvc_bench_"+b.runID+" WITH (FORCE)"); err != nil {
		b.progress("cannot drop the benchmark database: %v", err)
	}
}

// reset empties the tables between runs, so each starts alike (CASCADE:
// the tables that reference claims, such as idempotency_keys, too).
func (b *bench) reset(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `TRUNCATE claims, claim_events, bench_baseline CASCADE; CHECKPOINT`)
	return err
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

// runIntake measures single and batch intake against an idle dispatcher.
func (b *bench) runIntake(ctx context.Context) error {
	hole, err := newBlackhole()
	if err != nil {
		return err
	}
	defer hole.close()
	// Its workers wait on the silent broker until shutdown: a short grace
	// period, so that stopping it does not cost the run seconds.
	svc, err := b.startService(ctx, "intake", hole.url(), "--mqtt-connect-timeout=10m", "--shutdown-timeout=1s")
	if err != nil {
		return err
	}
	defer svc.stop()
	if err := b.createBaselineTable(ctx); err != nil {
		return err
	}
	single := map[int]measured{}
	if b.part("intake") {
		for _, c := range b.plan.levels {
			if err := b.reset(ctx); err != nil {
				return err
			}
			base, baseCPU, err := b.intakeBaseline(ctx, c, fmt.Sprintf("P%s%02x", b.runID[:4], c%256), true)
			if err != nil {
				return err
			}
			if err := b.reset(ctx); err != nil {
				return err
			}
			var base3 measured // BEGIN; INSERT; COMMIT: the second baseline, at 32 clients
			if c == 32 {
				if base3, _, err = b.intakeBaseline(ctx, c, fmt.Sprintf("Q%s%02x", b.runID[:4], c%256), false); err != nil {
					return err
				}
				if err := b.reset(ctx); err != nil {
					return err
				}
			}
			wait := func() {}
			if c == 32 {
				wait = b.profile(svc, "intake32", b.plan.intakeFor)
			}
			ours, oursCPU := cpuMeter(b, svc.pid(), func() measured {
				return b.intakeClaimsvc(ctx, svc, c, fmt.Sprintf("H%s%02x", b.runID[:4], c%256))
			})
			wait()
			single[c] = ours
			b.progress("intake %3d clients: claimsvc %6.0f/s p50 %.2f p99 %.2f ms (%d errors); pgx INSERT %6.0f/s p50 %.2f p99 %.2f ms (%d errors)",
				c, ours.rate(), ours.pct(.5), ours.pct(.99), ours.errs, base.rate(), base.pct(.5), base.pct(.99), base.errs)
			b.progress("intake %3d clients: claimsvc %s; pgx INSERT %s", c, oursCPU.describe(ours.n), baseCPU.describe(base.n))
			var target float64
			note := ""
			if c == 32 {
				target = 1.0
			}
			if c > baselineMaxConns {
				note = fmt.Sprintf("baseline on %d connections", baselineMaxConns)
			}
			b.add(row{figure: fmt.Sprintf("intake, %d clients", c), unit: "claims/s", ours: ours.rate(), base: base.rate(), higherBetter: true, target: target, note: errNote(note, ours, base)})
			p99 := row{figure: fmt.Sprintf("intake, %d clients", c), unit: "p50 ms", ours: ours.pct(.5), base: base.pct(.5)}
			b.add(p99)
			p99.unit, p99.ours, p99.base = "p99 ms", ours.pct(.99), base.pct(.99)
			if c == 32 {
				ok := ours.pct(.99) <= 10
				p99.absolute, p99.absOK = "≤ 10 ms", &ok
			}
			b.add(p99)
			if c == 32 {
				b.addCPU(fmt.Sprintf("intake, %d clients", c), oursCPU, ours.n, baseCPU, base.n)
				b.progress("intake  32 clients: pgx BEGIN; INSERT; COMMIT %6.0f/s p99 %.2f ms", base3.rate(), base3.pct(.99))
				b.add(row{figure: "intake, 32 clients, against BEGIN; INSERT; COMMIT", unit: "claims/s", ours: ours.rate(), base: base3.rate(),
					higherBetter: true, note: errNote("three round trips per claim", ours, base3)})
				if w, err := b.intakeWrk(ctx, svc, c, fmt.Sprintf("W%s", b.runID[:6])); err != nil {
					b.progress("wrk: %v", err)
				} else if w != nil {
					b.progress("intake  32 clients, wrk: %6.0f/s p99 %.2f ms", w.rate, w.p99)
					ok := w.p99 <= 10
					b.add(row{figure: "intake, 32 connections, wrk as the client", unit: "claims/s", ours: w.rate, base: base.rate(),
						higherBetter: true, target: 1.0, note: fmt.Sprintf("p99 %.2f ms; baseline: the same single INSERT", w.p99)})
					b.add(row{figure: "intake, 32 connections, wrk as the client", unit: "p99 ms", ours: w.p99, absolute: "≤ 10 ms", absOK: &ok})
				}
			}
		}
	}
	if b.part("batch") {
		for _, c := range []int{1, 8} {
			s, ok := single[c]
			if !ok { // batch alone: measure single intake at this level too
				if err := b.reset(ctx); err != nil {
					return err
				}
				s = b.intakeClaimsvc(ctx, svc, c, fmt.Sprintf("S%s%02x", b.runID[:4], c))
			}
			if err := b.reset(ctx); err != nil {
				return err
			}
			ours := b.batchClaimsvc(ctx, svc, c, fmt.Sprintf("B%s%02x", b.runID[:4], c))
			b.progress("batch  %3d clients: %6.0f claims/s (%d-claim requests, p50 %.1f ms, %d errors); single %6.0f/s",
				c, ours.rate(), b.plan.batchSize, ours.pct(.5), ours.errs, s.rate())
			b.add(row{figure: fmt.Sprintf("batch intake, %d clients", c), unit: "claims/s", ours: ours.rate(), base: s.rate(),
				higherBetter: true, target: 5, note: errNote(fmt.Sprintf("%d per request; baseline: single-request intake", b.plan.batchSize), ours, measured{})})
		}
	}
	return nil
}

func errNote(note string, ours, base measured) string {
	if ours.errs+base.errs > 0 {
		if note != "" {
			note += "; "
		}
		note += fmt.Sprintf("%d/%d failed requests", ours.errs, base.errs)
	}
	return note
}

func (b *bench) createBaselineTable(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_baseline (LIKE claims INCLUDING ALL)`)
	return err
}

// prepareDelivery empties the tables and subscribes a watcher that counts
// deliveries on the broker, for the parts that measure delivery.
func (b *bench) prepareDelivery(ctx context.Context) (*watcher, error) {
	if err := b.createBaselineTable(ctx); err != nil {
		return nil, err
	}
	if err := b.reset(ctx); err != nil {
		return nil, err
	}
	return newWatcher("tcp://" + b.opts.mqttAddr)
}

// runE2E measures end-to-end delivery and its two baselines.
func (b *bench) runE2E(ctx context.Context) error {
	w, err := b.prepareDelivery(ctx)
	if err != nil {
		return err
	}
	defer w.close()
	c, n := b.plan.e2eClients, b.plan.e2eClaims

	paho, pahoCPU := cpuMeter(b, 0, func() measured { return b.e2ePaho(ctx, c, n, "R"+b.runID+"-") })
	b.progress("e2e raw paho, %d at a time: %d claims in %s = %.0f/s (%d errors); %s", c, paho.n, paho.elapsed.Round(time.Millisecond),
		paho.rate(), paho.errs, pahoCPU.describe(paho.n))

	svc, err := b.startService(ctx, "e2e", "tcp://"+b.opts.mqttAddr)
	if err != nil {
		return err
	}
	wait := b.profile(svc, "e2e", b.plan.intakeFor)
	before := b.readCPU(svc.pid())
	ours, err := b.e2eClaimsvc(ctx, svc, &w.tally, c, n, "E"+b.runID+"-")
	oursCPU := b.readCPU(svc.pid()).since(before)
	wait()
	svc.stop()
	if err != nil {
		return err
	}
	b.progress("e2e claimsvc, %d clients, %d workers: %d claims in %s = %.0f/s; %s", c, 32, ours.n, ours.elapsed.Round(time.Millisecond),
		ours.rate(), oursCPU.describe(ours.n))
	b.e2eMax = ours.rate()

	mosq, err := b.e2eMosquittoPub(ctx, b.plan.mosqClaims, "M"+b.runID+"-")
	if err != nil {
		return err
	}
	b.progress("e2e mosquitto_pub, 8 at a time: %d claims in %s = %.0f/s (%d errors)", mosq.n, mosq.elapsed.Round(time.Millisecond), mosq.rate(), mosq.errs)

	b.add(row{figure: fmt.Sprintf("end to end, %d clients", c), unit: "claims/s", ours: ours.rate(), base: paho.rate(), higherBetter: true, target: 0.5,
		note: errNote(fmt.Sprintf("%d claims; baseline: raw paho loop, %d at a time", n, c), ours, paho)})
	b.add(row{figure: fmt.Sprintf("end to end, %d clients", c), unit: "claims/s", ours: ours.rate(), base: mosq.rate(), higherBetter: true, target: 5,
		note: errNote(fmt.Sprintf("baseline: mosquitto_pub per claim, 8 at a time, %d claims", b.plan.mosqClaims), measured{}, mosq)})
	b.addCPU(fmt.Sprintf("end to end, %d clients (baseline: raw paho loop)", c), oursCPU, ours.n, pahoCPU, paho.n)

	viaHTTP, httpCPU, err := b.e2eHTTP(ctx, c, n, "H"+b.runID+"-")
	if err != nil {
		return err
	}
	b.progress("e2e claimsvc, delivery http, %d clients: %d claims in %s = %.0f/s; %s (the emulator is in the load generator)",
		c, viaHTTP.n, viaHTTP.elapsed.Round(time.Millisecond), viaHTTP.rate(), httpCPU.describe(viaHTTP.n))
	b.add(row{figure: fmt.Sprintf("end to end, delivery http, %d clients", c), unit: "claims/s", ours: viaHTTP.rate(), base: paho.rate(),
		higherBetter: true, target: 2, note: errNote(fmt.Sprintf("%d claims to the emulator's HTTP device API; baseline: the raw paho loop above", n), viaHTTP, measured{})})
	b.addCPU(fmt.Sprintf("end to end, delivery http, %d clients (the emulator counts as load generator; baseline: raw paho loop)", c), httpCPU, viaHTTP.n, pahoCPU, paho.n)
	return nil
}

// e2eHTTP measures the http delivery end to end: claimsvc posting each claim
// to ThingsBoard's HTTP device API, here the emulator's (in this process, on
// 127.0.0.1), which knows every device of the run.
func (b *bench) e2eHTTP(ctx context.Context, clients, n int, prefix string) (measured, cpuCost, error) {
	if err := b.reset(ctx); err != nil {
		return measured{}, cpuCost{}, err
	}
	var t tally
	cfg := tbemu.DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.OnClaim = func(ev tbemu.ClaimEvent) { t.see(ev.SecretKey) }
	emu, err := tbemu.Start(ctx, cfg)
	if err != nil {
		return measured{}, cpuCost{}, err
	}
	defer emu.Close()
	for i := 1; i <= n; i++ {
		if _, err := emu.AddDevice(fmt.Sprintf("%sdevice-%d", prefix, i), token(prefix, int64(i))); err != nil {
			return measured{}, cpuCost{}, err
		}
	}
	svc, err := b.startService(ctx, "e2e-http", "tcp://"+b.opts.mqttAddr, "--delivery=http", "--tb-url="+emu.HTTPURL())
	if err != nil {
		return measured{}, cpuCost{}, err
	}
	defer svc.stop()
	before := b.readCPU(svc.pid())
	m, err := b.e2eClaimsvc(ctx, svc, &t, clients, n, prefix)
	return m, b.readCPU(svc.pid()).since(before), err
}

// runBacklog measures claimsvc draining a backlog of pending claims.
func (b *bench) runBacklog(ctx context.Context) error {
	w, err := b.prepareDelivery(ctx)
	if err != nil {
		return err
	}
	defer w.close()
	n := b.plan.backlog
	prefix := "K" + b.runID + "-"
	t0 := time.Now()
	if err := b.prefill(ctx, n, prefix); err != nil {
		return err
	}
	b.progress("backlog: %d pending claims stored in %s", n, time.Since(t0).Round(time.Millisecond))
	res, err := b.drainBacklog(ctx, w, n, prefix)
	if err != nil {
		return err
	}
	b.progress("backlog: drained %d in %s (%.0f/s); peak RSS %.1f MB; goroutines peak %.0f, idle %.0f",
		n, res.drain.Round(time.Millisecond), float64(n)/res.drain.Seconds(), res.peakRSS, res.peakRoutines, res.idleRoutines)
	note := fmt.Sprintf("%d pending", n)
	if n < 100_000 {
		note += "; quick mode: fewer than the target's 100,000"
	}
	memOK := res.peakRSS <= 100
	b.add(row{figure: "backlog, peak resident memory", unit: "MB", ours: res.peakRSS, absolute: "≤ 100 MB", absOK: &memOK, note: note})
	gOK := res.peakRoutines <= goroutineBound
	b.add(row{figure: "backlog, peak goroutines", unit: "goroutines", ours: res.peakRoutines, absolute: fmt.Sprintf("≤ %d (by config)", goroutineBound), absOK: &gOK,
		note: fmt.Sprintf("idle after draining: %.0f", res.idleRoutines)})
	b.add(row{figure: "backlog, time to drain", unit: "s", ours: res.drain.Seconds(), note: fmt.Sprintf("%.0f claims/s, from process start", float64(n)/res.drain.Seconds())})
	return nil
}

// goroutineBound is what the default configuration allows: 32 workers, each
// with its paho client's goroutines (about 8 while connected), 4 intake
// committers, the pool, the HTTP server and the runtime's own.
const goroutineBound = 32*10 + 100

func (b *bench) notes() string {
	return strings.Join([]string{
		"Notes:",
		"- intake: claimsvc answers POST /devices/{token}/claim (new device each) → 202 after commit; its dispatcher is idle (the broker URL is a",
		"  local port that never answers). Baseline: a plain pgx loop of single-statement INSERTs in autocommit (one round trip, one durable",
		"  commit each: the same row, into a copy of the claims table with the same indexes), one connection per client (at most 64); at 32",
		"  clients also BEGIN; INSERT; COMMIT (three round trips), and claimsvc driven by wrk (when installed) instead of this program's client.",
		"  Tables are emptied before every run.",
		"- batch: POST /claims:batch with 1,000 new devices per request, against single-request intake at the same client count.",
		"- end to end: first request until the broker has delivered every claim to a subscriber (claimsvc publishes QoS 1: PUBACK came first);",
		"  claimsvc runs its default 32 workers. Baselines: connect/publish QoS 1/PUBACK/disconnect per claim with paho at the same",
		"  concurrency, and one mosquitto_pub process per claim, eight at a time.",
		"- end to end, delivery http: the same with claimsvc posting each claim to the emulator's HTTP device API (the emulator runs in this",
		"  process), against the raw paho loop.",
		"- sustained (full mode): new claims at half the end-to-end maximum, sent on schedule (open loop, 64 clients) for 60 s while the",
		"  dispatcher delivers; the backlog gauge is sampled every second.",
		"- CPU per claim: user+system time from /proc over the run, per claim: claimsvc's process, PostgreSQL (the backends of the run's",
		"  database and the shared WAL writer, checkpointer, background writer and autovacuum), Mosquitto, and this process (the load",
		"  generator; the pgx baseline's client; the emulator for http); and how busy the whole machine was. A figure is bounded by CPU",
		"  when the machine is near 100% busy, by waiting when it is not.",
		"- stall: claimsvc is stopped (SIGSTOP) once a tenth of its claims are delivered and resumed (SIGCONT) seconds later; the broker",
		"  stays up. Failed attempts are read from the claims' events.",
		"- backlog: claims stored before claimsvc starts; RSS is VmHWM of the process, goroutines the go_goroutines metric sampled every 250 ms.",
		"- the load generator, claimsvc, PostgreSQL and Mosquitto share this machine's cores; rate limits are off for the run.",
	}, "\n")
}
