package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// reader returns what a read on ctx runs on (Config.Replicas): the bound
// transaction or the primary when the store has no replicas or ctx asks
// for the primary (es.ReadFromPrimary); else the next replica, once it
// shows the position of es.ReadAfter, if any, or the primary when it does
// not within Config.ReplicaWait.
func (s *Store) reader(ctx context.Context) (querier, error) {
	replicas := s.config.Replicas
	if s.bound || len(replicas) == 0 || es.ReadsFromPrimary(ctx) {
		return s.db, nil
	}
	replica := replicas[int(s.nextReplica.Add(1)%uint64(len(replicas)))]
	pos, ok := es.ReadAfterPosition(ctx)
	if !ok {
		return replica, nil
	}
	shown, err := s.awaitReplayed(ctx, replica, pos)
	if err != nil {
		return nil, err
	}
	if !shown {
		return s.db, nil
	}
	return replica, nil
}

// replicaPoll bounds the pause between two looks at a replica that does
// not show a position yet (the first pauses are shorter).
const replicaPoll = 20 * time.Millisecond

// awaitReplayed waits until the replica shows the event at pos (its
// transaction replayed, and with it everything committed before), for at
// most Config.ReplicaWait, and reports whether it does. A position whose
// event was removed since (a tombstone, retention) never shows: the read
// goes to the primary after the wait.
func (s *Store) awaitReplayed(ctx context.Context, replica querier, pos es.Position) (bool, error) {
	shown, err := pollReplica(ctx, s.config.ReplicaWait, func(ctx context.Context) (bool, error) {
		var shown bool
		if err := replica.QueryRow(ctx, s.sql.positionShown, pos.TxKey(), pos.Global()).Scan(&shown); err != nil {
			return false, interpretError(err)
		}
		return shown, nil
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: waiting for a replica to show %s: %w", pos, err)
	}
	return shown, nil
}

// pollReplica calls shown until it reports true, fails, or wait has
// passed, and reports whether it reported true. PostgreSQL 15 has no way
// to wait for a replay: it looks again after a short pause, the pauses
// doubling from 1 ms up to replicaPoll.
func pollReplica(ctx context.Context, wait time.Duration, shown func(ctx context.Context) (bool, error)) (bool, error) {
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		ok, err := shown(ctx)
		if err != nil || ok {
			return ok, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		if !storekit.Sleep(ctx, min(pause, left)) {
			return false, ctx.Err()
		}
		pause = min(2*pause, replicaPoll)
	}
}
