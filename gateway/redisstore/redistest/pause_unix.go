//go:build unix

package redistest

import "syscall"

// Pause stops the server's process (SIGSTOP) without killing it: it holds
// what it has and answers nothing, as a machine that hangs, until Resume.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pause %s: %v", s, err)
	}
}

// Resume lets a paused server run on.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("resume %s: %v", s, err)
	}
}
