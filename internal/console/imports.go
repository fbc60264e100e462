package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/factory"
	"github.com/claimsvc/claimsvc/internal/store"
)

// The console's CSV upload runs factory.Import, as `claimsvc import` does,
// through the store instead of the HTTP API. Its progress is kept in the
// database (store.Import), so the progress page works on any replica; an
// import whose replica stopped shows as stopped, and uploading the same file
// again sends the rest (the rows' Idempotency-Keys make it create nothing
// twice).
const (
	maxUpload     = 5 << 20
	maxUploadRows = 20_000
	importChunk   = 200
	// staleAfter: a running import not advanced for this long is shown as
	// stopped (its replica went away).
	staleAfter = 2 * time.Minute
)

func (c *Console) importPage(w http.ResponseWriter, r *http.Request) {
	list, err := c.d.Store.Imports(r.Context(), 15)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "import", map[string]any{"Imports": shownState(list)})
}

// shownState marks as stopped the running imports that have not advanced for
// staleAfter: the claimsvc running them stopped (as the progress page says).
func shownState(list []store.Import) []store.Import {
	for i := range list {
		list[i].State = stateOf(list[i])
	}
	return list
}

func stateOf(im store.Import) string {
	if im.State == "running" && time.Since(im.UpdatedAt) > staleAfter {
		return "stopped"
	}
	return im.State
}

func (c *Console) startImport(w http.ResponseWriter, r *http.Request) {
	again := func(status int, msg string) {
		list, _ := c.d.Store.Imports(r.Context(), 15)
		c.render(w, r, status, "import", map[string]any{"Imports": shownState(list), "Error": msg})
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		again(http.StatusBadRequest, "Choose a CSV file to import.")
		return
	}
	defer f.Close()
	// The slot first, so that concurrent uploads are not parsed at once, and
	// no more rows than the console takes: a file's memory stays bounded.
	select {
	case c.imports <- struct{}{}:
	default:
		again(http.StatusServiceUnavailable, "Other imports are running: try again when one has finished.")
		return
	}
	started := false
	defer func() {
		if !started {
			<-c.imports
		}
	}()
	sh, err := factory.ReadCSVUpTo(f, factory.ForImport, maxUploadRows)
	switch {
	case errors.Is(err, factory.ErrTooManyRows):
		again(http.StatusRequestEntityTooLarge, fmt.Sprintf("The file has more than %d rows, the most the console takes (use `claimsvc import`).", maxUploadRows))
		return
	case err != nil:
		again(http.StatusUnprocessableEntity, "Not imported: "+err.Error())
		return
	}
	if len(sh.Rows)+len(sh.Problems) == 0 {
		again(http.StatusUnprocessableEntity, "The file has a header row but no device.")
		return
	}
	actor := claim.ActorFrom(r.Context())
	name := truncateRunes(filepath.Base(hdr.Filename), 200)
	id, err := c.d.Store.StartImport(r.Context(), name, actor, len(sh.Rows)+len(sh.Problems))
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	c.d.Log.InfoContext(r.Context(), "console import started", "import", id, "rows", len(sh.Rows), "bad_rows", len(sh.Problems), "actor", actor)
	c.wg.Add(1)
	started = true // the slot goes with the import
	go func() {
		defer c.wg.Done()
		defer func() { <-c.imports }()
		c.runImport(claim.WithActor(c.ctx, actor), id, sh)
	}()
	http.Redirect(w, r, c.d.Prefix+"/imports/"+id.String(), http.StatusSeeOther)
}

