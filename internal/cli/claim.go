package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/client"
	"github.com/claimsvc/claimsvc/internal/factory"
)

const claimAbout = `Asks claimsvc to claim the device whose ThingsBoard access token is TOKEN, and
prints the claim. TOKEN "-" reads it from the first line of standard input
(keeping it out of the process list and the shell history). The request's
Idempotency-Key is derived from its content, so running the same command again
answers with the same claim instead of a second one.`

const claimFooter = `Exit status:
  0  the claim is stored (without --wait), or delivered (with --wait; also when
     it has gone on to claimed, expired or superseded)
  1  error: the request did not go through (network, API key, refused by claimsvc:
     409 another claim is live, 422 a field rule, ...)
  2  usage error
  3  --wait ended while the claim is still pending (it is stored and will be sent)
  4  rejected: ThingsBoard does not know the token or the device, or it is claimed
  5  failed or cancelled

Examples:
  export CLAIMSVC_URL=https://claimsvc.example.com CLAIMSVC_API_KEY=...
  claimsvc claim --device-name "Sensor 0042" --generate-secret --delivery attribute --duration 7d --wait 10s A1B2C3D4E5F6G7H8I9J0
  claimsvc claim --secret-file secret.txt --json - < token.txt`

func runClaim(ctx context.Context, args []string, env Env) error {
	f := newFlags(env, "claim", "[flags] TOKEN", claimAbout, claimFooter)
	srv := f.server()
	secret := f.String("secret", "", "the secret the customer will type (default: none, ThingsBoard's \"\"); an argument shows in the process list and the shell history: prefer --secret-file")
	secretFile := f.String("secret-file", "", "read the secret from the first line of this file (\"-\": standard input, when TOKEN is not \"-\" too)")
	generate := f.Bool("generate-secret", false, "make a strong random secret (printed with the claim: put it on the label)")
	name := f.String("device-name", "", "the device's name in ThingsBoard (needed for --delivery attribute; lets claimsvc see the customer claim it)")
	delivery := f.String("delivery", "", "mqtt, http or attribute (default: claimsvc's CLAIMSVC_DELIVERY)")
	duration := f.String("duration", "", "how long ThingsBoard keeps the claim: 7d, 24h, 90m, or ms (default: claimsvc's, else 24h)")
	wait := f.Duration("wait", 0, "wait this long for delivery (e.g. 10s); the exit status then says delivered, rejected, failed or still pending")
	force := f.Bool("force", false, "send even though another claim of the device is live (ThingsBoard may ignore it: see docs/design.md §2.5)")
	asJSON := f.Bool("json", false, "print the claim as JSON (the API's claim view)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("give one TOKEN")
	}
	if n := btoi(*generate) + btoi(*secret != "") + btoi(*secretFile != ""); n > 1 {
		return usageError("--secret, --secret-file and --generate-secret exclude each other")
	}
	if *secretFile == "-" && pos[0] == "-" {
		return usageError("TOKEN and --secret-file cannot both be read from standard input")
	}
	if *secretFile != "" {
		line, err := firstLine(*secretFile, env.Stdin)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		if line == "" {
			return usageError("--secret-file: the first line is empty")
		}
		*secret = line
	}
	token := pos[0]
	if token == "-" {
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		token = strings.TrimSpace(line)
	}
	if !claim.ValidToken(token) {
		return usageError("the token must be 1-128 printable ASCII characters without spaces or '/'")
	}
	row := factory.Row{Token: token, DeviceName: *name, Delivery: *delivery}
	if *generate {
		*secret = factory.NewSecret()
		// Said before the request: if the answer is lost (Ctrl-C, a network
		// failure after the commit), the claim may be stored with it, and
		// only this line has it.
		fmt.Fprintf(env.Stderr, "generated secret: %s (to send this claim again, give it with --secret-file or --secret)\n", *secret)
	}
	if *secret != "" {
		row.SecretKey, row.HasSecret = *secret, true
	}
	if *duration != "" {
		ms, err := factory.ParseDurationMs(*duration)
		if err != nil {
			return usageError("--duration: %v", err)
		}
		row.DurationMs = &ms
	}
	c, err := srv.client(env)
	if err != nil {
		return err
	}
	req := client.ClaimRequest{DurationMs: row.DurationMs, Delivery: row.Delivery, DeviceName: row.DeviceName}
	if row.HasSecret {
		req.SecretKey = &row.SecretKey
	}
	wctx, cancel := context.WithTimeout(ctx, max(*wait, 0)+time.Minute)
	defer cancel()
	start := time.Now()
	created, err := c.Create(wctx, token, req, client.CreateOptions{IdempotencyKey: factory.IdempotencyKey(row), Wait: *wait, Force: *force})
	if err != nil {
		return err
	}
	cl := created.Claim
	if rest := *wait - time.Since(start); !cl.Final() && rest > 0 { // claimsvc holds a wait of 30 s at most
		pctx, cancel := context.WithTimeout(ctx, rest)
		cl, err = c.WaitFinal(pctx, cl, time.Second)
		cancel()
		if err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cl); err != nil {
			return err
		}
	} else {
		printClaim(env.Stdout, cl, created.Replayed, *secret, *generate)
	}
	return claimExit(cl, *wait > 0)
}

// claimExit maps a claim's status to the exit status (see claimFooter).
func claimExit(cl client.Claim, waited bool) error {
	switch cl.Status {
	case "pending":
		if waited {
			return &ExitError{Code: ExitPending}
		}
		return nil
	case "rejected":
		return &ExitError{Code: ExitRejected}
	case "failed", "cancelled":
		return &ExitError{Code: ExitFailed}
	}
	return nil
}

func printClaim(w io.Writer, cl client.Claim, replayed bool, secret string, generated bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	status := cl.Status
	if replayed {
		status += " (the same request was made before: this is its claim)"
	}
	row("claim", cl.ID)
	row("status", status)
	row("device", deref(cl.DeviceName))
	row("token", cl.TokenHint)
	row("delivery", cl.Delivery)
	switch {
	case generated:
		row("secret", secret+"   (generated: print it on the device's label)")
	case cl.HasSecret:
		row("secret", "yes")
	default:
		row("secret", "none (ThingsBoard's default \"\")")
	}
	if cl.DurationMs != nil {
		row("duration", (time.Duration(*cl.DurationMs) * time.Millisecond).String())
	}
	row("attempts", fmt.Sprint(cl.Attempts))
	row("last error", deref(cl.LastError))
	row("created", stamp(&cl.CreatedAt))
	row("next attempt", stamp(cl.NextAttemptAt))
	row("delivered", stamp(cl.DeliveredAt))
	row("expires", stamp(cl.ExpiresAt))
	row("claimed", stamp(cl.ClaimedAt))
	row("customer", deref(cl.CustomerID))
	_ = tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// firstLine reads the first line of the file at path ("-": stdin), without
// its line end.
func firstLine(path string, stdin io.Reader) (string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
