// Package sample holds the cases of TestGuardFindsTheSamples: each line
// marked "// want" must be reported, and no other.
package sample

import (
	"context"
	"testing"
	"time"
)

type bundle struct {
	ctx  context.Context
	name string
}

type data struct {
	name string
	at   time.Time
}

type key struct{}

func setup(t *testing.T) *bundle {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return &bundle{ctx: ctx, name: t.Name()}
}

func use(...any) {}

func TestBad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	derived := context.WithValue(ctx, key{}, 1)
	b := setup(t)
	bundles := []*bundle{b}
	deadline := time.Now().Add(time.Minute)
	timer := time.NewTimer(time.Minute)
	after := time.After(time.Minute)
	helper := func() { use(ctx) }
	nested := func() { helper() }

	t.Run("Direct", func(t *testing.T) {
		t.Parallel()
		use(t.Name())
		use(ctx) // want
	})
	t.Run("Derived", func(t *testing.T) {
		t.Parallel()
		use(derived) // want
	})
	t.Run("Bundle", func(t *testing.T) {
		t.Parallel()
		use(b.name) // want
	})
	t.Run("Bundles", func(t *testing.T) {
		t.Parallel()
		use(bundles) // want
	})
	t.Run("Deadline", func(t *testing.T) {
		t.Parallel()
		use(deadline) // want
	})
	t.Run("Timers", func(t *testing.T) {
		t.Parallel()
		use(timer) // want
		use(after) // want
	})
	t.Run("Closure", func(t *testing.T) {
		t.Parallel()
		helper() // want
	})
	t.Run("ClosureOfAClosure", func(t *testing.T) {
		t.Parallel()
		nested() // want
	})
	t.Run("Nested", func(t *testing.T) {
		t.Parallel()
		t.Run("Inner", func(t *testing.T) {
			t.Parallel()
			use(ctx) // want
		})
	})
}

// runGroup is a helper whose parallel subtests use its parameter.
func runGroup(t *testing.T, ctx context.Context) {
	t.Run("Param", func(t *testing.T) {
		t.Parallel()
		use(ctx) // want
	})
}

func TestGood(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := data{name: "x", at: time.Now()}
	name := "x"
	mkctx := func(t *testing.T) context.Context { return t.Context() }
	mkbundle := func(t *testing.T) *bundle {
		b := setup(t)
		return b
	}

	t.Run("OwnContext", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		b := setup(t)
		use(ctx, b, at, d, name, mkctx(t), mkbundle(t))
	})
	t.Run("NotParallel", func(t *testing.T) {
		use(ctx) // runs while the parent waits for it
	})
	runGroup(t, ctx)
}
