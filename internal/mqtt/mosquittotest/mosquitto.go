// Package mosquittotest runs a real Mosquitto broker process for a test, on
// a free 127.0.0.1 port, optionally with a TLS listener, and lets the test
// stop and restart it on the same port (broker outages). The process is
// killed when the test ends.
package mosquittotest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's mosquitto package installs the broker.
const Binary = "/usr/sbin/mosquitto"

// Options configures a broker. With CertFile and KeyFile the listener speaks
// TLS only. With Persistence, sessions and queued messages survive a Stop
// (SIGTERM) and Restart, as with a production broker.
type Options struct {
	CertFile, KeyFile string
	Persistence       bool
}

// Broker is one Mosquitto process (or none, while stopped).
type Broker struct {
	tb   testing.TB
	addr string
	conf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	out    *bytes.Buffer
}

// Start runs Mosquitto and waits until it accepts connections. Without the
// binary the test is skipped, or fails under CI=true.
func Start(tb testing.TB, opts Options) *Broker {
	tb.Helper()
	if _, err := os.Stat(Binary); err != nil {
		msg := "mosquittotest: " + Binary + " is missing (apt-get install mosquitto)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	l, err := new(net.ListenConfig).Listen(tb.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := tb.TempDir()
	conf := fmt.Sprintf("user root\npersistence %t\npersistence_location %s/\nlog_dest stderr\nlog_type error\nlog_type warning\nlistener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n", opts.Persistence, dir, port)
	if opts.CertFile != "" {
		conf += fmt.Sprintf("certfile %s\nkeyfile %s\n", opts.CertFile, opts.KeyFile)
	}
	b := &Broker{tb: tb, addr: addr, conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Stop)
	b.Restart()
	return b
}

// Addr is 127.0.0.1:port.
func (b *Broker) Addr() string { return b.addr }

// Restart starts the process again (after Stop) on the same port and waits
// up to 10 s until it accepts connections.
func (b *Broker) Restart() {
	b.tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return
	}
	b.out = &bytes.Buffer{}
	cmd := exec.CommandContext(context.WithoutCancel(b.tb.Context()), Binary, "-c", b.conf) // stopped by Stop, not by the test's end
	cmd.Stdout, cmd.Stderr = b.out, b.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		b.tb.Fatalf("mosquittotest: start: %v", err)
	}
	b.cmd = cmd
	exited := make(chan struct{})
	b.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		if c, err := d.DialContext(b.tb.Context(), "tcp", b.addr); err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-exited:
			b.tb.Fatalf("mosquittotest: mosquitto exited: %s", b.out)
		default:
		}
		if time.Now().After(deadline) {
			b.tb.Fatalf("mosquittotest: no listener on %s after 10 s: %s", b.addr, b.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process (SIGKILL: an outage, not a shutdown) and waits for
// it to exit; the port is free afterwards. Safe to call when stopped.
func (b *Broker) Stop() { b.signal(syscall.SIGKILL) }

// Terminate stops the broker with SIGTERM: it saves its persistence file
// first. Safe to call when stopped.
func (b *Broker) Terminate() { b.signal(syscall.SIGTERM) }

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(sig)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
		b.tb.Errorf("mosquittotest: mosquitto did not exit 5 s after %s", sig)
	}
	b.cmd = nil
}
