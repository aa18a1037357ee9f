package redistest

import "os"

// EnvSpread names the environment variable that runs the tests as a Redis
// Cluster deployment runs Signpost: every store a test harness makes
// spreads referrals over its partitions (redisstore.Store.SpreadReferrals)
// unless the test is about a store that does not.
//
//	SIGNPOST_TEST_SPREAD=1 go test ./gateway/httpapi/        spread, on the Redis each test chooses
//	SIGNPOST_TEST_SPREAD=cluster go test ./gateway/httpapi/  spread, and on a Redis Cluster even where the test chose one Redis
//
// Only tests read it: Signpost itself spreads by its configuration (a
// redis_cluster does). It exists so that the whole suite, written mostly
// against one unspread Redis, also checks the layout a cluster uses.
const EnvSpread = "SIGNPOST_TEST_SPREAD"

// SpreadForced reports whether EnvSpread asks for spreading stores.
func SpreadForced() bool {
	v := os.Getenv(EnvSpread)
	return v == "1" || v == "cluster"
}

// ClusterForced reports whether EnvSpread asks, beyond spreading, for every
// test to run on a Redis Cluster (SIGNPOST_TEST_SPREAD=cluster).
func ClusterForced() bool { return os.Getenv(EnvSpread) == "cluster" }
