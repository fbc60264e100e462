// Package migrations embeds the SQL migrations into the binary. Files are
// applied in name order, each in its own transaction, and recorded in
// schema_migrations (see internal/store.Migrate).
package migrations

import "embed"

// FS holds every NNNN_name.sql file of this directory.
//
//go:embed *.sql
var FS embed.FS
