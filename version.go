package es

import "strconv"

// ExpectedVersion is the condition an append places on the stream's current
// version. The zero value is [Any].
type ExpectedVersion struct {
	n   int64
	set bool
}

var (
	// Any appends whatever the stream's version, creating the stream when it
	// does not exist.
	Any = ExpectedVersion{}
	// NoStream requires that the stream has no events.
	NoStream = ExpectedVersion{n: 0, set: true}
	// StreamExists requires that the stream has at least one event.
	StreamExists = ExpectedVersion{n: -1, set: true}
)

// Exactly requires that the stream is at version n. Exactly(0) is [NoStream].
// A negative n is invalid and makes the append fail with [ErrInvalidArgument].
func Exactly(n int64) ExpectedVersion {
	if n < 0 {
		// Any value below -1 is invalid; the stores (and the SQL
		// functions) refuse it.
		return ExpectedVersion{n: -2, set: true}
	}
	return ExpectedVersion{n: n, set: true}
}

// ExpectedVersionFromSQL converts the value used by the SQL functions (NULL
// for any, -1 for exists, 0 for none, n for exactly n) into an
// ExpectedVersion.
func ExpectedVersionFromSQL(v *int64) ExpectedVersion {
	if v == nil {
		return Any
	}
	return ExpectedVersion{n: *v, set: true}
}

// SQL returns the value the SQL functions take: nil for Any, -1 for
// StreamExists, 0 for NoStream, n for Exactly(n).
func (e ExpectedVersion) SQL() *int64 {
	if !e.set {
		return nil
	}
	n := e.n
	return &n
}

// Valid reports whether e is one of Any, NoStream, StreamExists or Exactly(n)
// with n >= 0.
func (e ExpectedVersion) Valid() bool { return !e.set || e.n >= -1 }

// IsAny reports whether e places no condition.
func (e ExpectedVersion) IsAny() bool { return !e.set }

// Matches reports whether a stream at version actual satisfies e.
func (e ExpectedVersion) Matches(actual int64) bool {
	switch {
	case !e.set:
		return true
	case e.n == -1:
		return actual > 0
	default:
		return e.n == actual
	}
}

// String returns "any", "no stream", "stream exists" or the exact version.
func (e ExpectedVersion) String() string {
	switch {
	case !e.set:
		return "any"
	case e.n == 0:
		return "no stream"
	case e.n == -1:
		return "stream exists"
	case e.n < -1:
		return "invalid"
	default:
		return strconv.FormatInt(e.n, 10)
	}
}
