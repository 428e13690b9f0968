package memstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/google/uuid"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// Consumer groups in memory, as pgstore's groups.sql keeps them: a group's
// partition count and members, and which subscription names are which
// partition. A member's "lease" on a partition is the partition's slot
// (subscriptionSlot), filled while it runs. Guarded by subMu.

// group is a consumer group.
type group struct {
	partitions int
	members    map[string]int // holder → the partition count it runs with
}

// partitionOf says which partition of which group a subscription name is.
type partitionOf struct {
	group         string
	p, partitions int
}

// groupMember is one member of a consumer group (storekit.Group).
type groupMember struct {
	s      *Store
	name   string
	n      int
	holder string
	o      *es.SubscribeOpts
}

func (s *Store) newGroupMember(name string, o *es.SubscribeOpts) *groupMember {
	return &groupMember{s: s, name: name, n: o.Partitions, holder: uuid.NewString(), o: o}
}

// heldLocked reports whether the slot of the subscription (or partition)
// name is filled: an instance of it runs. Guarded by subMu.
func (s *Store) heldLocked(name string) bool {
	slot := s.subActive[name]
	return slot != nil && len(slot) > 0
}

// Join registers the member and returns the members of the group's
// partition count and its free partitions (pgstore: SQL join_group).
func (m *groupMember) Join(ctx context.Context) (int, []int, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	s := m.s
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.groups == nil {
		s.groups = make(map[string]*group)
	}
	g := s.groups[m.name]
	if g == nil {
		g = &group{partitions: m.n, members: make(map[string]int)}
		s.groups[m.name] = g
	}
	g.members[m.holder] = m.n
	if g.partitions != m.n {
		for _, n := range g.members {
			if n == g.partitions {
				return 0, nil, nil
			}
		}
		for p := range g.partitions {
			if s.heldLocked(es.PartitionName(m.name, p, g.partitions)) {
				return 0, nil, nil
			}
		}
		// Resize: the new count's partitions start afresh from the
		// checkpoints of the others (storekit's resize session).
		for p := range m.n {
			delete(s.checkpoints, es.PartitionName(m.name, p, m.n))
		}
		g.partitions = m.n
	}
	members := 0
	for _, n := range g.members {
		if n == g.partitions {
			members++
		}
	}
	var free []int
	for p := range g.partitions {
		if !s.heldLocked(es.PartitionName(m.name, p, g.partitions)) {
			free = append(free, p)
		}
	}
	return members, free, nil
}

// Leave removes the member.
func (m *groupMember) Leave(context.Context) error {
	m.s.subMu.Lock()
	defer m.s.subMu.Unlock()
	if g := m.s.groups[m.name]; g != nil {
		delete(g.members, m.holder)
	}
	return nil
}

// Take fills partition p's slot when it is empty and the group still has
// the member's partition count.
func (m *groupMember) Take(ctx context.Context, p int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	name := es.PartitionName(m.name, p, m.n)
	slot := m.s.subscriptionSlot(name)
	s := m.s
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if g := s.groups[m.name]; g == nil || g.partitions != m.n {
		return false, nil
	}
	select {
	case slot <- struct{}{}:
	default:
		return false, nil
	}
	if s.partitionsOf == nil {
		s.partitionsOf = make(map[string]partitionOf)
		s.partitionHolder = make(map[string]string)
	}
	s.partitionsOf[name] = partitionOf{group: m.name, p: p, partitions: m.n}
	s.partitionHolder[name] = m.holder
	return true, nil
}

// Partition returns the source of partition p: its sessions read the
// partition's streams only, and Open does not wait for the slot.
func (m *groupMember) Partition(p int) storekit.Source {
	return &source{s: m.s, name: es.PartitionName(m.name, p, m.n), o: m.o, holder: m.holder, part: &partitionOf{group: m.name, p: p, partitions: m.n}}
}

// Checkpoints returns the checkpoints of the group's partitions by count.
func (m *groupMember) Checkpoints(ctx context.Context) (map[int]map[int]es.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := m.s
	s.subMu.Lock()
	defer s.subMu.Unlock()
	cps := make(map[int]map[int]es.Position)
	for name, po := range s.partitionsOf {
		cp, ok := s.checkpoints[name]
		if po.group != m.name || !ok {
			continue
		}
		if cps[po.partitions] == nil {
			cps[po.partitions] = make(map[int]es.Position)
		}
		cps[po.partitions][po.p] = cp.pos
	}
	return cps, nil
}

// openPartition takes the partition's slot for the session: already
// filled by the member's Take, or empty; ErrPartitionTaken otherwise.
func (src *source) openPartition() (chan struct{}, error) {
	slot := src.s.subscriptionSlot(src.name)
	s := src.s
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.heldLocked(src.name) {
		if s.partitionHolder[src.name] == src.holder {
			return slot, nil
		}
		return nil, fmt.Errorf("memstore: subscription %q: %w", src.name, storekit.ErrPartitionTaken)
	}
	select {
	case slot <- struct{}{}:
		s.partitionHolder[src.name] = src.holder
		return slot, nil
	default:
		return nil, fmt.Errorf("memstore: subscription %q: %w", src.name, storekit.ErrPartitionTaken)
	}
}

// groupPartitions returns the partition count of the consumer group name,
// 0 when there is none.
func (s *Store) groupPartitions(_ context.Context, name string) (int, error) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if g := s.groups[name]; g != nil {
		return g.partitions, nil
	}
	return 0, nil
}

// streamOf returns the stream of the event at pos.
func (s *Store) streamOf(_ context.Context, pos es.Position) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.log), func(i int) bool { return !s.log[i].Position.Before(pos) })
	if i == len(s.log) || s.log[i].Position != pos {
		return "", fmt.Errorf("memstore: no event at %s: %w", pos, es.ErrNotFound)
	}
	return s.log[i].StreamID, nil
}

// keeps reports whether e belongs to the partition (nil: no
// partition, every event does).
func (po *partitionOf) keeps(e *es.Event) bool {
	return po == nil || es.StreamPartition(e.StreamID, po.partitions) == po.p
}
