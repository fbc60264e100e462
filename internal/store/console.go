package store

// Reads and records for the operator console (internal/console) and GET
// /stats: counts by status, filtered listings with cursor paging, the latest
// outcomes, the console's session key and its CSV imports. Every query here is
// served by an index (migrations/0007_console.sql), so a page stays fast with
// hundreds of thousands of claims.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Stats counts the claims by status and describes the backlog. Each count is
// an index-only walk of claims_by_status for that status.
func (s *Store) Stats(ctx context.Context) (claim.Stats, error) {
	st := claim.Stats{Counts: make(map[claim.Status]int64, len(claim.Statuses))}
	names := make([]string, len(claim.Statuses))
	for i, k := range claim.Statuses {
		names[i], st.Counts[k] = string(k), 0
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT s, (SELECT count(*) FROM claims WHERE status = s) FROM unnest($1::text[]) AS s`, names).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var name string
				var n int64
				if err := rows.Scan(&name, &n); err != nil {
					return err
				}
				st.Counts[claim.Status(name)] = n
				st.Total += n
			}
			return rows.Err()
		})
	b.Queue(`SELECT now(), count(*), count(*) FILTER (WHERE next_attempt_at <= now()),
			count(*) FILTER (WHERE last_error IS NOT NULL), min(pending_since)
		FROM claims WHERE status = 'pending'`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&st.At, &st.Pending, &st.Due, &st.WithErrors, &st.OldestPendingSince)
	})
	err := s.pool.SendBatch(ctx, b).Close()
	return st, dbErr("stats", err)
}

// likePrefix escapes LIKE's wildcards in p and appends %.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// rareName is the most claims a device name prefix may match for Search to
// take them from the name index rather than walk all claims newest first.
const rareName = 2000

// Search lists claims newest first, narrowed by f, limit at a time; cursor is
// the previous page's NextCursor ("" for the first).
func (s *Store) Search(ctx context.Context, f claim.Filter, limit int, cursor string) (claim.Page, error) {
	at, id := time.Now().Add(time.Hour), uuid.Max
	if cursor != "" {
		var err error
		if at, id, err = decodeCursor(cursor); err != nil {
			e := claim.Errorf(claim.CodeInvalid, "cursor is not a nextCursor of this listing")
			e.Fields = []claim.FieldError{{Field: "cursor", Message: "must be a nextCursor this listing answered, unchanged"}}
			return claim.Page{}, e
		}
	}
	where := []string{`(created_at, id) < ($1, $2)`}
	args := []any{at, id}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Status != "" {
		add(`status = ?`, string(f.Status))
	}
	switch h := f.TokenHint; {
	case h == "":
	case strings.Contains(h, "…"):
		add(`token_hint = ?`, h)
	default:
		add(`token_hint LIKE ?`, likePrefix(h))
	}
	if !f.From.IsZero() {
		add(`created_at >= ?`, f.From)
	}
	if !f.To.IsZero() {
		add(`created_at < ?`, f.To)
	}
	from := "claims"
	if f.DeviceName != "" {
		name := likePrefix(strings.ToLower(f.DeviceName))
		add(`lower(device_name) LIKE ?`, name)
		// The planner cannot tell a rare name prefix from a common one and
		// walks the claims newest first, filtering: fast for a common
		// prefix, a scan of every claim for a rare one. Ask the name index
		// how many there are (at most rareName), and for a rare prefix take
		// them from it and sort them.
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM claims
			WHERE lower(device_name) LIKE $1 AND device_name IS NOT NULL LIMIT $2) x`, name, rareName).Scan(&n); err != nil {
			return claim.Page{}, dbErr("search claims", err)
		}
		if n < rareName {
			from = `(SELECT * FROM claims WHERE lower(device_name) LIKE $` + strconv.Itoa(len(args)) +
				` AND device_name IS NOT NULL OFFSET 0) claims`
		}
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, `SELECT `+claimColumns+` FROM `+from+` WHERE `+strings.Join(where, " AND ")+`
		ORDER BY created_at DESC, id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return claim.Page{}, dbErr("search claims", err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim.Claim, error) { return scanClaim(r) })
	if err != nil {
		return claim.Page{}, dbErr("search claims", err)
	}
	p := claim.Page{Claims: cs}
	if len(cs) > limit {
		p.Claims = cs[:limit]
		last := p.Claims[limit-1]
		p.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	return p, nil
}

// RecentOutcomes returns the latest events of the given kinds (delivered,
// rejected, failed, claimed, expired: those claim_events_outcomes indexes),
// newest first, each with its claim.
func (s *Store) RecentOutcomes(ctx context.Context, kinds []string, limit int) ([]claim.EventOf, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.at, e.kind, e.attempt, coalesce(e.outcome, ''), coalesce(e.detail, ''),
			coalesce(e.actor, ''), c.*
		FROM (SELECT * FROM claim_events
		      WHERE kind = ANY($1::text[]) AND kind IN ('delivered', 'rejected', 'failed', 'claimed', 'expired')
		      ORDER BY id DESC LIMIT $2) e
		CROSS JOIN LATERAL (SELECT `+claimColumns+` FROM claims WHERE id = e.claim_id) c
		ORDER BY e.id DESC`, kinds, limit)
	if err != nil {
		return nil, dbErr("recent outcomes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim.EventOf, error) {
		var e claim.EventOf
		c, err := scanClaim(r, &e.At, &e.Kind, &e.Attempt, &e.Outcome, &e.Detail, &e.Actor)
		e.Claim = c
		return e, err
	})
	return out, dbErr("recent outcomes", err)
}

