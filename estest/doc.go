// Package estest helps applications test their event-sourced code without
// a database: given/when/then for aggregates. (Store implementers want
// package storetest, the conformance suite every es.Store must pass; to
// test against PostgreSQL, run the same code on pgstore.)
//
// [Given] rebuilds an aggregate from past events, [Scenario.When] runs a
// command on it, and [Scenario.Then], [Scenario.ThenNothing] or
// [Scenario.ThenError] check the events it recorded or the error it
// returned:
//
//	estest.Given(t, newAccount, Opened{Owner: "ann"}, Deposited{Amount: 10}).
//		When(func(a *Account) error { return a.Withdraw(4) }).
//		Then(Withdrawn{Amount: 4})
package estest
