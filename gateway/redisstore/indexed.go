package redisstore

import "sync"

// indexedMemory remembers the index entries (the hash's "x") of resource
// versions this process read as current one at a time, so that the commit
// replacing such a version need not read them again. A delivery reads its
// Task, sends it, then records the delivery as the Task's next version: at
// intake's rate that read was one round trip per referral. commit.lua
// checks the entries it is given against the stored ones whatever their
// source, so a remembered entry that is out of date costs a re-read
// (errChanged), never a wrong index.
//
// An entry is used once (the commit takes it out) and the memory is
// bounded: when full, an arbitrary entry makes room (reads never followed
// by a change, such as a GET, are the ones that stay, and go first on
// average).
type indexedMemory struct {
	mu sync.Mutex
	m  map[string]indexedAt
}

// indexedAt is the index entries of one version of a resource.
type indexedAt struct {
	version int
	entries string // as stored: keys separated by newlines
}

// indexedMemoryCap bounds the entries kept: a Task's are about half a
// kilobyte, so about half a megabyte in all.
const indexedMemoryCap = 1024

func (im *indexedMemory) remember(key string, version int, entries string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.m == nil {
		im.m = make(map[string]indexedAt)
	}
	if _, ok := im.m[key]; !ok && len(im.m) >= indexedMemoryCap {
		for k := range im.m {
			delete(im.m, k)
			break
		}
	}
	im.m[key] = indexedAt{version: version, entries: entries}
}

// take returns and forgets the entries remembered for a resource's
// version, if they are those of that version.
func (im *indexedMemory) take(key string, version int) (string, bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	e, ok := im.m[key]
	if !ok {
		return "", false
	}
	delete(im.m, key)
	return e.entries, e.version == version
}
