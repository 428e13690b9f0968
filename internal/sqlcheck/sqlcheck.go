// Package sqlcheck holds the rules for values the es schema stores, shared
// by the root package (event type names, categories, snapshot schema
// versions) and the store toolkit (stream ids, subscription names), so
// that the Go side refuses exactly what the SQL functions refuse.
package sqlcheck

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Text reports whether s can be stored in a PostgreSQL text column: valid
// UTF-8 without NUL bytes.
func Text(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// Int32 reports whether v fits a PostgreSQL int column.
func Int32(v int) bool {
	return v >= math.MinInt32 && v <= math.MaxInt32
}
