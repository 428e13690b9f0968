// Package exampletb gives an Example function, which gets no testing.TB
// from the testing package, one to hand to test helpers such as
// estest.Given and pgstoretest.Store:
//
//	func ExampleStore_Subscribe() {
//		t, done := exampletb.New() // in a test: the test's t
//		defer done()
//		store := pgstoretest.Store(t, nil)
//		...
//		// Output: ...
//	}
//
// A failure fails the example: Fatal, FailNow and Skip (an example cannot
// be skipped) panic with their message, after which the deferred done runs
// the cleanups; Error marks the example failed and done panics at the end.
// Log writes to stderr, so it never changes the example's output.
package exampletb

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// New returns a testing.TB for an Example function and a function, to
// defer, that runs the cleanups registered with it (the newest first, as
// the testing package does) and then panics if the example failed.
//
// Cleanup, Context, Error, Errorf, Fail, FailNow, Failed, Fatal, Fatalf,
// Helper, Log, Logf, Name, Skip, Skipf, SkipNow and Skipped work as in a
// test; TempDir, Setenv, Chdir and the other methods of testing.TB are not
// supported (they panic).
func New() (testing.TB, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tb{ctx: ctx, cancel: cancel}
	return t, t.done
}

// tb is the testing.TB of an example. The embedded interface is nil: it
// provides testing.TB's unexported method, and the methods tb does not
// define panic.
type tb struct {
	testing.TB

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	stopped  bool // FailNow panicked: done must not panic again
	messages []string
}

func (t *tb) Name() string                    { return "example" }
func (t *tb) Helper()                         {}
func (t *tb) Context() context.Context        { return t.ctx }
func (t *tb) Log(args ...any)                 { t.log(fmt.Sprintln(args...)) }
func (t *tb) Logf(format string, args ...any) { t.log(fmt.Sprintf(format, args...)) }
func (t *tb) Skipped() bool                   { return false }

func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *tb) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *tb) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *tb) FailNow() {
	t.mu.Lock()
	t.failed, t.stopped = true, true
	msg := strings.Join(t.messages, "\n")
	t.mu.Unlock()
	panic("exampletb: the example failed: " + msg)
}

func (t *tb) Error(args ...any) { t.Log(args...); t.Fail() }

func (t *tb) Errorf(format string, args ...any) { t.Logf(format, args...); t.Fail() }

func (t *tb) Fatal(args ...any) { t.Log(args...); t.FailNow() }

func (t *tb) Fatalf(format string, args ...any) { t.Logf(format, args...); t.FailNow() }

func (t *tb) SkipNow() { panic("exampletb: an example cannot be skipped") }

func (t *tb) Skip(args ...any) {
	panic("exampletb: an example cannot be skipped: " + strings.TrimSpace(fmt.Sprintln(args...)))
}

func (t *tb) Skipf(format string, args ...any) {
	panic("exampletb: an example cannot be skipped: " + fmt.Sprintf(format, args...))
}

// log writes a message to stderr and keeps it for the failure's panic.
func (t *tb) log(msg string) {
	msg = strings.TrimSuffix(msg, "\n")
	fmt.Fprintln(os.Stderr, msg)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.messages = append(t.messages, msg)
}

// done cancels the context, runs the cleanups and panics if the example
// failed without stopping (Error; FailNow has panicked already).
func (t *tb) done() {
	t.cancel()
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
	t.mu.Lock()
	failed := t.failed && !t.stopped
	msg := strings.Join(t.messages, "\n")
	t.mu.Unlock()
	if failed {
		panic("exampletb: the example failed: " + msg)
	}
}
