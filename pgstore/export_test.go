package pgstore

import "github.com/pgevent/es/storekit"

// SetObserver makes every subscription of s call f at each stage of its
// sessions (storekit.StageOpened: after LISTEN, before the first read;
// storekit.StageCaughtUp: after the first read that reached the end of the
// log). Set it before the subscriptions start.
func SetObserver(s *Store, f func(name string, st storekit.Stage)) { s.observe = f }
