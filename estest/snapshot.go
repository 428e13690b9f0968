package estest

// snapshotTests check the snapshot operations of stores that implement them.
var snapshotTests []test
