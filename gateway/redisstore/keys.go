package redisstore

import "strings"

// Every key Signpost writes is built here. The keys of one partition
// (partition.go) share one hash tag, so that each Lua script's keys sit in
// one slot and the scripts run unchanged on Redis Cluster: the plain
// namespace in braces ("{signpost}") for the legacy partition and for
// everything no commit touches (tokens, rate limits, accounts, export
// jobs, subscriptions' own counters), and a partition's tag
// ("{signpost:7.x}") for each numbered partition. A keys value is one
// partition's (or the unpartitioned keys'): the same methods build either.
type keys struct {
	ns string // "{signpost}", or a partition's tag in braces
}

func newKeys(namespace string) keys { return keys{ns: "{" + namespace + "}"} }

// partitionKeys are the keys of each numbered partition of a namespace,
// in partition order.
func partitionKeys(namespace string) [partitions]keys {
	var out [partitions]keys
	for n, tag := range partitionTags(namespace) {
		out[n] = keys{ns: "{" + tag + "}"}
	}
	return out
}

// resource is a hash: "v" current version, "c" the token of the commit that
// wrote it (to recognise a re-sent commit), "o" the client that owns it,
// "x" the index keys of the current version (newline separated), and per
// version n: "n" the body, "tn" its lastUpdated in Unix milliseconds. A
// referral Task's also holds what its versions recorded of its journey
// ("j" and the milestones' fields, journey.go).
func (k keys) resource(typ, id string) string { return k.ns + ":r:" + typ + ":" + id }

// term is a sorted set of the ids of a type's current versions that carry
// an index term, scored by lastUpdated in Unix milliseconds.
//
// A resource's hash lists its index keys separated by newlines ("x"), so a
// newline in a term (an identifier's value may hold one) is written as the
// six characters \u000a: unescaped, the key would be read back as two, the
// real one never removed, and on a cluster the second half (no hash tag)
// would make every change of the resource fail as cross-slot.
func (k keys) term(typ, term string) string {
	if strings.IndexByte(term, '\n') >= 0 {
		term = strings.ReplaceAll(term, "\n", `\u000a`)
	}
	return k.termPrefix() + typ + ":" + term
}

// termPrefix starts every term key (commit.lua builds the bare term of a
// token system over the registry's cap from it).
func (k keys) termPrefix() string { return k.ns + ":i:" }

// all is the sorted set of every id of a type, scored like term.
func (k keys) all(typ string) string { return k.ns + ":a:" + typ }

// unique is a string claimed once and for ever by its first holder.
func (k keys) unique(key string) string { return k.ns + ":u:" + key }

// jti remembers an accepted client assertion until it expires.
func (k keys) jti(clientID, jti string) string { return k.ns + ":jti:" + clientID + ":" + jti }

// token holds the grant of an access token, under the token's digest.
func (k keys) token(digest string) string { return k.ns + ":tok:" + digest }

// rate is a client's rate-limit state, as redis_rate names it: the
// library puts its own "rate:" before the name, so the key reads
// "rate:{signpost}:rl:<key>". It keeps the hash tag (Cluster hashes the
// first braces in a key, wherever they are) but is the one key that does
// not begin with the namespace.
func (k keys) rate(key string) string { return k.ns + ":rl:" + key }

// ready is the probe /readyz writes, to learn whether Redis takes writes.
func (k keys) ready() string { return k.ns + ":ready" }

// audit is the append-only stream of AuditEvents.
func (k keys) audit() string { return k.ns + ":audit" }

// systems is the hash of registered token systems (field "Type index
// system", value "1"), with its generation in the field "#" and the number
// of systems of each parameter in "#Type index".
func (k keys) systems() string { return k.ns + ":sys" }

// delayed is the sorted set of a queue's jobs put off until later (score:
// due time in Unix milliseconds; member: the job's fields as JSON).
func (k keys) delayed(queue string) string { return k.ns + ":d:" + queue }

// disabled holds the providers whose endpoints answered 410 Gone.
func (k keys) disabled() string { return k.ns + ":disabled" }

// writeBack is a hash of what Signpost last wrote to one GP system, by Task.
func (k keys) writeBack(client string) string { return k.ns + ":wb:" + client }

