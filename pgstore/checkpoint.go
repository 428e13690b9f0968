package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// rowQuerier is what the checkpoint functions run on: the pool, a
// listener connection, a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// advanceCheckpoint moves the checkpoint of name from expected to pos
// (SQL advance_checkpoint, a compare-and-set).
func (s *Store) advanceCheckpoint(ctx context.Context, q rowQuerier, name string, expected, pos es.Position) error {
	var one int
	err := q.QueryRow(ctx, s.sql.advanceCheckpoint, name, expected.TxKey(), expected.Global(), pos.TxKey(), pos.Global()).Scan(&one)
	if err != nil {
		return fmt.Errorf("pgstore: advancing checkpoint %q from %s to %s: %w", name, expected, pos, interpretError(err))
	}
	return nil
}

// readCheckpoint reads the checkpoint of name.
func (s *Store) readCheckpoint(ctx context.Context, q rowQuerier, name string) (es.Position, bool, error) {
	var (
		tx     uint64
		global int64
		exists bool
	)
	if err := q.QueryRow(ctx, s.sql.readCheckpoint, name).Scan(&tx, &global, &exists); err != nil {
		return es.Position{}, false, fmt.Errorf("pgstore: reading checkpoint %q: %w", name, interpretError(err))
	}
	return es.NewPosition(tx, global), exists, nil
}

// Checkpoint returns the saved position of the subscription name and
// whether it has one; see [es.Subscriber.Checkpoint].
func (s *Store) Checkpoint(ctx context.Context, name string) (es.Position, bool, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return es.Position{}, false, err
	}
	return s.readCheckpoint(ctx, s.db, name)
}

// DeleteCheckpoint removes the subscription's checkpoint (SQL
// delete_checkpoint); see [es.Subscriber.DeleteCheckpoint].
func (s *Store) DeleteCheckpoint(ctx context.Context, name string) (bool, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return false, err
	}
	var deleted bool
	err := s.db.QueryRow(ctx, s.sql.deleteCheckpoint, name).Scan(&deleted)
	if err != nil {
		return false, fmt.Errorf("pgstore: deleting checkpoint %q: %w", name, interpretError(err))
	}
	return deleted, nil
}

// ResetCheckpoint sets the subscription's checkpoint to pos (SQL
// reset_checkpoint); see [es.Subscriber.ResetCheckpoint]. On a store bound
// to a transaction (WithTx) it commits with the caller's other writes.
func (s *Store) ResetCheckpoint(ctx context.Context, name string, pos es.Position) error {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return err
	}
	var one int
	if err := s.db.QueryRow(ctx, s.sql.resetCheckpoint, name, pos.TxKey(), pos.Global()).Scan(&one); err != nil {
		return fmt.Errorf("pgstore: resetting checkpoint %q to %s: %w", name, pos, interpretError(err))
	}
	return nil
}
