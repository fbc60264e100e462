package store_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
)

// TestNoConstraintFailureShowsAToken: PostgreSQL puts the whole failing row
// in the DETAIL of a CHECK or NOT NULL violation, in the error sent to the
// client and in the server's log. No row of claims ever holds a token or a
// secret in clear, with a data key or without one (the unkeyed seal), so no
// such DETAIL can show one. The test provokes every constraint of claims
// (CHECK constraints found in the catalogue, each NOT NULL column, the
// primary key), on a row that holds a token and a secret, and on the INSERT
// that intake runs, and inspects every error, and the server log when it can
// read it. A constraint that no mutation below provokes fails the test: add
// one for it. A row written by an old release (plain text) shows the token
// in the same DETAIL, which proves the check can see it.
func TestNoConstraintFailureShowsAToken(t *testing.T) {
	t.Parallel()
	log := openServerLog(t)
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprintf("data key %t", keyed), func(t *testing.T) {
			t.Parallel()
			var keys [][]byte
			if keyed {
				keys = append(keys, randomKey(t))
			}
			tok := fmt.Sprintf("DETAIL_CANARY_TOKEN_%t", keyed)
			sec := fmt.Sprintf("detail-canary-secret-%t", keyed)
			s := newStore(t, keys...)
			a, err := s.Create(t.Context(), req(tok, sec, 60000), hold)
			if err != nil {
				t.Fatal(err)
			}
			errs := provokeEveryConstraint(t, s, a.Claim.ID)
			sealer, _ := seal.New(keys)
			errs = append(errs, provokeIntakeInsert(t, s, sealer, tok, sec)...)
			for _, e := range errs {
				if leak := findCanary(pgErrorText(e), tok, sec); leak != "" {
					t.Errorf("constraint %s: the error shows the %s: %s", e.ConstraintName+e.ColumnName, leak, e.Detail)
				}
			}
			t.Logf("figures: keyed=%t constraint_errors=%d", keyed, len(errs))
			log.check(t, tok, sec)
		})
	}
	t.Run("control: a plain-text row of an old release", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		a, err := s.Create(t.Context(), req("DETAIL_CONTROL_TOKEN", "", 0), hold)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pool().Exec(t.Context(), `UPDATE claims SET token = '\x00'::bytea || convert_to('DETAIL_CONTROL_TOKEN', 'UTF8') WHERE id = $1`, a.Claim.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.Pool().Exec(t.Context(), `UPDATE claims SET duration_ms = -1 WHERE id = $1`, a.Claim.ID)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || findCanary(pgErrorText(pe), "DETAIL_CONTROL_TOKEN", "") == "" {
			t.Fatalf("the DETAIL of a plain-text row does not show its token: the check is blind: %v %+v", err, pe)
		}
		if log != nil && log.find(t, "DETAIL_CONTROL_TOKEN", "", true) == "" {
			t.Fatalf("the server log does not show the plain-text row's token: the log check is blind")
		}
	})
}

// provokeEveryConstraint violates each constraint of claims on row id (one
// failing statement each; nothing changes) and returns the errors.
func provokeEveryConstraint(t *testing.T, s *store.Store, id uuid.UUID) []*pgconn.PgError {
	t.Helper()
	ctx := t.Context()
	checks := map[string]bool{}
	rows, err := s.Pool().Query(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'claims'::regclass AND contype = 'c'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		checks[n] = false
	}
	type column struct{ name, typ string }
	rows, err = s.Pool().Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'claims'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		return c, r.Scan(&c.name, &c.typ)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Values that break the usual rules of each type; NULL for every column.
	bad := map[string][]string{
		"text":                     {"'not-a-known-value'", "'delivered'", "'attribute'", "repeat('x', 1000)", "''"},
		"bigint":                   {"-1", "0", "4000000000000"},
		"integer":                  {"-1"},
		"timestamp with time zone": {"'infinity'", "'-infinity'"},
	}
	var errs []*pgconn.PgError
	notNull := 0
	// Each value alone, then again with the token and secret cleared: the
	// rule that a final claim holds neither is checked before the others and
	// would hide them.
	var stmts []string
	for _, c := range cols {
		for _, v := range append([]string{"NULL"}, bad[c.typ]...) {
			set := pgx.Identifier{c.name}.Sanitize() + ` = ` + v
			stmts = append(stmts, set)
			if c.name != "token" && c.name != "secret" {
				stmts = append(stmts, set+`, token = NULL, secret = NULL`)
			}
		}
	}
	for _, set := range stmts {
		// In a transaction rolled back: a mutation that passes every
		// constraint must not change the row the next ones start from.
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, `UPDATE claims SET `+set+` WHERE id = $1`, id)
		_ = tx.Rollback(ctx)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "23") {
			continue
		}
		errs = append(errs, pe)
		if pe.Code == "23502" {
			notNull++
		}
		if _, ok := checks[pe.ConstraintName]; ok {
			checks[pe.ConstraintName] = true
		}
	}
	// The primary key: a second row with the same id.
	_, err = s.Pool().Exec(ctx, `INSERT INTO claims SELECT * FROM claims WHERE id = $1`, id)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("duplicate id: %v", err)
	}
	errs = append(errs, pe)
	var missed []string
	for n, hit := range checks {
		if !hit {
			missed = append(missed, n)
		}
	}
	sort.Strings(missed)
	if len(missed) > 0 {
		t.Errorf("no mutation provoked the CHECK constraints %v of claims: add one to provokeEveryConstraint", missed)
	}
	if notNull == 0 || len(checks) == 0 {
		t.Fatalf("provoked %d NOT NULL and %d CHECK constraints: the catalogue query found nothing", notNull, len(checks))
	}
	return errs
}

