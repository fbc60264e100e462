// Package scripts tests the set-up scripts the way a newcomer meets them: on a
// machine where nothing listens on 127.0.0.1. Each test makes a fresh network
// namespace (ip netns add), whose loopback has no PostgreSQL and no Mosquitto,
// and runs the README's commands inside it.
//
// Creating a namespace needs root (CAP_SYS_ADMIN) and Linux; elsewhere the
// tests skip and say so. CI runs as root, so there they run.
package scripts

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/syncbuf"
)

// netns is a network namespace of its own with only loopback, up.
type netns struct{ name string }

func newNetns(t *testing.T) netns {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux network namespaces (ip netns): this test runs the set-up where nothing listens on 127.0.0.1")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (Debian: iproute2, installed by scripts/deps.sh) to make a network namespace")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := netns{name: "claimsvc-bare-" + hex.EncodeToString(b[:])}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (ip netns add needs root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	if out, err := exec.Command("ip", "netns", "exec", ns.name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns.name, err, out)
	}
	// The point of the namespace: nothing answers where the README's
	// commands look first.
	for _, port := range []string{"5432", "1883", "8080"} {
		if ns.run(t, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port) == nil {
			t.Fatalf("something answers on 127.0.0.1:%s in a fresh namespace", port)
		}
	}
	return ns
}

// command is name args run inside the namespace, from the repository root,
// with the test's own state directory.
func (ns netns) command(ctx context.Context, state string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
	cmd.Dir = ".."
	env := []string{"CLAIMSVC_STATE_DIR=" + state, "GOPROXY=off"} // no network in there: modules come from the cache
	for _, kv := range os.Environ() {
		// The settings of the caller's own servers do not apply in here.
		if !strings.HasPrefix(kv, "CLAIMSVC_") && !strings.HasPrefix(kv, "GOPROXY=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
}

func (ns netns) run(t *testing.T, name string, args ...string) error {
	t.Helper()
	return ns.command(context.Background(), t.TempDir(), name, args...).Run()
}

// stateDir is a fresh CLAIMSVC_STATE_DIR that the unprivileged user the
// servers run as (postgres) can reach: t.TempDir's directories are 0700.
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "claimsvc-state-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestDemoOnBareMachine runs `make demo` where nothing listens on 127.0.0.1,
// as on a fresh laptop, then the README's walk-through against it, step by
// step, checking every answer the README promises. Then it stops the demo
// with Ctrl-C (SIGINT to the process group, as a terminal does) and checks
// that the private PostgreSQL went with it.
func TestDemoOnBareMachine(t *testing.T) {
	steps := readWalkthrough(t, "../README.md")
	ns := newNetns(t)
	for _, tool := range []string{"make", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s on PATH", tool)
		}
	}
	state := stateDir(t)

	var out syncbuf.Buffer
	demo := ns.command(context.Background(), state, "make", "--no-print-directory", "demo")
	demo.Stdout, demo.Stderr = &out, &out
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-demo.Process.Pid, syscall.SIGINT)
		select {
		case err := <-exited: // make's status after Ctrl-C is not the point
			t.Logf("make demo stopped: %v", err)
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
			err := <-exited
			t.Errorf("make demo did not stop within 60 s of SIGINT (killed: %v)", err)
		}
		// make returns when its recipe does; wait for the group to be gone.
		for deadline := time.Now().Add(30 * time.Second); syscall.Kill(-demo.Process.Pid, 0) == nil; {
			if time.Now().After(deadline) {
				_ = syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
				t.Errorf("processes of make demo still ran 30 s after it exited")
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("make demo said:\n%s", out.String())
		}
	})

	sh := startShell(t, ns, state)
	// go run builds claimsvc first: minutes on a cold build cache.
	ready := false
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); {
		if r := sh.run(t, "command curl -sf --max-time 2 localhost:8080/readyz", 10*time.Second); r.rc == 0 {
			ready = true
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("make demo exited before it was ready: %v\n%s", err, out.String())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !ready {
		t.Fatalf("claimsvc did not answer /readyz within 5 minutes\n%s", out.String())
	}
	if !strings.Contains(out.String(), "private PostgreSQL") {
		t.Errorf("make demo did not say it started a private PostgreSQL:\n%s", out.String())
	}

	vars := map[string]string{}
	for i, st := range steps {
		cmd, err := st.substitute(vars)
		if err != nil {
			t.Fatalf("README walk-through step %d (line %d): %v", i+1, st.line, err)
		}
		r := sh.run(t, cmd, 90*time.Second)
		t.Logf("step %d (README line %d): %s\n  → HTTP %v, %s", i+1, st.line, firstLine(cmd), r.codes, clip(r.stdout, 300))
		if err := st.check(r, vars); err != nil {
			t.Fatalf("README walk-through step %d (line %d) %q: %v\nstdout: %s\nstderr: %s", i+1, st.line, firstLine(cmd), err, r.stdout, r.stderr)
		}
		collect(vars, r.stdout)
	}

	stop()
	if !strings.Contains(out.String(), "stopped the private PostgreSQL") {
		t.Errorf("after Ctrl-C, make demo did not stop its private PostgreSQL:\n%s", out.String())
	}
	pids, _ := filepath.Glob(filepath.Join(state, "postgres", "data", "postmaster.pid"))
	if len(pids) > 0 {
		t.Errorf("%s still exists: the private PostgreSQL runs on", pids[0])
	}
}

// TestTestServicesOnBareMachine runs the wrapper make test uses where nothing
// listens: it must give the command a PostgreSQL (CLAIMSVC_TEST_DATABASE_URL)
// and a Mosquitto on 127.0.0.1:1883, pass the command's exit code on, and
// leave nothing running.
func TestTestServicesOnBareMachine(t *testing.T) {
	ns := newNetns(t)
	for _, tool := range []string{"psql", "mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/deps.sh installs it)", tool)
		}
	}
	state := stateDir(t)
	check := `set -e
psql "$CLAIMSVC_TEST_DATABASE_URL" -Atqc 'CREATE DATABASE bare_check' 
psql "${CLAIMSVC_TEST_DATABASE_URL%/postgres*}/bare_check?sslmode=disable" -Atqc 'SELECT 40 + 2'
mosquitto_sub -h 127.0.0.1 -p 1883 -t bare/check -C 1 -W 10 & sub=$!
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p 1883 -t bare/check -m delivered -q 1
wait $sub
exit 7`
	cmd := ns.command(context.Background(), state, "scripts/services.sh", "--postgres", "CLAIMSVC_TEST_DATABASE_URL", "--mosquitto", "--", "bash", "-c", check)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("want the command's exit code 7, got %v:\n%s", err, out)
	}
	for _, want := range []string{"42\n", "delivered\n", "private PostgreSQL", "private Mosquitto on 127.0.0.1:1883", "stopped the private Mosquitto", "stopped the private PostgreSQL"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "postgres", "data", "postmaster.pid")); err == nil {
		t.Error("postmaster.pid remains: the private PostgreSQL was not stopped")
	}
	// The data directory stays for the next run, which starts faster.
	if _, err := os.Stat(filepath.Join(state, "postgres", "data", "PG_VERSION")); err != nil {
		t.Errorf("the private PostgreSQL's data directory is gone: %v", err)
	}
}

