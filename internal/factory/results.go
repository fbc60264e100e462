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
		rec := []string{strconv.Itoa(r.Row.Line), safeCell(r.Row.DeviceName), safeCell(hint), r.ClaimID, r.Result, r.Status, safeCell(r.Problem)}
		if withSecrets {
			rec = append(rec, safeCell(r.Row.SecretKey))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// safeCell keeps a spreadsheet from reading a cell as a formula (a device
// named "=HYPERLINK(…)", or "-40C probe"): a leading =, +, -, @, tab or CR
// gets a quote in front. The readers of a results file (labels, the next
// run) take it off again: resultCell.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// resultCell is a results file's cell as it was before safeCell.
func resultCell(s string) string {
	if len(s) >= 2 && s[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(s[1])) {
		return s[1:]
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
// results file (path; none when it does not exist), as written or as a
// spreadsheet saved it again (a byte order mark, semicolons). FillSecrets
// gives them to the same rows again, so that a run after a crash or a fix of
// the CSV asks for the same claims (replays) instead of different ones (409).
func PreviousSecrets(path string) ([]Previous, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := newCSVReader(f)
	h, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, n := range h {
		col[strings.TrimSpace(n)] = i
	}
	for _, n := range []string{"row", "deviceName", "tokenHint", ColSecretKey} {
		if _, ok := col[n]; !ok {
			return nil, nil // not one with secrets
		}
	}
	var out []Previous
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		get := func(n string) string {
			if i, ok := col[n]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		line, err := strconv.Atoi(get("row"))
		if err != nil || get(ColSecretKey) == "" {
			continue
		}
		out = append(out, Previous{Line: line, DeviceName: resultCell(get("deviceName")), TokenHint: resultCell(get("tokenHint")),
			SecretKey: resultCell(get(ColSecretKey)), Result: get("result")})
	}
}

// Previous is a row of an earlier run's results file, as written.
type Previous struct {
	Line                             int
	DeviceName, TokenHint, SecretKey string
	Result                           string // what claimsvc answered then
}

// stored reports whether claimsvc holds a claim with p's secret.
func (p Previous) stored() bool { return p.Result == ResultCreated || p.Result == ResultReplayed }

// FillSecrets gives every row without a secret one: an earlier run's (prev,
// from PreviousSecrets) for the same row, else a new one. The same row is
// the one with the same device name and token hint (a fixed CSV moves
// lines); where that is ambiguous, the line decides. It returns how many it
// reused and made, and the earlier secrets of stored claims (created or
// replayed then) that no row took: the caller keeps them (WriteResultsFile
// replaces the file).
func FillSecrets(rows []Row, prev []Previous) (reused, made int, left []Previous) {
	byContent := map[[2]string][]int{}
	for i, p := range prev {
		k := [2]string{p.DeviceName, p.TokenHint}
		byContent[k] = append(byContent[k], i)
	}
	taken := make([]bool, len(prev))
	for i := range rows {
		r := &rows[i]
		if r.HasSecret {
			// The row brings its own secret: the earlier run's entry for it
			// (the same secret) is this row's, not one to keep aside.
			for _, c := range byContent[[2]string{r.DeviceName, claim.Hint(r.Token)}] {
				if !taken[c] && prev[c].SecretKey == r.SecretKey {
					taken[c] = true
					break
				}
			}
			continue
		}
		found := -1
		cands := byContent[[2]string{r.DeviceName, claim.Hint(r.Token)}]
		for _, c := range cands {
			if !taken[c] && (len(cands) == 1 || prev[c].Line == r.Line) {
				found = c
				break
			}
		}
		if found >= 0 {
			taken[found] = true
			r.SecretKey, r.HasSecret, r.GeneratedSecret = prev[found].SecretKey, true, true
			reused++
			continue
		}
		r.SecretKey, r.HasSecret, r.GeneratedSecret = NewSecret(), true, true
		made++
	}
	for i, p := range prev {
		if !taken[i] && p.stored() {
			left = append(left, p)
		}
	}
	return reused, made, left
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
