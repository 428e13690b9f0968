package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// groupMember is one member of a consumer group ([es.SubscribeOpts.Partitions]),
// a storekit.Group on the SQL functions of groups.sql. Its membership is
// renewed through the pool (a member whose process dies loses its pool's
// connections, and with them its membership); each partition it holds runs
// on a connection of its own, like an ordinary subscription.
type groupMember struct {
	template source // the subscription's source: name, holder, filters
}

// Join renews the membership (SQL join_group).
func (m *groupMember) Join(ctx context.Context) (int, []int, error) {
	src := &m.template
	var members int
	var free []int32
	if err := src.s.pool.QueryRow(ctx, src.s.sql.joinGroup, src.name, src.holder, src.partitions,
		src.s.config.Subscriptions.LeaseTTL).Scan(&members, &free); err != nil {
		return 0, nil, fmt.Errorf("joining the group: %w", interpretError(err))
	}
	out := make([]int, len(free))
	for i, p := range free {
		out[i] = int(p)
	}
	return members, out, nil
}

// Leave ends the membership (SQL leave_group).
func (m *groupMember) Leave(ctx context.Context) error {
	src := &m.template
	if _, err := src.s.pool.Exec(ctx, src.s.sql.leaveGroup, src.name, src.holder); err != nil {
		return fmt.Errorf("leaving the group: %w", interpretError(err))
	}
	return nil
}

// Take takes partition p's lease (SQL take_partition).
func (m *groupMember) Take(ctx context.Context, p int) (bool, error) {
	src := &m.template
	var ok bool
	if err := src.s.pool.QueryRow(ctx, src.s.sql.takePartition, es.PartitionName(src.name, p, src.partitions), src.name,
		p, src.partitions, src.holder, src.s.config.Subscriptions.LeaseTTL).Scan(&ok); err != nil {
		return false, fmt.Errorf("taking partition %d: %w", p, interpretError(err))
	}
	return ok, nil
}

// Partition returns the source of partition p.
func (m *groupMember) Partition(p int) storekit.Source {
	src := m.template
	src.name, src.partition = es.PartitionName(m.template.name, p, src.partitions), p
	return &partitionSource{source: &src}
}

// partitionSource is a partition's source. Take took the partition's
// lease through the pool, on a backend that outlives the partition: when
// Open fails before a session holds the lease (the partition is handed
// back, or the member stops, while Open connects; or the connection
// fails), Open gives the lease up, so that the other members may take the
// partition at once rather than when its TTL lapses. (When it fails for
// good, Run returns; otherwise its next Open takes the lease again, or
// finds another member holding it.)
type partitionSource struct {
	*source
}

func (ps *partitionSource) Open(ctx context.Context) (storekit.Session, error) {
	ss, err := ps.source.Open(ctx)
	if err == nil && ps.reads != nil {
		ps.reads.Open(ps.partition)
	}
	if err != nil && !errors.Is(err, storekit.ErrPartitionTaken) {
		rctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_, _ = ps.s.pool.Exec(rctx, ps.s.sql.releaseLease, ps.name, ps.holder) // best effort
	}
	return ss, err
}

// Checkpoints returns the checkpoints of the group's partitions.
func (m *groupMember) Checkpoints(ctx context.Context) (map[int]map[int]es.Position, error) {
	src := &m.template
	rows, err := src.s.pool.Query(ctx, src.s.sql.groupCheckpoints, src.name)
	if err != nil {
		return nil, interpretError(err)
	}
	cps := make(map[int]map[int]es.Position)
	var n, p int
	var tx uint64
	var global int64
	_, err = pgx.ForEachRow(rows, []any{&n, &p, &tx, &global}, func() error {
		if cps[n] == nil {
			cps[n] = make(map[int]es.Position)
		}
		cps[n][p] = es.NewPosition(tx, global)
		return nil
	})
	if err != nil {
		return nil, interpretError(err)
	}
	return cps, nil
}

// groupPartitions returns the partition count of the consumer group name,
// 0 when there is none.
func (s *Store) groupPartitions(ctx context.Context, name string) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, s.sql.groupPartitions, name).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, interpretError(err)
	}
	return n, nil
}

// streamOf returns the stream of the event at pos.
func (s *Store) streamOf(ctx context.Context, pos es.Position) (string, error) {
	var stream string
	err := s.db.QueryRow(ctx, s.sql.streamAt, pos.TxKey(), pos.Global()).Scan(&stream)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("no event at %s: %w", pos, es.ErrNotFound)
	}
	if err != nil {
		return "", interpretError(err)
	}
	return stream, nil
}
