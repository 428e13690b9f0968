// Package storekit is for implementers of es stores: what every
// [es.Store] implementation shares, written once so that stores cannot
// drift apart. It holds the argument rules of the SQL functions
// ([ValidateAppend], [PrepareAppend], [ValidateStreamID],
// [ValidateSnapshot], [ValidateSubscriptionName]) and the subscription
// engine that both pgstore and memstore run.
//
// Applications do not need it: they use package es and a store.
package storekit
