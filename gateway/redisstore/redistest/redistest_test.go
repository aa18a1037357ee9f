package redistest

import (
	"context"
	"strconv"
	"testing"
)

// A port another server took meanwhile is not mistaken for this one's:
// the server answering there is another process, so this one (which could
// not bind the port) is started again on a new one. Before, the answer of
// the other server passed for this one's, and a cluster was then made of a
// node that was not one.
func TestStartAgainWhenAnotherServerHoldsThePort(t *testing.T) {
	t.Parallel()
	other := Start(t)
	s := &Server{t: t, dir: t.TempDir()}
	var tried []string
	s.startOnFreePorts(func() {
		s.Addr = other.Addr
		if len(tried) > 0 {
			s.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
		}
		tried = append(tried, s.Addr)
	})
	t.Cleanup(s.Kill)
	if len(tried) != 2 || s.Addr == other.Addr {
		t.Fatalf("ports tried %v, want the other server's and then a new one", tried)
	}
	c := s.Client()
	pid, err := processID(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if pid != s.cmd.Process.Pid {
		t.Fatalf("the server at %s is process %d, not the one started (%d)", s.Addr, pid, s.cmd.Process.Pid)
	}
}
