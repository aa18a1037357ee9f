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
// An entry is used once (the commit takes it out), only Read remembers
// (not ReadMany or ReadVersion), and the memory is bounded in bytes as well
// as in entries: a resource's entries grow with what a client put in it
// (long identifiers), so entries over indexedEntryMax are not remembered
// at all, and when the memory is full an arbitrary entry makes room.
type indexedMemory struct {
	mu    sync.Mutex
	m     map[string]indexedAt
	bytes int // the entries' lengths, summed
}

// indexedAt is the index entries of one version of a resource.
type indexedAt struct {
	version int
	entries string // as stored: keys separated by newlines
}

// The bounds: a referral Task's entries are about half a kilobyte.
const (
	indexedMemoryCap = 1024      // entries
	indexedBytesCap  = 512 << 10 // bytes of entries in all
	indexedEntryMax  = 4 << 10   // bytes of one resource's entries
)

func (im *indexedMemory) remember(key string, version int, entries string) {
	if len(entries) > indexedEntryMax {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.m == nil {
		im.m = make(map[string]indexedAt)
	}
	if old, ok := im.m[key]; ok {
		im.bytes -= len(old.entries)
		delete(im.m, key)
	}
	for k, e := range im.m {
		if len(im.m) < indexedMemoryCap && im.bytes+len(entries) <= indexedBytesCap {
			break
		}
		im.bytes -= len(e.entries)
		delete(im.m, k)
	}
	im.m[key] = indexedAt{version: version, entries: entries}
	im.bytes += len(entries)
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
	im.bytes -= len(e.entries)
	return e.entries, e.version == version
}

// holds reports whether the memory has entries of a resource's key: a
// version of it was read there (and not yet replaced by this process).
func (im *indexedMemory) holds(key string) bool {
	im.mu.Lock()
	defer im.mu.Unlock()
	_, ok := im.m[key]
	return ok
}
