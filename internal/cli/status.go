package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/client"
)

const statusAbout = `Prints how many claims are in each status and the backlog: pending claims,
those due for an attempt now, those whose last attempt failed, and how long the
oldest has waited. --watch prints it again every --interval until Ctrl-C.`

const statusFooter = `Exit status:
  0  printed
  1  claimsvc cannot be reached, or refused (401/403: the API key)

Example:
  CLAIMSVC_API_KEY=... claimsvc status --url https://claimsvc.example.com --watch`

func runStatus(ctx context.Context, args []string, env Env) error {
	f := newFlags(env, "status", "[flags]", statusAbout, statusFooter)
	srv := f.server()
	watch := f.Bool("watch", false, "print again every --interval until interrupted")
	every := f.Duration("interval", 2*time.Second, "with --watch: how often")
	asJSON := f.Bool("json", false, "print GET /stats as JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("status takes no arguments")
	}
	if *every < 100*time.Millisecond {
		return usageError("--interval must be at least 100ms")
	}
	c, err := srv.client(env)
	if err != nil {
		return err
	}
	clear := *watch && env.terminal(env.Stdout)
	for {
		st, err := c.Stats(ctx)
		switch {
		case err != nil && *watch && ctx.Err() != nil:
			return nil //nolint:nilerr // --watch ends with Ctrl-C: not an error
		case err != nil:
			return err
		}
		if clear {
			fmt.Fprint(env.Stdout, "\033[H\033[2J")
		}
		if *asJSON {
			if err := json.NewEncoder(env.Stdout).Encode(st); err != nil {
				return err
			}
		} else {
			printStats(env.Stdout, c.URL(), st)
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

func printStats(w io.Writer, url string, st client.Stats) {
	fmt.Fprintf(w, "claimsvc %s at %s\n", url, st.At.Local().Format("2006-01-02 15:04:05"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range claim.Statuses {
		note := ""
		if s == claim.StatusPending && st.Backlog.Pending > 0 {
			note = fmt.Sprintf("due now %d, last attempt failed %d, oldest waiting %s", st.Backlog.Due, st.Backlog.WithErrors,
				age(time.Duration(st.Backlog.OldestPendingAgeSeconds*float64(time.Second))))
		}
		fmt.Fprintf(tw, "  %s\t%d\t  %s\n", s, st.Counts[string(s)], note)
	}
	fmt.Fprintf(tw, "  total\t%d\t\n", st.Total)
	_ = tw.Flush()
}

// age prints a duration as a person reads it: 45s, 12m3s, 5h12m, 3d4h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}
