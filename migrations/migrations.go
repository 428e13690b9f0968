// Package migrations holds the tern migrations that build the es schema.
//
// The files are plain tern migrations: `tern migrate -m migrations` applies
// them with no template data (schema "es"), and a "schema" template variable
// installs them under another name. pgstore.Migrate runs the same files,
// embedded here, through tern's migrate package.
package migrations

import "embed"

// FS holds the migration files (NNN_name.sql).
//
//go:embed *.sql
var FS embed.FS
