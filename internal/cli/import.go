package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/claimsvc/claimsvc/internal/factory"
)

const importAbout = `Claims every device of a CSV through claimsvc's POST /claims:batch, in chunks.

The header row names the columns, in any order: token (required), deviceName,
secretKey, durationMs (ms, or 7d, 24h, ...) and delivery (mqtt, http, attribute);
other columns are ignored. A row that breaks a field rule is reported with its
line number and not sent; the others are.

Each row's Idempotency-Key is derived from its content, so running the same file
again (after a crash, a network cut, Ctrl-C) creates nothing twice: the rows
already stored are answered as replays. The results file (default: beside the
input, NAME.results.csv) has one line per row: row, deviceName, tokenHint,
claimId, result (created, replayed, refused, invalid, not sent), status, problem.

--generate-secrets gives every row without a secretKey a strong random one, and
writes all secrets to the results file (mode 0600) before anything is sent; a
second run reuses them, and ` + "`claimsvc labels`" + ` prints labels from that file.`

const importFooter = `Exit status:
  0  every row is stored (created now or by an earlier run)
  1  error: the file cannot be read, or claimsvc cannot be reached (the rows not
     sent are "not sent" in the results file: run the same command again)
  2  usage error
  6  some rows were not accepted (invalid, or refused by claimsvc): see the results

Examples:
  export CLAIMSVC_URL=https://claimsvc.example.com CLAIMSVC_API_KEY=...
  claimsvc import --generate-secrets devices.csv
  claimsvc labels devices.results.csv -o labels.pdf`

func runImport(ctx context.Context, args []string, env Env) error {
	f := newFlags(env, "import", "[flags] devices.csv", importAbout, importFooter)
	srv := f.server()
	results := f.String("results", "", "the results file (default: NAME.results.csv beside the input)")
	generate := f.Bool("generate-secrets", false, "give rows without a secretKey a strong random secret, kept in the results file")
	chunk := f.Int("chunk", factory.DefaultChunk, "rows per batch request (1 to 1000)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("give one CSV file")
	}
	if *chunk < 1 || *chunk > 1000 {
		return usageError("--chunk must be 1 to 1000")
	}
	in := pos[0]
	if *results == "" {
		if in == "-" {
			return usageError("reading standard input: name the results file with --results")
		}
		*results = strings.TrimSuffix(in, filepath.Ext(in)) + ".results.csv"
	}
	c, err := srv.client(env)
	if err != nil {
		return err
	}
	rd, err := open(env, in)
	if err != nil {
		return err
	}
	sh, err := factory.ReadCSV(rd, factory.ForImport)
	rd.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	for _, col := range sh.Ignored {
		fmt.Fprintf(env.Stderr, "note: ignoring the column %q (known: token, deviceName, secretKey, durationMs, delivery)\n", col)
	}
	if !sh.Has[factory.ColSecretKey] && !*generate {
		fmt.Fprintln(env.Stderr, "note: no secretKey column: the claims have ThingsBoard's default secret \"\" (see --generate-secrets)")
	}
	for _, p := range sh.Problems {
		fmt.Fprintf(env.Stderr, "line %d: %s (not sent)\n", p.Line, p.Problem)
	}
	prev, err := factory.PreviousSecrets(*results)
	if err != nil {
		return err
	}
	if len(prev) > 0 && !*generate {
		return usageError("%s holds the secrets an earlier run generated: run with --generate-secrets to send the same claims "+
			"again (it reuses them), or name another results file with --results", *results)
	}
	if *generate {
		reused, made, left := factory.FillSecrets(sh.Rows, prev)
		if reused > 0 {
			fmt.Fprintf(env.Stderr, "secrets: %d reused from %s (an earlier run), %d new\n", reused, *results, made)
		}
		if len(left) > 0 {
			// Stored claims whose rows are gone or changed: their secrets
			// are on no label yet, perhaps; the new file would drop them.
			kept := *results + ".before-" + time.Now().UTC().Format("20060102T150405Z")
			if err := copyFile(*results, kept); err != nil {
				return fmt.Errorf("cannot keep the earlier results file: %w", err)
			}
			fmt.Fprintf(env.Stderr, "note: %d claims stored by an earlier run are not rows of this run (removed, or their name or "+
				"token changed); their secrets are kept in %s\n", len(left), kept)
		}
		// The secrets exist only here until claimsvc has them: on disk first.
		outs := make([]factory.Outcome, len(sh.Rows))
		for i := range outs {
			outs[i].Result = factory.ResultNotSent
		}
		if err := factory.WriteResultsFile(*results, factory.Results(sh.Rows, outs, sh.Problems), true); err != nil {
			return fmt.Errorf("cannot write the results file before sending: %w", err)
		}
	}

	prog := newProgress(env, len(sh.Rows))
	start := time.Now()
	outs, runErr := factory.Import(ctx, factory.API{Client: c}, sh.Rows, *chunk, prog.update)
	prog.finish()
	if err := factory.WriteResultsFile(*results, factory.Results(sh.Rows, outs, sh.Problems), *generate); err != nil {
		return fmt.Errorf("cannot write the results file %s: %w", *results, err)
	}
	var n struct{ created, replayed, refused, invalid, notSent int }
	for i, o := range outs {
		switch o.Result {
		case factory.ResultCreated:
			n.created++
		case factory.ResultReplayed:
			n.replayed++
		case factory.ResultNotSent:
			n.notSent++
		default:
			if o.Result == factory.ResultInvalid {
				n.invalid++
			} else {
				n.refused++
			}
			fmt.Fprintf(env.Stderr, "line %d: %s: %s\n", sh.Rows[i].Line, o.Result, o.Problem)
		}
	}
	n.invalid += len(sh.Problems)
	fmt.Fprintf(env.Stdout, "%d rows in %s: %d created, %d already stored, %d refused, %d invalid, %d not sent (%s)\nresults: %s\n",
		len(sh.Rows)+len(sh.Problems), time.Since(start).Round(100*time.Millisecond), n.created, n.replayed, n.refused, n.invalid,
		n.notSent, c.URL(), *results)
	switch {
	case runErr != nil && errors.Is(runErr, context.Canceled):
		return &ExitError{Code: ExitFailure, Err: errors.New("stopped: run the same command again to send the rest (nothing is created twice)")}
	case runErr != nil:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%w; run the same command again to send the rest (nothing is created twice)", runErr)}
	case n.refused+n.invalid > 0:
		return &ExitError{Code: ExitPartly}
	}
	return nil
}

// progress shows an import's progress: a bar on a terminal, a line per
// chunk otherwise (logs, CI).
type progress struct {
	bar   *progressbar.ProgressBar
	lines io.Writer
	total int
}

func newProgress(env Env, total int) *progress {
	p := &progress{total: total}
	if env.terminal(env.Stderr) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(env.Stderr), progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(env.Stderr) }))
	} else {
		p.lines = env.Stderr
	}
	return p
}

func (p *progress) update(st factory.Progress, _ []factory.Row, _ []factory.Outcome) {
	if p.bar != nil {
		_ = p.bar.Set(st.Done)
		p.bar.Describe(fmt.Sprintf("importing (%d created, %d already stored, %d refused)", st.Created, st.Replayed, st.Refused))
		return
	}
	fmt.Fprintf(p.lines, "import: %d/%d rows sent (%d created, %d already stored, %d refused)\n",
		st.Done, st.Total, st.Created, st.Replayed, st.Refused)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Exit()
	}
}

// copyFile copies src to dst, readable by its owner only (it holds secrets).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
