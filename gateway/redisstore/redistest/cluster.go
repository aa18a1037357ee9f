package redistest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster a test owns: three primaries, each with one
// replica, every node a Server on a free loopback port in its own
// temporary directory (append-only, fsynced before every reply, like
// Start). It is the shape a production cluster has at its smallest, so
// tests see the same slot routing, redirections and failover.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
	// Password is what every node asks of its clients ("" when none:
	// ClusterPassword).
	Password string
	// CAFile is the PEM file of the certificate authority that signed the
	// nodes' certificates ("" when the nodes speak plain TCP: ClusterTLS).
	CAFile string
	ca     *testCA
}

// ClusterOption changes how StartCluster sets up the nodes.
type ClusterOption func(*Cluster)

// ClusterPassword makes every node ask for password (requirepass) and give
// it to its primary (masterauth), as a managed Redis Cluster does.
func ClusterPassword(password string) ClusterOption {
	return func(c *Cluster) { c.Password = password }
}

// ClusterTLS makes every node speak TLS only, to clients, to its replica
// and on the cluster bus, with a certificate for 127.0.0.1 signed by a
// certificate authority made for the test (its PEM in Cluster.CAFile).
func ClusterTLS() ClusterOption {
	return func(c *Cluster) {
		c.ca = newTestCA(c.t)
		c.CAFile = c.ca.CAFile
	}
}

// clusterNodeTimeout is how long a primary may be silent before the others
// count it as failed and its replica takes over: short, so a failover test
// waits a second or two, not the 15 s Redis waits by default.
const clusterNodeTimeout = 1000

// StartCluster runs a Redis Cluster for the test and stops it at cleanup.
// It returns once every node reports cluster_state:ok, agrees on who
// serves every slot, and every replica is in sync with its primary, so a
// test never meets a cluster still forming. Like Start, it skips (or,
// under CI, fails) when redis-server or redis-cli is not installed.
func StartCluster(t testing.TB, opts ...ClusterOption) *Cluster {
	t.Helper()
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed: %v", tool, err)
			}
			t.Skipf("%s is not installed (apt-get install redis-server)", tool)
		}
	}
	c := &Cluster{t: t}
	for _, o := range opts {
		o(c)
	}
	for range 6 {
		s := &Server{t: t, password: c.Password, ca: c.ca}
		s.startOnFreePorts(func() {
			s.dir = t.TempDir() // no nodes.conf of an attempt that failed
			s.extra = []string{
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
				// A replica takes over however long its link was down (a
				// loaded test machine may stall it), and a primary sends its
				// first copy at once, not after waiting for more replicas.
				"--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
				// The cluster bus on a free port of its own: by default it is
				// the client port + 10000, which may be taken, or above 65535.
				"--cluster-port", strconv.Itoa(freePort(t)),
			}
			s.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
		})
		t.Cleanup(func() { s.Kill() })
		c.Nodes = append(c.Nodes, s)
	}
	// redis-cli makes the first three primaries and gives each a replica.
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if c.Password != "" {
		args = append(args, "-a", c.Password, "--no-auth-warning")
	}
	if c.ca != nil {
		args = append(args, "--tls", "--cacert", c.ca.CAFile)
	}
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(20 * time.Second)
	return c
}

// Addrs are the nodes' addresses (what redis_cluster lists).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// Client returns a plain cluster client over every node, closed at
// cleanup. It rereads who serves which slot every half second (go-redis's
// default is a minute), so after a failover it finds the new primary soon;
// Signpost's own client (redisstore.NewClusterClient) also rereads on the
// first connection error.
func (c *Cluster) Client() *redis.ClusterClient {
	o := &redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: 500 * time.Millisecond, Password: c.Password}
	if c.ca != nil {
		o.TLSConfig = c.ca.clientTLS()
	}
	cc := redis.NewClusterClient(o)
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// Primaries are the nodes serving slots now, as the live nodes see them
// (after a failover, a former replica).
func (c *Cluster) Primaries() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		if role, _ := s.info("replication")["role"]; role == "master" {
			out = append(out, s)
		}
	}
	return out
}