// StatusCounts counts the claims of ids by their status now (an import's
// claims, as they are delivered).
func (s *Store) StatusCounts(ctx context.Context, ids []uuid.UUID) (map[claim.Status]int64, error) {
	out := map[claim.Status]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM claims WHERE id = ANY($1::uuid[]) GROUP BY status`, ids)
	if err != nil {
		return nil, dbErr("status counts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, dbErr("status counts", err)
		}
		out[claim.Status(st)] = n
	}
	return out, dbErr("status counts", rows.Err())
}

// SessionKey returns the 32-byte key named name, making it (crypto/rand) the
// first time: every replica then signs and checks with the same key.
func (s *Store) SessionKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	var key []byte
	err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO console_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING key)
		SELECT key FROM ins UNION ALL SELECT key FROM console_keys WHERE name = $1 LIMIT 1`, name, fresh).Scan(&key)
	return key, dbErr("session key", err)
}

// EndSession records that the console session with this nonce ended (its
// logout) before it expires, and forgets sessions that have expired.
func (s *Store) EndSession(ctx context.Context, nonce []byte, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `WITH gone AS (DELETE FROM console_logouts WHERE expires_at < now())
		INSERT INTO console_logouts (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING`, nonce, expires)
	return dbErr("end session", err)
}

// SessionEnded reports whether the console session with this nonce was
// ended by its logout.
func (s *Store) SessionEnded(ctx context.Context, nonce []byte) (bool, error) {
	var ended bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM console_logouts WHERE nonce = $1)`, nonce).Scan(&ended)
	return ended, dbErr("session ended", err)
}

// Import is one CSV import started from the console.
type Import struct {
	ID                        uuid.UUID
	FileName, Actor           string
	Total, Done               int
	Created, Replayed, Failed int
	ClaimIDs                  []uuid.UUID
	Problems                  []ImportProblem
	State                     string // running, done, stopped
	Error                     string
	StartedAt, UpdatedAt      time.Time
	FinishedAt                *time.Time
}

// ImportProblem is a row of an import that was not accepted.
type ImportProblem struct {
	Line    int    `json:"line"`
	Problem string `json:"problem"`
}

// MaxImportProblems bounds the problems an import keeps.
const MaxImportProblems = 1000

// StartImport records a new import of total rows.
func (s *Store) StartImport(ctx context.Context, fileName, actor string, total int) (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO imports (id, file_name, actor, rows_total) VALUES ($1, $2, $3, $4)`,
		id, fileName, actor, total)
	return id, dbErr("start import", err)
}

// ImportStep is what one chunk of an import did.
type ImportStep struct {
	Done, Created, Replayed, Failed int
	ClaimIDs                        []uuid.UUID
	Problems                        []ImportProblem
}

// AdvanceImport adds one chunk's outcome to import id.
func (s *Store) AdvanceImport(ctx context.Context, id uuid.UUID, st ImportStep) error {
	probs, err := json.Marshal(st.Problems)
	if err != nil {
		return err
	}
	if st.Problems == nil {
		probs = []byte("[]")
	}
	_, err = s.pool.Exec(ctx, `UPDATE imports SET rows_done = rows_done + $2, created = created + $3,
			replayed = replayed + $4, failed = failed + $5, claim_ids = claim_ids || $6::uuid[],
			problems = CASE WHEN jsonb_array_length(problems) >= $8 THEN problems
			                ELSE problems || (SELECT coalesce(jsonb_agg(p), '[]') FROM
			                     (SELECT p FROM jsonb_array_elements($7::jsonb) p LIMIT $8 - jsonb_array_length(problems)) x) END,
			updated_at = now()
		WHERE id = $1`, id, st.Done, st.Created, st.Replayed, st.Failed, st.ClaimIDs, probs, MaxImportProblems)
	return dbErr("advance import", err)
}

// FinishImport ends import id: done, or stopped with why.
func (s *Store) FinishImport(ctx context.Context, id uuid.UUID, stoppedBy error) error {
	state, msg := "done", ""
	if stoppedBy != nil {
		state, msg = "stopped", stoppedBy.Error()
	}
	_, err := s.pool.Exec(ctx, `UPDATE imports SET state = $2, error = nullif($3, ''), finished_at = now(), updated_at = now()
		WHERE id = $1`, id, state, msg)
	return dbErr("finish import", err)
}

const importColumns = `id, file_name, actor, rows_total, rows_done, created, replayed, failed, claim_ids, problems,
	state, coalesce(error, ''), started_at, updated_at, finished_at`

func scanImport(row pgx.Row) (Import, error) {
	var im Import
	var probs []byte
	err := row.Scan(&im.ID, &im.FileName, &im.Actor, &im.Total, &im.Done, &im.Created, &im.Replayed, &im.Failed,
		&im.ClaimIDs, &probs, &im.State, &im.Error, &im.StartedAt, &im.UpdatedAt, &im.FinishedAt)
	if err == nil {
		err = json.Unmarshal(probs, &im.Problems)
	}
	return im, err
}

// GetImport returns one import.
func (s *Store) GetImport(ctx context.Context, id uuid.UUID) (Import, error) {
	im, err := scanImport(s.pool.QueryRow(ctx, `SELECT `+importColumns+` FROM imports WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Import{}, claim.ErrNotFound
	}
	return im, dbErr("get import", err)
}

// Imports lists the latest imports, newest first, without their claim ids
// and problems.
func (s *Store) Imports(ctx context.Context, limit int) ([]Import, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, file_name, actor, rows_total, rows_done, created, replayed, failed,
			'{}'::uuid[], '[]'::jsonb, state, coalesce(error, ''), started_at, updated_at, finished_at
		FROM imports ORDER BY started_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, dbErr("imports", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Import, error) { return scanImport(r) })
	return out, dbErr("imports", err)
}
