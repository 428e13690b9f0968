package pgstore

import "github.com/pgevent/es/storekit"

// SetObserver makes every subscription of s call f at each stage of its
// sessions (storekit.StageOpened: after LISTEN, before the first read;
// storekit.StageCaughtUp: after the first read that reached the end of the
// log). Set it before the subscriptions start.
func SetObserver(s *Store, f func(name string, st storekit.Stage)) { s.observe = f }

// NewGroupMember returns the member holder of the consumer group name of
// s with partitions partitions, as a Subscribe with
// SubscribeOpts.Partitions runs it.
func NewGroupMember(s *Store, name, holder string, partitions int) storekit.Group {
	return &groupMember{template: source{s: s, name: name, holder: holder, partitions: partitions}}
}
