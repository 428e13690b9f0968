package es

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Position is a place in the global log. It is opaque: compare positions
// with [Position.Compare], print them with [Position.String] and read them
// back with [ParsePosition]. The zero Position is the start of the log,
// before every event.
//
// In PostgreSQL a position is the pair (transaction key, global_position)
// that orders the global log; see the README's "Ordering" section.
type Position struct {
	txKey  uint64
	global int64
}

// NewPosition makes a Position from its two parts. It is meant for Store
// implementations; users receive positions from events and results.
func NewPosition(txKey uint64, global int64) Position {
	return Position{txKey: txKey, global: global}
}

// TxKey returns the transaction key part (the events.transaction_id column).
func (p Position) TxKey() uint64 { return p.txKey }

// Global returns the global_position part.
func (p Position) Global() int64 { return p.global }

// IsZero reports whether p is the start of the log.
func (p Position) IsZero() bool { return p == Position{} }

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.txKey, q.txKey); c != 0 {
		return c
	}
	return cmp.Compare(p.global, q.global)
}

// Before reports whether p comes before q in the global log.
func (p Position) Before(q Position) bool { return p.Compare(q) < 0 }

// String formats p as "<transaction key>/<global position>", for example
// "771/42". [ParsePosition] reads it back.
func (p Position) String() string {
	return strconv.FormatUint(p.txKey, 10) + "/" + strconv.FormatInt(p.global, 10)
}

// MarshalText implements encoding.TextMarshaler with [Position.String].
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParsePosition].
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ParsePosition reads a position written by [Position.String].
func ParsePosition(s string) (Position, error) {
	k, g, ok := strings.Cut(s, "/")
	if !ok {
		return Position{}, fmt.Errorf("%w: position %q: want <transaction key>/<global position>", ErrInvalidArgument, s)
	}
	tx, err := strconv.ParseUint(k, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("%w: position %q: transaction key: %v", ErrInvalidArgument, s, err)
	}
	gp, err := strconv.ParseInt(g, 10, 64)
	if err != nil || gp < 0 {
		return Position{}, fmt.Errorf("%w: position %q: global position must be a non-negative integer", ErrInvalidArgument, s)
	}
	return Position{txKey: tx, global: gp}, nil
}
