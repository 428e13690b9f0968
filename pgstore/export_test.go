package pgstore

// SetTestHook makes the subscription name call f at named stages of its
// sessions ("listening": after LISTEN, before the first read;
// "caught-up": after the first read that reached the end of the log). It
// returns a function that removes the hook.
func SetTestHook(name string, f func(stage string)) (remove func()) {
	testHooks.Store(name, f)
	return func() { testHooks.Delete(name) }
}
