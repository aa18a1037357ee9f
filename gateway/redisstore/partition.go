package redisstore

import (
	"strconv"
	"strings"
)

// partitions is how many partitions the partitioned key layout will spread
// referrals over (deploy/README.md, "Partitioned keys: the design"). It is
// a constant of the layout, not of a deployment: a cluster grows by moving
// slots, each holding whole partitions. 16, not more, because a search
// visits every partition.
const partitions = 16

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// partitionWindow is how many slots at the start of its share of the slot
// space a partition's slot is chosen among. Near the start, so that when
// primaries hold equal contiguous ranges of slots (what redis-cli --cluster
// create and rebalance give), no partition falls on the far side of a range
// boundary: N primaries then hold ⌊16/N⌋ or ⌈16/N⌉ partitions each.
const partitionWindow = 16

// partitionTags returns the hash tags of a namespace's partitions: tag n
// is "namespace:n." and a short suffix, found by trying suffixes in order,
// whose slot is among the first partitionWindow slots of the nth of
// partitions equal shares of the slot space. Tags hashed as they come
// would spread unevenly (16 of them over 3 primaries fall within ±20 % of
// a third each about one time in seven). The search is deterministic, so
// every process finds the same tags, and short: about a thousand hashes a
// partition.
func partitionTags(namespace string) []string {
	tags := make([]string, partitions)
	share := clusterSlots / partitions
	for n := range partitions {
		base := namespace + ":" + strconv.Itoa(n) + "."
		for i := 0; ; i++ {
			tag := base + strconv.FormatInt(int64(i), 36)
			if s := keySlot(tag); s >= n*share && s < n*share+partitionWindow {
				tags[n] = tag
				break
			}
		}
	}
	return tags
}

// keySlot is the Redis Cluster slot of a hash tag's content: CRC16
// (XMODEM: polynomial 0x1021, initial 0) modulo 16384.
func keySlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// sameSlot reports whether two keys hash to one Redis Cluster slot, so one
// script may touch both: by their hash tags (the first "{...}" that is not
// empty, as Redis Cluster reads them), or the whole key where there is none.
func sameSlot(a, b string) bool { return keySlot(clusterHashed(a)) == keySlot(clusterHashed(b)) }

// clusterHashed is the part of a key Redis Cluster hashes to its slot.
func clusterHashed(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key[open+1 : open+1+end]
		}
	}
	return key
}
