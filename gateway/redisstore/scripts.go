package redisstore

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// Every Lua script is a file in scripts/, loaded here, and documented in
// its header like an API: its KEYS, its ARGV, its replies. They all take
// their arguments one way.
//
// Keys. Every key a script touches arrives in KEYS (Redis Cluster routes a
// script by its declared keys, and all of ours share one hash tag, so one
// slot). A key known only from stored data (which account a session
// names, which sessions an account has) is read by the caller first and
// passed in KEYS with what it was read from; the script checks, in the same
// step, that this still holds, and answers 'changed' if not, writing
// nothing. The caller then reads again, at most maxRereads times, and
// fails with ErrKeptChanging after that. Where a structure of the
// arguments names a key, it names it by its 1-based position in KEYS.
//
// commit.lua takes a resource's previous index entries this way: an update
// (never a create, so a new referral's commit stays one round trip) reads
// them first, and the script checks they are still the ones the resource
// lists ('x'). search.lua's keyset paging needs the hashes of the matches
// changed since the snapshot, which only the script finds once it has
// combined the index sets: it names the ones it was not given ('need'),
// and is run again with them, so a page with no such match is one run.
//
// Arguments. ARGV is fixed positional scalars first, in the order the
// header lists them; then counted groups, each count immediately before
// its group: n, item*n, where an item is a fixed run of scalars and, where
// it needs them, counted groups of its own (commit.lua's criteria and
// jobs). Nothing is "the rest of ARGV" without a count. A scalar is a
// number in decimal, a flag "1" or "0", or a string (empty for none); an
// argument is never JSON for the script to decode. A value the script
// stores or compares without looking inside (a resource's body, a
// write-back state, a delayed job's fields) is one opaque scalar.
//
// Times are Unix milliseconds, and durations milliseconds, everywhere.
//
// Work. A script's loops run over its arguments, whose size Signpost
// bounds, or over a count it was given (promote.lua's batch); never over
// however much a client has made Redis hold, so no client can make one
// script hold Redis's one thread for longer than our limits allow.
var (
	//go:embed scripts/lib.lua
	libLua string // read_groups, resolve, bytes_before, cleanup and register, prepended to the scripts that search or register

	//go:embed scripts/commit.lua
	commitLua    string
	commitScript = redis.NewScript(libLua + commitLua) // a change set, whole or not at all
	//go:embed scripts/register.lua
	registerLua    string
	registerScript = redis.NewScript(libLua + registerLua) // token systems in the registry all partitions share
	//go:embed scripts/search.lua
	searchLua    string
	searchScript = redis.NewScript(libLua + searchLua) // one page of a search
	//go:embed scripts/count.lua
	countLua    string
	countScript = redis.NewScript(libLua + countLua) // the matches of several criteria (a spreading store's caps)
	//go:embed scripts/read.lua
	readLua    string
	readScript = redis.NewScript(readLua) // resource versions, each read consistently
	//go:embed scripts/window.lua
	windowLua string // newest, prepended to the scripts that read a window of versions
	//go:embed scripts/latest.lua
	latestLua    string
	latestScript = redis.NewScript(windowLua + latestLua) // a resource's newest versions, within a window
	//go:embed scripts/journey.lua
	journeyLua    string
	journeyScript = redis.NewScript(windowLua + journeyLua) // what a referral Task's journey is read from
	//go:embed scripts/scopepatient.lua
	scopePatientLua    string
	scopePatientScript = redis.NewScript(scopePatientLua) // one legacy Patient to its owner's key
	//go:embed scripts/remove.lua
	removeLua    string
	removeScript = redis.NewScript(removeLua) // one closed referral, whole (retention)

	// The job queues (queue.go).
	//go:embed scripts/later.lua
	laterLua    string
	laterScript = redis.NewScript(laterLua) // put a job off and finish its entry
	//go:embed scripts/promote.lua
	promoteLua    string
	promoteScript = redis.NewScript(promoteLua) // jobs that are due back onto the stream
	//go:embed scripts/take.lua
	takeLua    string
	takeScript = redis.NewScript(takeLua) // claim a job still this consumer's
	//go:embed scripts/finish.lua
	finishLua    string
	finishScript = redis.NewScript(finishLua) // finish a job still this consumer's
	//go:embed scripts/forget.lua
	forgetLua    string
	forgetScript = redis.NewScript(forgetLua) // remove consumers that have gone

	// Web accounts and sessions (users.go, sessions.go).
	//go:embed scripts/user_add.lua
	addUserLua string
	addUser    = redis.NewScript(addUserLua) // an account only where none exists
	//go:embed scripts/user_change.lua
	changeUserLua    string
	changeUserScript = redis.NewScript(changeUserLua) // change an account, signing it out if told to
	//go:embed scripts/session_start.lua
	startSessionLua string
	startSession    = redis.NewScript(startSessionLua) // a session, only for an enabled account
	//go:embed scripts/session_touch.lua
	touchSessionLua string
	touchSession    = redis.NewScript(touchSessionLua) // read a session and keep it alive

	// Subscriptions (subscriptions.go).
	//go:embed scripts/fanout.lua
	fanoutLua    string
	fanoutScript = redis.NewScript(fanoutLua) // number a Task change for its subscriptions
	//go:embed scripts/event_sent.lua
	sentLua    string
	sentScript = redis.NewScript(sentLua) // pop a sent event only if still the oldest

	// Write-backs and leases (writeback.go, subscriptions.go). The lease
	// scripts act only while the caller still holds the lease: the
	// write-back lease and the subscription sender's lease alike.
	//go:embed scripts/writeback.lua
	writeBackLua    string
	writeBackScript = redis.NewScript(writeBackLua) // record a write-back and finish its job
	//go:embed scripts/lease_renew.lua
	renewLua    string
	renewScript = redis.NewScript(renewLua)
	//go:embed scripts/lease_release.lua
	unlockLua    string
	unlockScript = redis.NewScript(unlockLua)
)
