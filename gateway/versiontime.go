package gateway

import "time"

// NextVersionTime is the time a new version of an existing resource is
// stamped with (meta.lastUpdated, and the score it is stored and indexed
// under): now, or the time of the version it replaces when that is later.
// A request stamps its change when it starts and reads afterwards, so the
// version it replaces may have been written after now (by a request
// committed meanwhile); a version time that went backwards would hide the
// current version from keyset paging (the export finds it by binary search
// over version times) and misorder _lastUpdated. Millisecond precision, as
// stored: an equal time is allowed.
func NextVersionTime(now, previous time.Time) time.Time {
	now, previous = now.Truncate(time.Millisecond), previous.Truncate(time.Millisecond)
	if previous.After(now) {
		return previous
	}
	return now
}