// runImport sends an uploaded sheet and records its progress.
func (c *Console) runImport(ctx context.Context, id uuid.UUID, sh *factory.Sheet) {
	// Writes of the progress outlive a stop (ctx): the page must say where
	// the import stopped.
	rec := context.WithoutCancel(ctx)
	if len(sh.Problems) > 0 {
		probs := make([]store.ImportProblem, len(sh.Problems))
		for i, p := range sh.Problems {
			probs[i] = store.ImportProblem{Line: p.Line, Problem: p.Problem}
		}
		if err := c.d.Store.AdvanceImport(rec, id, store.ImportStep{Done: len(probs), Failed: len(probs), Problems: probs}); err != nil {
			c.d.Log.Warn("console import progress", "import", id, "err", err)
		}
	}
	_, err := factory.Import(ctx, storeSubmitter{c}, sh.Rows, importChunk, func(_ factory.Progress, rows []factory.Row, outs []factory.Outcome) {
		step := store.ImportStep{Done: len(outs)}
		for i, o := range outs {
			switch o.Result {
			case factory.ResultCreated:
				step.Created++
			case factory.ResultReplayed:
				step.Replayed++
			default:
				step.Failed++
				step.Problems = append(step.Problems, store.ImportProblem{Line: rows[i].Line, Problem: o.Problem})
			}
			if o.ClaimID != "" {
				if cid, err := uuid.Parse(o.ClaimID); err == nil {
					step.ClaimIDs = append(step.ClaimIDs, cid)
				}
			}
		}
		if err := c.d.Store.AdvanceImport(rec, id, step); err != nil {
			c.d.Log.Warn("console import progress", "import", id, "err", err)
		}
	})
	if errors.Is(err, context.Canceled) {
		err = errors.New("claimsvc stopped during the import")
	} else if err != nil {
		err = errors.New(problemText(err))
	}
	if ferr := c.d.Store.FinishImport(rec, id, err); ferr != nil {
		c.d.Log.Warn("console import finish", "import", id, "err", ferr)
	}
	c.d.Log.Info("console import finished", "import", id, "err", err)
}

// storeSubmitter stores a chunk of rows as one intake transaction, with the
// API's field rules.
type storeSubmitter struct{ c *Console }

func (s storeSubmitter) Submit(ctx context.Context, rows []factory.Row) ([]factory.Outcome, error) {
	out := make([]factory.Outcome, len(rows))
	reqs := make([]claim.Request, 0, len(rows))
	at := make([]int, 0, len(rows))
	for i, r := range rows {
		in := claim.Input{Token: r.Token, DurationMs: r.DurationMs, Delivery: r.Delivery, IdempotencyKey: r.IdempotencyKey}
		if r.HasSecret {
			sk := r.SecretKey
			in.SecretKey = &sk
		}
		if r.DeviceName != "" {
			dn := r.DeviceName
			in.DeviceName = &dn
		}
		req, err := s.c.d.Validator.Request(in)
		if err != nil {
			out[i] = factory.Outcome{Result: factory.ResultInvalid, Problem: problemText(err)}
			continue
		}
		reqs, at = append(reqs, req), append(at, i)
	}
	if len(reqs) == 0 {
		return out, nil
	}
	res, err := s.c.d.Store.CreateBatch(ctx, reqs, s.c.d.Hold)
	if err != nil {
		return nil, err
	}
	created := false
	for k, r := range res {
		o := &out[at[k]]
		switch {
		case r.Err != nil:
			o.Result, o.Problem = factory.ResultRefused, problemText(r.Err)
		case r.Replayed:
			o.Result, o.ClaimID, o.Status = factory.ResultReplayed, r.Claim.ID.String(), string(r.Claim.Status)
		default:
			o.Result, o.ClaimID, o.Status = factory.ResultCreated, r.Claim.ID.String(), string(r.Claim.Status)
			created = true
		}
	}
	if created {
		s.c.d.Wake()
	}
	return out, nil
}

type statusCount struct {
	Status claim.Status
	Count  int64
}

func (c *Console) importProgress(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, http.StatusNotFound, "There is no such import.")
		return
	}
	im, err := c.d.Store.GetImport(r.Context(), id)
	if err != nil {
		if claim.ErrorCode(err) == claim.CodeNotFound {
			c.fail(w, r, http.StatusNotFound, "There is no such import.")
			return
		}
		c.storeFailed(w, r, err)
		return
	}
	counts, err := c.d.Store.StatusCounts(r.Context(), im.ClaimIDs)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	var cs []statusCount
	for _, s := range claim.Statuses {
		if n := counts[s]; n > 0 {
			cs = append(cs, statusCount{s, n})
		}
	}
	state := stateOf(im)
	if state != im.State {
		im.Error = "This import has not advanced for minutes: the claimsvc running it stopped"
	}
	// Refresh while rows are being sent, and while its claims are pending.
	live := state == "running" || counts[claim.StatusPending] > 0
	c.render(w, r, http.StatusOK, "progress", map[string]any{"Import": im, "State": state, "Counts": cs, "Live": live})
}

// truncateRunes cuts s to at most n bytes without splitting a character
// (PostgreSQL refuses invalid UTF-8).
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