// TestNoPostgresBinaries: without the server binaries, one line says how to
// get them; outside CI the command still runs (its tests skip), under CI it
// is an error.
func TestNoPostgresBinaries(t *testing.T) {
	ns := newNetns(t)
	for _, ci := range []string{"", "true"} {
		cmd := ns.command(context.Background(), stateDir(t), "scripts/services.sh", "--postgres", "CLAIMSVC_DATABASE_URL", "--", "echo", "ran")
		cmd.Env = append(cmd.Env, "CLAIMSVC_PG_BINDIR=/nonexistent", "CI="+ci)
		out, err := cmd.CombinedOutput()
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(l, "services: ") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "scripts/deps.sh") || !strings.Contains(lines[0], "docker compose up") {
			t.Errorf("CI=%q: want one line naming scripts/deps.sh and docker compose up, got:\n%s", ci, out)
		}
		ran := strings.Contains(string(out), "ran\n")
		if ci == "" && (err != nil || !ran) {
			t.Errorf("outside CI the command should still run: %v\n%s", err, out)
		}
		if ci == "true" && (err == nil || ran) {
			t.Errorf("under CI=true a missing PostgreSQL must fail before the command: %v\n%s", err, out)
		}
	}
}

// shell is one bash inside the namespace; steps run in it one after the
// other, so that variables (JWT=…) carry over as in a terminal.
type shell struct {
	stdin io.WriteCloser
	lines *bufio.Reader
	dir   string
	cmd   *exec.Cmd
}

type result struct {
	stdout, stderr string
	rc             int
	codes          []string // HTTP status of each curl, in order
}

func startShell(t *testing.T, ns netns, state string) *shell {
	t.Helper()
	cmd := ns.command(context.Background(), state, "bash", "--noprofile", "--norc")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := &shell{stdin: stdin, lines: bufio.NewReader(stdout), dir: t.TempDir(), cmd: cmd}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// Every curl reports its status on stderr, where the step's output is
	// not, and gives up after a minute.
	fmt.Fprintln(stdin, `set -o pipefail; curl() { command curl --max-time 60 -w '%{stderr}\n@@http %{http_code}\n' "$@"; }`)
	return sh
}

// run runs one step and waits for it at most timeout.
func (sh *shell) run(t *testing.T, step string, timeout time.Duration) result {
	t.Helper()
	out, errf := filepath.Join(sh.dir, "out"), filepath.Join(sh.dir, "err")
	fmt.Fprintf(sh.stdin, "{\n%s\n} >%s 2>%s </dev/null; echo \"@@done $?\"\n", step, out, errf)
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() { s, err := sh.lines.ReadString('\n'); got <- line{s, err} }()
	var l line
	select {
	case l = <-got:
	case <-time.After(timeout):
		_ = sh.cmd.Process.Kill()
		t.Fatalf("step did not finish within %s: %s", timeout, step)
	}
	if l.err != nil {
		t.Fatalf("the step's shell ended: %v", l.err)
	}
	var r result
	if _, err := fmt.Sscanf(l.s, "@@done %d", &r.rc); err != nil {
		t.Fatalf("unexpected line from the shell: %q", l.s)
	}
	o, _ := os.ReadFile(out)
	e, _ := os.ReadFile(errf)
	r.stdout = strings.TrimSpace(string(o))
	for _, ln := range strings.Split(string(e), "\n") {
		if code, ok := strings.CutPrefix(ln, "@@http "); ok {
			r.codes = append(r.codes, code)
		} else if strings.TrimSpace(ln) != "" {
			r.stderr += ln + "\n"
		}
	}
	return r
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
