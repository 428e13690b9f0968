package estest

// subscriptionTests check the subscriptions of stores that implement them.
var subscriptionTests []test
