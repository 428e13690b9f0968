package es

import "context"

// Reads from replicas. A store may read from copies of the log that lag
// behind its writes (pgstore reads from the hot standbys of
// pgstore.Config.Replicas). These context values tell such a store what a
// read must see; a store that reads its one copy (memstore, pgstore
// without replicas) ignores them: it always sees every write.

type readAfterKey struct{}

type readPrimaryKey struct{}

// ReadAfter returns a context whose reads ([Store.ReadStream],
// [Store.ReadAll], [Store.StreamInfo], [SnapshotStore.Load] and so
// [Repository.Load]) see the event at pos and everything committed before
// it: a store reading from a replica waits until the replica shows it, or
// reads from the primary after a bounded wait (read your writes). pos is
// typically an append's [AppendResult].LastPosition; [Position.String] and
// [ParsePosition] carry it between requests (a web client sends it back
// with its next request). A later ReadAfter replaces an earlier one.
func ReadAfter(ctx context.Context, pos Position) context.Context {
	return context.WithValue(ctx, readAfterKey{}, pos)
}

// ReadAfterPosition returns the position set by [ReadAfter] on ctx, if
// any.
func ReadAfterPosition(ctx context.Context) (Position, bool) {
	pos, ok := ctx.Value(readAfterKey{}).(Position)
	return pos, ok && !pos.IsZero()
}

// ReadFromPrimary returns a context whose reads go to the store's primary
// copy, never to a replica. [Repository.Update] reads this way: loading an
// aggregate from a lagging replica would only make its save fail with a
// version conflict, and load again.
func ReadFromPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, readPrimaryKey{}, true)
}

// ReadsFromPrimary reports whether ctx comes from [ReadFromPrimary].
func ReadsFromPrimary(ctx context.Context) bool {
	primary, _ := ctx.Value(readPrimaryKey{}).(bool)
	return primary
}
