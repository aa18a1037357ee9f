// Package queue is the work a change leaves for later, queued in the same
// atomic step as the change: the jobs each queue carries (deliveries to
// providers, Task changes for GP systems, subscription handshakes and
// sends, dead letters), each written and read by one codec, and TaskChange,
// the atomic change of a Task by Signpost itself with the GP side told.
package queue
