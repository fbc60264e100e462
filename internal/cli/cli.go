// Package cli is claimsvc's client side for factory tools: the `claim`,
// `import`, `labels` and `status` commands of the claimsvc binary. They speak
// the public HTTP API (internal/client) with an API key, and share CSV import
// and labels with the operator console (internal/factory). docs/design.md §12
// and README "For factory tools" describe them.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/claimsvc/claimsvc/internal/client"
)

// Env is what a command may use of its process.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Terminal reports whether w is a terminal (progress bars, screen
	// refreshes); nil: never.
	Terminal func(w io.Writer) bool
	// Version is sent in the User-Agent.
	Version string
}

func (e Env) terminal(w io.Writer) bool { return e.Terminal != nil && e.Terminal(w) }

// Exit codes shared by the commands (each command's --help lists its own).
const (
	ExitOK       = 0
	ExitFailure  = 1 // the request did not go through, or the input cannot be read
	ExitUsage    = 2
	ExitPending  = 3 // claim --wait: stored, still pending when the wait ended
	ExitRejected = 4 // claim: ThingsBoard does not know the token or the device, or it is already claimed
	ExitFailed   = 5 // claim: failed or cancelled
	ExitPartly   = 6 // import, labels: some rows were not accepted (the others were)
)

// ExitError carries a command's exit code; its message has been printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Commands lists the client commands with a line each, for claimsvc --help.
var Commands = []struct{ Name, Args, Summary string }{
	{"claim", "[flags] TOKEN", "claim one device through claimsvc and print the claim"},
	{"import", "[flags] devices.csv", "claim every device of a CSV in idempotent batches, with a results file"},
	{"labels", "[flags] devices.csv", "print a PDF sheet of labels: name, secret and a QR code per device"},
	{"status", "[flags]", "the claims by status and the backlog (--watch to follow)"},
}

// Run runs client command cmd with args. A nil error is exit status 0; an
// *ExitError carries another (its message is already printed); flag.ErrHelp
// follows --help.
func Run(ctx context.Context, cmd string, args []string, env Env) error {
	var err error
	switch cmd {
	case "claim":
		err = runClaim(ctx, args, env)
	case "import":
		err = runImport(ctx, args, env)
	case "labels":
		err = runLabels(args, env)
	case "status":
		err = runStatus(ctx, args, env)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return err
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "claimsvc %s: %v\n", cmd, ee.Err)
		}
		return err
	default:
		fmt.Fprintf(env.Stderr, "claimsvc %s: %v\n", cmd, err)
		return &ExitError{Code: ExitFailure}
	}
}

// usageError is a mistake in the command line (exit 2).
func usageError(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format+" (see --help)", a...)}
}

// flags is a command's flag set with the help text around it.
type flags struct {
	*flag.FlagSet
	env Env
}

func newFlags(env Env, name, synopsis, about, footer string) *flags {
	fs := flag.NewFlagSet("claimsvc "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stdout)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: claimsvc %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(about))
		fs.PrintDefaults()
		if footer != "" {
			fmt.Fprintf(env.Stdout, "\n%s\n", strings.TrimSpace(footer))
		}
	}
	return &flags{FlagSet: fs, env: env}
}

// parse reads flags anywhere among the arguments ("claim TOKEN --wait 5s"),
// and returns the others; "--" ends the flags.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &ExitError{Code: ExitUsage, Err: err}
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// server holds the flags that name the claimsvc to call.
type server struct {
	url, key string
}

func (f *flags) server() *server {
	s := &server{}
	def := f.env.Getenv("CLAIMSVC_URL")
	if def == "" {
		def = "http://localhost:8080"
	}
	f.StringVar(&s.url, "url", def, "the claimsvc to call (env CLAIMSVC_URL)")
	f.StringVar(&s.key, "api-key", "", "the API key (default: env CLAIMSVC_API_KEY, which keeps it out of the process list)")
	return s
}

func (s *server) client(env Env) (*client.Client, error) {
	key := s.key
	if key == "" {
		key = env.Getenv("CLAIMSVC_API_KEY")
	}
	c, err := client.New(s.url, client.Options{APIKey: key, UserAgent: "claimsvc-cli/" + env.Version})
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return c, nil
}

// open opens a named input file, or stdin for "-".
func open(env Env, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(env.Stdin), nil
	}
	return os.Open(name)
}
