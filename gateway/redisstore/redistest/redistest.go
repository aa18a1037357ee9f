// Package redistest starts real redis-server processes for tests: each on a
// free loopback port, in its own temporary directory, with the append-only
// file on and fsynced before every reply (appendfsync always, as
// deploy/redis.conf ships), so a test can kill Redis and restart it over the
// same data and find everything it was told was stored. The machine's own
// Redis is never touched.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server a test owns.
type Server struct {
	t    testing.TB
	Addr string
	dir  string
	cmd  *exec.Cmd
	exit chan struct{}
	// extra are more redis-server arguments (a replica's --replicaof, a
	// cluster node's --cluster-enabled).
	extra []string
	// password, when set, is asked of every client (requirepass) and given
	// to a primary by its replica (masterauth).
	password string
	// ca, when set, makes the server speak TLS only, with a certificate
	// ca signed.
	ca *testCA
	// env is added to the environment redis-server inherits (a locale:
	// StartCollating).
	env []string
}

// needRedisServer skips the test with a clear message when redis-server
// is not installed and CI is not set; under CI it fails, since CI must
// install it.
func needRedisServer(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed: %v", err)
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
}

// Start runs a redis-server for the test and stops it at cleanup. The test
// is skipped with a clear message when redis-server is not installed and
// CI is not set; under CI it fails, since CI must install it.
func Start(t testing.TB) *Server {
	t.Helper()
	needRedisServer(t)
	s := &Server{t: t, dir: t.TempDir()}
	s.startOnFreePorts(func() { s.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t)) })
	t.Cleanup(func() { s.Kill() })
	return s
}

// StartTLS is Start with the server speaking TLS only, with a certificate
// for 127.0.0.1 signed by a certificate authority made for the test (its
// PEM file is CAFile). URL is then a rediss:// URL.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	needRedisServer(t)
	s := &Server{t: t, dir: t.TempDir(), ca: newTestCA(t)}
	s.startOnFreePorts(func() { s.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t)) })
	t.Cleanup(func() { s.Kill() })
	return s
}

// CAFile is the PEM file of the certificate authority that signed the
// server's certificate ("" when it speaks plain TCP).
func (s *Server) CAFile() string {
	if s.ca == nil {
		return ""
	}
	return s.ca.CAFile
}

// StartReplica runs a redis-server replicating primary, and waits until
// its link to the primary is up.
func StartReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(primary.Addr)
	// The primary sends its first full copy at once, not after the 5 s it
	// waits by default for more replicas to join.
	if err := primary.Client().ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatalf("configure the primary for a replica: %v", err)
	}
	s := &Server{t: t, dir: t.TempDir(), extra: []string{"--replicaof", host, port}}
	s.startOnFreePorts(func() { s.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t)) })
	t.Cleanup(func() { s.Kill() })
	// Up on both sides: the replica's link, and the primary counting it
	// online (WAIT counts only online replicas; one still loading the
	// first copy is not).
	c, pc := s.Client(), primary.Client()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "replication").Result()
		pinfo, _ := pc.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") && strings.Contains(pinfo, "state=online") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica of %s did not connect within 10s:\n%s", primary.Addr, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the redis:// URL of the server (rediss:// for StartTLS).
func (s *Server) URL() string {
	if s.ca != nil {
		return "rediss://" + s.Addr + "/0"
	}
	return "redis://" + s.Addr + "/0"
}

// Client returns a client for the server, closed at cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(s.options())
	s.t.Cleanup(func() { c.Close() })
	return c
}

// options are a client's options for the server, with its password and
// TLS when it has them.
func (s *Server) options() *redis.Options {
	o := &redis.Options{Addr: s.Addr, Password: s.password}
	if s.ca != nil {
		o.TLSConfig = s.ca.clientTLS()
	}
	return o
}

func (s *Server) start() {
	s.t.Helper()
	if log, err := s.launch(); err != nil {
		s.t.Fatalf("%v: %s", err, log)
	}
}

// startOnFreePorts starts a new server on ports ports chooses, choosing
// again when one was taken meanwhile: a free port is found by listening on
// it and letting go, and with many tests at once another process (a
// client's outgoing connection, another test's server) may take it before
// redis-server binds it.
func (s *Server) startOnFreePorts(ports func()) {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		ports()
		log, err := s.launch()
		if err == nil {
			return
		}
		if !strings.Contains(log, "Address already in use") || attempt == 5 {
			s.t.Fatalf("%v: %s", err, log)
		}
	}
}

// launch starts redis-server and waits until it answers; when it does not,
// it returns why with the server's log.
func (s *Server) launch() (log string, err error) {
	_, port, _ := net.SplitHostPort(s.Addr)
	listen := []string{"--port", port}
	if s.ca != nil {
		listen = s.ca.serverArgs(port)
	}
	if s.password != "" {
		listen = append(listen, "--requirepass", s.password, "--masterauth", s.password)
	}
	args := append(append([]string{"--bind", "127.0.0.1"}, listen...),
		"--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--maxmemory-policy", "noeviction", "--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"))
	args = append(args, s.extra...)
	s.cmd = exec.Command("redis-server", args...)
	if s.env != nil {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	if err := s.cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	s.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) { _ = cmd.Wait(); close(exit) }(s.cmd, s.exit)
	o := s.options()
	o.MaxRetries = -1
	c := redis.NewClient(o)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		var pid int
		if err == nil {
			pid, err = processID(ctx, c)
		}
		cancel()
		if err == nil && pid == s.cmd.Process.Pid {
			return "", nil
		}
		if err == nil {
			// Another test's server took the port first and answered: this
			// one cannot bind it and is exiting (its log says the address
			// is in use, which startOnFreePorts retries on).
			select {
			case <-s.exit:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exit
			}
		}
		select {
		case <-s.exit:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.cmd = nil
			return string(log), errors.New("redis-server exited at start")
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server did not answer within 10s: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processID is the process id of the server c reaches (INFO server).
func processID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
}

// Restart starts the server again on the same port and data directory; the
// append-only file brings back what it had.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String is for failure messages.
func (s *Server) String() string { return fmt.Sprintf("redis-server at %s", s.Addr) }
