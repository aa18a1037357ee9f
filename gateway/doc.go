// Package gateway is the domain of Signpost: a social prescribing referral,
// its referral Task and the Gravity status machine, the rules a referral must
// pass before it is accepted, the routing of a referral to a voluntary and
// community sector provider, and the errors callers see.
//
// It knows nothing of HTTP or Redis. The packages that talk to outside
// systems sit below it (httpapi for callers, redisstore for storage) and
// depend on it, never the other way round; gateway declares the small
// interfaces it needs from them (Store).
package gateway
