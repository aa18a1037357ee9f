// Package gateway is the core of Signpost's domain: a social prescribing
// referral's resources, its referral Task and the Gravity status machine
// (TaskStatus), the errors callers see, the Store port, the queued jobs and
// their codec, the index terms searches and the tenancy boundary are built
// from, who may see what, and the routing of a referral to a voluntary and
// community sector provider. Core is the kernel the use cases share: read a
// referral's resources under the visibility rules, and read and change a
// Task atomically.
//
// The use cases are packages of their own under gateway/ (intake, search,
// delivery, subscriptions, writeback, insights, portal); each imports the
// core and the rule packages (conform, query, topic), never another use
// case. The core knows nothing of HTTP or Redis: the packages that talk to
// outside systems (httpapi for callers, redisstore for storage) depend on
// it, never the other way round.
package gateway
