// Package pgtest gives each test a fresh PostgreSQL database on the real
// server named by CLAIMSVC_TEST_DATABASE_URL (default: the local server), and
// drops it afterwards. PostgreSQL is never mocked.
//
// A test that needs a migrated schema clones it from a template database
// (Template, Clone) instead of migrating its own: the template is prepared
// once per schema version for every test process on the server, and a clone
// is a file copy inside PostgreSQL.
//
// When the server cannot be reached the test is skipped with a message that
// says what it needs, except under CI=true, where it fails: a green CI run
// must mean the database code was exercised.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminURL is used when CLAIMSVC_TEST_DATABASE_URL is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the URL of the server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("CLAIMSVC_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// NewDatabase creates an empty database and returns its URL. The database is
// dropped (with FORCE, so lingering connections do not block it) when the
// test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return Clone(tb, "")
}

// Clone creates a database copied from template (made by Template; "" for an
// empty one) and returns its URL. It is dropped when the test ends.
func Clone(tb testing.TB, template string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin := AdminURL()
	conn := connect(tb, ctx, admin)
	defer conn.Close(context.Background())

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "claimsvc_test_" + hex.EncodeToString(b[:])
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("pgtest: drop %s: %v", name, err)
		}
	})

	return databaseURL(tb, admin, name)
}

// Template returns the name of a template database made by prepare, which
// gets the URL of a new empty database to fill (and must close every
// connection to it before it returns). key names the content (e.g. a hash
// of the migrations): the template is made once per key on the server, by
// whichever test process gets there first, under an advisory lock.
func Template(tb testing.TB, key string, prepare func(ctx context.Context, url string) error) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := AdminURL()
	conn := connect(tb, ctx, admin)
	defer conn.Close(context.Background())

	name := "claimsvc_tmpl_" + key
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", name); err != nil {
		tb.Fatalf("pgtest: template lock: %v", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext($1))", name) //nolint:errcheck // released with the session anyway
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		tb.Fatalf("pgtest: template: %v", err)
	}
	if exists {
		return name
	}
	// Build under another name and rename when done, so that a template
	// that exists is always complete.
	building := name + "_wip"
	id := pgx.Identifier{building}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		tb.Fatalf("pgtest: template: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		tb.Fatalf("pgtest: template: %v", err)
	}
	if err := prepare(ctx, databaseURL(tb, admin, building)); err != nil {
		tb.Fatalf("pgtest: prepare template: %v", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+id+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: template: %v", err)
	}
	return name
}

// connect opens a connection to the admin database, or skips the test (fails
// it under CI=true) when the server cannot be reached.
func connect(tb testing.TB, ctx context.Context, admin string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		msg := fmt.Sprintf("pgtest: PostgreSQL is unreachable at %s (set CLAIMSVC_TEST_DATABASE_URL, or start it: pg_ctlcluster --skip-systemctl-redirect 15 main start): %v", redact(admin), err)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return conn
}

func databaseURL(tb testing.TB, admin, name string) string {
	tb.Helper()
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("pgtest: parse %s: %v", redact(admin), err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