// provokeIntakeInsert runs intake's INSERT (its columns, sealed values) with
// a value that breaks a CHECK and with a NULL where NOT NULL is required.
func provokeIntakeInsert(t *testing.T, s *store.Store, sealer *seal.Sealer, tok, sec string) []*pgconn.PgError {
	t.Helper()
	var errs []*pgconn.PgError
	for _, dur := range []any{int64(-5), nil} {
		id := uuid.New()
		r := req(tok, sec, 0)
		var fp []byte
		if dur == nil {
			fp = nil // NOT NULL fingerprint
		} else {
			fp = r.Fingerprint()
		}
		_, err := s.Pool().Exec(t.Context(), `INSERT INTO claims (id, token_hash, token_hint, token, secret, has_secret, duration_ms, fingerprint, next_attempt_at)
			VALUES ($1, $2, $3, $4, $5, true, $6, $7, now())`,
			id, claim.Token(tok).Hash(), claim.Hint(tok), sealer.Seal([]byte(tok), id[:], "token"), sealer.Seal([]byte(sec), id[:], "secret"), dur, fp)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "23") || !strings.Contains(pe.Detail, "Failing row contains") {
			t.Fatalf("intake INSERT with a bad value: %v", err)
		}
		errs = append(errs, pe)
	}
	return errs
}

func pgErrorText(pe *pgconn.PgError) string {
	return strings.Join([]string{pe.Message, pe.Detail, pe.Hint, pe.Where, pe.InternalQuery, pe.ColumnName, pe.ConstraintName}, "\n")
}

// findCanary names what of tok or sec text shows: in clear, hex (bytea's
// output) or base64.
func findCanary(text, tok, sec string) string {
	for name, v := range map[string]string{"token": tok, "secret": sec} {
		if v == "" {
			continue
		}
		for form, enc := range map[string]string{"clear": v, "hex": hex.EncodeToString([]byte(v)),
			"base64": base64.StdEncoding.EncodeToString([]byte(v))[:16]} {
			if strings.Contains(strings.ToLower(text), strings.ToLower(enc)) {
				return name + " (" + form + ")"
			}
		}
	}
	return ""
}

// serverLog is PostgreSQL's log from the start of the test on, when this
// process can read it: the file named by CLAIMSVC_TEST_PG_LOG, the
// collector's current file, or Debian's default for the cluster.
type serverLog struct {
	path   string
	offset int64
}

func openServerLog(t *testing.T) *serverLog {
	t.Helper()
	var candidates []string
	if p := os.Getenv("CLAIMSVC_TEST_PG_LOG"); p != "" {
		candidates = append(candidates, p)
	}
	conn, err := pgx.Connect(t.Context(), pgtest.AdminURL())
	if err == nil {
		var dir, version string
		var current *string
		_ = conn.QueryRow(t.Context(), `SELECT current_setting('data_directory'), current_setting('server_version_num'), pg_current_logfile()`).
			Scan(&dir, &version, &current)
		_ = conn.Close(t.Context())
		if current != nil {
			p := *current
			if !strings.HasPrefix(p, "/") {
				p = dir + "/" + p
			}
			candidates = append(candidates, p)
		}
		if len(version) >= 2 {
			candidates = append(candidates, "/var/log/postgresql/postgresql-"+version[:2]+"-main.log")
		}
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil {
			if f, err := os.Open(p); err == nil {
				f.Close()
				return &serverLog{path: p, offset: st.Size()}
			}
		}
	}
	t.Logf("PostgreSQL's log is not readable here (tried %v; set CLAIMSVC_TEST_PG_LOG): checking the errors only", candidates)
	return nil
}

// check fails when what the server logged since the start shows tok or sec.
func (l *serverLog) check(t *testing.T, tok, sec string) {
	t.Helper()
	if l == nil {
		return
	}
	if leak := l.find(t, tok, sec, false); leak != "" {
		t.Errorf("PostgreSQL's log %s shows the %s", l.path, leak)
	}
}

// find names what of tok or sec the server logged since the start. The
// server writes its log asynchronously: find waits up to 2 s for a canary
// it must see (want), else reads once after a moment.
func (l *serverLog) find(t *testing.T, tok, sec string, want bool) string {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	deadline := time.Now().Add(2 * time.Second)
	for {
		b := l.read(t)
		leak := findCanary(string(b), tok, sec)
		if leak != "" || !want || time.Now().After(deadline) {
			t.Logf("figures: server log %s: %d bytes since the start, violations logged: %t", l.path, len(b),
				bytes.Contains(b, []byte("Failing row contains")))
			return leak
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *serverLog) read(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(l.offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
