package es

import (
	"strings"
	"unicode/utf8"
)

// Category returns the category of a stream id: the part before the first
// '-', or the whole id when it has none. "order-42" is in category "order".
// The database computes the same value in the events.category column.
func Category(streamID string) string {
	if i := strings.IndexByte(streamID, '-'); i >= 0 {
		return streamID[:i]
	}
	return streamID
}

// validText reports whether s can be stored in a PostgreSQL text column.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}
