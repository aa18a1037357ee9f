// Package topic is the Gravity Task topic as GP systems subscribe to it
// under the R5 Subscriptions Backport IG on R4: reading a Subscription
// (ReadSubscription), what its filters match (Matches), and the statuses and
// payload kinds it may have. intake checks Subscriptions with it, the
// subscriptions use case and the worker act on them.
package topic
