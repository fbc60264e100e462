// Command claimsvc claims ThingsBoard devices on their behalf: it stores each
// claim durably in PostgreSQL and delivers it over MQTT as the device would.
// main only wires; run is what the tests drive.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/claimsvc/claimsvc/internal/cli"
	"github.com/claimsvc/claimsvc/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// The first signal starts a graceful shutdown; a second one ends the
	// process at once (the signals' default action is back).
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var exit *cli.ExitError
	if errors.As(err, &exit) { // a client command: its message is printed
		os.Exit(exit.Code)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "claimsvc:", err)
		os.Exit(1)
	}
}

const usage = `claimsvc claims ThingsBoard devices on their behalf.

Usage:
  claimsvc serve [flags]        run the HTTP API and the delivery dispatcher
  claimsvc migrate [flags]      apply database migrations and exit
  claimsvc rekey [flags]        seal every stored token and secret again with the first key of CLAIMSVC_DATA_KEYS
  claimsvc healthcheck [flags]  exit 0 when the local service's /readyz answers 200
  claimsvc version              print the version
  claimsvc COMMAND --help       help for one command

For factory tools (they call a claimsvc's HTTP API: --url or CLAIMSVC_URL,
the API key in CLAIMSVC_API_KEY):
%s

Settings of serve (each flag is also an environment variable; a flag wins;
secrets come only from the environment or a file, never from a flag):
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		var cmds strings.Builder
		for _, c := range cli.Commands {
			fmt.Fprintf(&cmds, "  claimsvc %-27s %s\n", c.Name+" "+c.Args, c.Summary)
		}
		fmt.Fprintf(stdout, usage, strings.TrimRight(cmds.String(), "\n"))
		config.PrintFlags(stdout)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		cfg, err := config.Parse(rest, getenv, stdout)
		if err != nil {
			return err
		}
		return stoppedWhileStarting(ctx, serve(ctx, cfg, stderr), stderr)
	case "migrate":
		cfg, err := config.ParseFor(config.Command{Name: "migrate", About: "Applies the database migrations (migrations/) " +
			"to CLAIMSVC_DATABASE_URL and exits. serve applies them too unless --migrate=false; run this first when " +
			"several replicas start together (the Helm chart's Job does). Of the settings below it uses the database's."},
			rest, getenv, stdout)
		if err != nil {
			return err
		}
		return migrate(ctx, cfg, stderr)
	case "rekey":
		cfg, err := config.ParseFor(config.Command{Name: "rekey", About: "Seals every stored token and secret again with " +
			"the first key of CLAIMSVC_DATA_KEYS (the new key first, the old ones after it), so that the old keys can be " +
			"retired; safe to run while serve runs, and again after an interruption (docs/security.md §5). Of the " +
			"settings below it uses the database's and the data keys."}, rest, getenv, stdout)
		if err != nil {
			return err
		}
		return rekey(ctx, cfg, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, rest, getenv, stdout)
	case "claim", "import", "labels", "status":
		return cli.Run(ctx, cmd, rest, cli.Env{Getenv: getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr,
			Terminal: isTerminal, Version: buildVersion()})
	case "version", "--version":
		fmt.Fprintln(stdout, "claimsvc", buildVersion())
		return nil
	default:
		return fmt.Errorf("unknown command %q (see claimsvc --help)", cmd)
	}
}

// isTerminal reports whether w is a terminal (progress bars, screen refreshes).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}

// healthcheck probes /readyz of the service on this host: the container
// healthcheck (distroless images have no curl).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("claimsvc healthcheck", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := getenv("CLAIMSVC_HTTP_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	url := fs.String("url", "", "readiness URL to probe (default: http://HOST:PORT/readyz from --http-addr; 127.0.0.1 when it names no host or all of them)")
	fs.StringVar(&addr, "http-addr", addr, "the service's listen address (env CLAIMSVC_HTTP_ADDR)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("--http-addr %q: %w", addr, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1" // listening everywhere: loopback is one of them
		}
		*url = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(out, "ready")
	return nil
}

// stoppedWhileStarting turns an error of serve that a signal caused during
// start-up (waiting for the database or the migration lock) into a clean
// stop: the database did not fail, the operator stopped the service.
func stoppedWhileStarting(ctx context.Context, err error, stderr io.Writer) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(stderr, "claimsvc: stopped by a signal while starting (%v)\n", err)
	return nil //nolint:nilerr // a stop asked for, not a failure
}