// writeBackLock is the lease of one Task's write-back to one client.
func (k keys) writeBackLock(client, taskID string) string {
	return k.ns + ":wbl:" + client + ":" + taskID
}

// subCounter counts a subscription's events since it started (its event numbers).
func (k keys) subCounter(id string) string { return k.ns + ":sn:" + id }

// subEvents is the list of a subscription's events still to send, oldest first.
func (k keys) subEvents(id string) string { return k.ns + ":se:" + id }

// subLastSent is when Signpost last sent to a subscription (Unix ms), for heartbeats.
func (k keys) subLastSent(id string) string { return k.ns + ":sl:" + id }

// subHeartbeat is held for a heartbeat period by the process that sends a
// subscription's heartbeat, so one is sent (or tried) per period, whatever
// the number of processes.
func (k keys) subHeartbeat(id string) string { return k.ns + ":sh:" + id }

// subFailedBeats counts a subscription's heartbeats failed in a row since
// it was last sent anything; it expires on its own (HeartbeatFailed).
func (k keys) subFailedBeats(id string) string { return k.ns + ":sf:" + id }

// subSender is the lease of sending a subscription's events, held by the
// one sender that drains its list (so its subscriber gets them in order).
func (k keys) subSender(id string) string { return k.ns + ":ss:" + id }

// subNumbered is the hash of the last Task version numbered for subscribers.
func (k keys) subNumbered() string { return k.ns + ":sv" }

// exportJob is an export job's state (JSON, the export package's codec).
func (k keys) exportJob(id string) string { return k.ns + ":x:" + id }

// exportExpiry is the sorted set of export job ids, scored by when they may
// be swept (Unix milliseconds).
func (k keys) exportExpiry() string { return k.ns + ":xe" }

// keptJourneys is the hash of the journey summaries retention kept of
// the referrals sent in one UTC month ("2006-01"), by Task id.
func (k keys) keptJourneys(month string) string { return k.ns + ":jr:" + month }

// leftovers is the hash, by Task id, of what the removals of referrals in
// this partition left to remove elsewhere or after looking at every
// partition (a removal's leftover, as JSON): written in the step that
// removes the referral, deleted once what it names is gone (retention.go).
func (k keys) leftovers() string { return k.ns + ":left" }

// leftoversAside is the hash, by Task id, of the leftovers FinishRemovals
// could not finish and will not try again (one it cannot decode, or one
// whose step Redis refuses whatever the state): moved here as recorded,
// so the others and the retention run go on, for an operator to look at
// (HGETALL) and, once mended, move back to leftovers.
func (k keys) leftoversAside() string { return k.ns + ":left:aside" }

// claimedFor is the sorted set (scores 0) of the unique keys, as Redis
// keys, that a commit filed under a resource ("Type/id") because their
// names cannot be built from it (gateway.UniqueKey.Of): they go when it goes.
func (k keys) claimedFor(ref string) string { return k.ns + ":uk:" + ref }

// migration marks a one-off change of the stored data as done.
func (k keys) migration(name string) string { return k.ns + ":m:" + name }

// queue is a stream of jobs.
func (k keys) queue(name string) string { return k.ns + ":q:" + name }

// temp is a scratch sorted set a search script builds and deletes.
func (k keys) temp(token string, n int) string {
	return k.ns + ":t:" + token + ":" + itoa(n)
}

// user is a hash of one provider staff member's web sign-in: "provider",
// "hash" (bcrypt), "disabled" ("1" once disabled), "created" (Unix ms).
// The key holds the address in lower case: one account per address.
func (k keys) user(email string) string { return k.ns + ":user:" + email }

// session is a hash of one signed-in browser, under the digest of its
// cookie's token: "email", "csrf", "created" (Unix ms). It expires when idle.
func (k keys) session(digest string) string { return k.ns + ":sess:" + digest }

// device names the account a browser signed in to, under the digest of
// its device token; it expires.
func (k keys) device(digest string) string { return k.ns + ":dev:" + digest }

// userDevices is the set of an account's device digests, so a new password
// or a disabled account forgets them all.
func (k keys) userDevices(email string) string { return k.ns + ":udev:" + email }

// userSessions is the set of an account's session digests, so disabling
// the account ends every one of them at once.
func (k keys) userSessions(email string) string { return k.ns + ":usess:" + email }
