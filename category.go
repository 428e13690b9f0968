package es

import "strings"

// Category returns the category of a stream id: the part before the first
// '-', or the whole id when it has none. "order-42" is in category "order".
// The database computes the same value in the events.category column.
func Category(streamID string) string {
	if i := strings.IndexByte(streamID, '-'); i >= 0 {
		return streamID[:i]
	}
	return streamID
}