// PrimaryFor is the live primary serving key's slot, as that primary
// itself sees it.
func (c *Cluster) PrimaryFor(key string) *Server {
	c.t.Helper()
	ctx := context.Background()
	for _, s := range c.Primaries() {
		cl := redis.NewClient(s.options())
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		slots, serr := cl.ClusterSlots(ctx).Result()
		cl.Close()
		if err != nil || serr != nil {
			continue
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 && r.Nodes[0].Addr == s.Addr {
				return s
			}
		}
	}
	c.t.Fatalf("no live primary serves the slot of %s", key)
	return nil
}

// ReplicaOf is the live replica of primary.
func (c *Cluster) ReplicaOf(primary *Server) *Server {
	c.t.Helper()
	for _, s := range c.Nodes {
		if s.cmd == nil || s == primary {
			continue
		}
		info := s.info("replication")
		if info["role"] == "slave" && info["master_host"]+":"+info["master_port"] == primary.Addr {
			return s
		}
	}
	c.t.Fatalf("%s has no live replica", primary)
	return nil
}

// WaitHealthy waits until every live node reports cluster_state:ok and
// sees every slot served by a node it counts as healthy, and every live
// primary's replicas are online and caught up with it: a cluster at rest.
func (c *Cluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	c.wait(within, true)
}

// WaitServing waits as WaitHealthy does, but for replicas only to be
// online, not caught up: under a load of writes a replica is always a
// little behind.
func (c *Cluster) WaitServing(within time.Duration) {
	c.t.Helper()
	c.wait(within, false)
}

// WaitPromoted waits until replica, whose primary was lost, serves as a
// primary in its place, and the cluster is serving (as WaitServing).
func (c *Cluster) WaitPromoted(replica *Server, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for replica.info("replication")["role"] != "master" {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s was not promoted within %s", replica, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.wait(time.Until(deadline), false)
}

func (c *Cluster) wait(within time.Duration, caughtUp bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := c.unhealthy(caughtUp)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the cluster is not serving within %s: %s", within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unhealthy says what is not yet right with the cluster ("" when nothing).
func (c *Cluster) unhealthy(caughtUp bool) string {
	live := 0
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		live++
		info := s.clusterInfo()
		if info["cluster_state"] != "ok" {
			return s.Addr + " reports cluster_state:" + info["cluster_state"]
		}
		if info["cluster_slots_ok"] != "16384" {
			return s.Addr + " sees " + info["cluster_slots_ok"] + " of 16384 slots served"
		}
		if n, _ := strconv.Atoi(info["cluster_known_nodes"]); n < live {
			return s.Addr + " knows " + info["cluster_known_nodes"] + " nodes"
		}
		repl := s.info("replication")
		switch repl["role"] {
		case "slave":
			if repl["master_link_status"] != "up" {
				return s.Addr + "'s link to its primary is " + repl["master_link_status"]
			}
		case "master":
			want, _ := strconv.Atoi(repl["connected_slaves"])
			offset := repl["master_repl_offset"]
			for i := range want {
				r := repl["slave"+strconv.Itoa(i)]
				if !strings.Contains(r, "state=online") || (caughtUp && !strings.Contains(r, "offset="+offset+",")) {
					return s.Addr + "'s replica is not caught up: " + r
				}
			}
		}
	}
	return ""
}

func (s *Server) info(section string) map[string]string {
	o := s.options()
	o.MaxRetries = -1
	cl := redis.NewClient(o)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	text, _ := cl.Info(ctx, section).Result()
	return fields(text)
}

func (s *Server) clusterInfo() map[string]string {
	o := s.options()
	o.MaxRetries = -1
	cl := redis.NewClient(o)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	text, _ := cl.ClusterInfo(ctx).Result()
	return fields(text)
}

// fields reads INFO-style "name:value" lines.
func fields(text string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			out[name] = value
		}
	}
	return out
}

// String is for failure messages.
func (c *Cluster) String() string {
	return fmt.Sprintf("Redis Cluster at %s", strings.Join(c.Addrs(), ","))
}
