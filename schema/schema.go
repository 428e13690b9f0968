// Package schema holds the SQL that builds an es schema, embedded, in the
// two parts tern knows:
//
//   - migrations/: tern migrations (NNN_name.sql) that create the tables.
//     A released migration is never edited; a change to a table is a new
//     migration.
//   - code/: a tern code package (install.sql includes the other files)
//     with every function, trigger, view, role and privilege, each defined
//     in exactly one file. It is installed again after every migration run
//     and replaces each object in place.
//
// Both take the template variable "schema" (default "es"). pgstore.Migrate
// applies both in one transaction; the tern CLI applies the same files
// with `tern migrate -m schema/migrations` and `tern code install
// schema/code`.
package schema

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql code/*.sql
var files embed.FS

// Migrations returns the tern migrations (NNN_name.sql at the root of the
// returned file system).
func Migrations() fs.FS { return sub("migrations") }

// Code returns the tern code package (install.sql and the files it
// includes, at the root of the returned file system).
func Code() fs.FS { return sub("code") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return f
}
