package factory

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/client"
)

// The results file: one line per row of the input, in the input's order:
// its line, device name, token hint (never the token), the claim, what
// claimsvc answered and why not. With generated secrets it also holds every
// row's secret, so that it is the input of `claimsvc labels`.
var resultHeader = []string{"row", "deviceName", "tokenHint", "claimId", "result", "status", "problem"}

// Result is one line of a results file.
type Result struct {
	Row Row
	Outcome
}

// Results pairs rows with their outcomes and adds the sheet's bad rows, in
// line order.
func Results(rows []Row, outs []Outcome, problems []Problem) []Result {
	res := make([]Result, 0, len(rows)+len(problems))
	for i, r := range rows {
		res = append(res, Result{Row: r, Outcome: outs[i]})
	}
	for _, p := range problems {
		res = append(res, Result{Row: Row{Line: p.Line}, Outcome: Outcome{Result: ResultInvalid, Problem: p.Problem}})
	}
	slices.SortStableFunc(res, func(a, b Result) int { return a.Row.Line - b.Row.Line })
	return res
}

// WriteResults writes results as CSV; withSecrets adds the secretKey column.
func WriteResults(w io.Writer, results []Result, withSecrets bool) error {
	cw := csv.NewWriter(w)
	h := resultHeader
	if withSecrets {
		h = append(slices.Clone(h), ColSecretKey)
	}
	if err := cw.Write(h); err != nil {
		return err
	}
	for _, r := range results {
		hint := ""
		if r.Row.Token != "" {
			hint = claim.Hint(r.Row.Token)
		}
		rec := []string{strconv.Itoa(r.Row.Line), r.Row.DeviceName, hint, r.ClaimID, r.Result, r.Status, safeCell(r.Problem)}
		if withSecrets {
			rec = append(rec, r.Row.SecretKey)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// safeCell keeps a spreadsheet from reading a cell of free text (a problem,
// as claimsvc worded it) as a formula: a leading =, +, - or @ gets a quote in
// front. Names and secrets are written as they are: they are read back (by
// labels, by the next run) and must stay exact.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteResultsFile writes results to path atomically (a temporary file,
// synced, then renamed), readable by its owner only when it holds secrets.
func WriteResultsFile(path string, results []Result, withSecrets bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	mode := os.FileMode(0o644)
	if withSecrets {
		mode = 0o600
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := WriteResults(f, results, withSecrets); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// PreviousSecrets reads the secrets an earlier run generated from its
// results file (path; none when it does not exist), by line: a row whose
// line, device name and token hint are the same, and whose secret is empty
// in the input, gets the same secret again, so that a run after a crash asks
// for the same claims (replays) instead of different ones (409).
func PreviousSecrets(path string) (map[int]Previous, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	h, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, n := range h {
		col[n] = i
	}
	for _, n := range []string{"row", "deviceName", "tokenHint", ColSecretKey} {
		if _, ok := col[n]; !ok {
			return nil, nil // not one with secrets
		}
	}
	out := map[int]Previous{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		get := func(n string) string {
			if i := col[n]; i < len(rec) {
				return rec[i]
			}
			return ""
		}
		line, err := strconv.Atoi(get("row"))
		if err != nil || get(ColSecretKey) == "" {
			continue
		}
		out[line] = Previous{DeviceName: get("deviceName"), TokenHint: get("tokenHint"), SecretKey: get(ColSecretKey)}
	}
}

// Previous is a row of an earlier run's results file, as written.
type Previous struct {
	DeviceName, TokenHint, SecretKey string
}

// FillSecrets gives every row without a secret one: the earlier run's (prev,
// from PreviousSecrets) when the row is the same, else a new one. It returns
// how many it reused and made.
func FillSecrets(rows []Row, prev map[int]Previous) (reused, made int) {
	for i := range rows {
		r := &rows[i]
		if r.HasSecret {
			continue
		}
		if p, ok := prev[r.Line]; ok && p.DeviceName == r.DeviceName && p.TokenHint == claim.Hint(r.Token) {
			r.SecretKey, r.HasSecret, r.GeneratedSecret = p.SecretKey, true, true
			reused++
			continue
		}
		r.SecretKey, r.HasSecret, r.GeneratedSecret = NewSecret(), true, true
		made++
	}
	return reused, made
}

// API submits rows to claimsvc's POST /claims:batch.
type API struct{ Client *client.Client }

// Submit implements Submitter.
func (a API) Submit(ctx context.Context, rows []Row) ([]Outcome, error) {
	items := make([]client.BatchItem, len(rows))
	for i, r := range rows {
		it := client.BatchItem{Token: r.Token, DurationMs: r.DurationMs, Delivery: r.Delivery, DeviceName: r.DeviceName,
			IdempotencyKey: r.IdempotencyKey}
		if r.HasSecret {
			s := r.SecretKey
			it.SecretKey = &s
		}
		items[i] = it
	}
	ans, err := a.Client.Batch(ctx, items)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(rows))
	for _, res := range ans.Results {
		if res.Index < 0 || res.Index >= len(out) {
			return nil, fmt.Errorf("claimsvc answered for claim %d of %d", res.Index, len(out))
		}
		o := &out[res.Index]
		switch {
		case res.Problem != nil:
			o.Result, o.Problem = ResultRefused, res.Problem.Error()
			if res.Problem.Status == 422 || res.Problem.Status == 400 || res.Problem.Status == 413 {
				o.Result = ResultInvalid
			}
		case res.Claim != nil:
			o.Result, o.ClaimID, o.Status = ResultCreated, res.Claim.ID, res.Claim.Status
			if res.Replayed {
				o.Result = ResultReplayed
			}
		default:
			return nil, fmt.Errorf("claimsvc answered claim %d with neither a claim nor a problem", res.Index)
		}
	}
	return out, nil
}
