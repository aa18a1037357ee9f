package gateway

import "testing"

// The Gravity status machine, as a table of every pair: a rule spelled once
// in TaskStatus is checked once here.
func TestTaskStatusMachine(t *testing.T) {
	t.Parallel()
	all := []TaskStatus{TaskDraft, TaskRequested, TaskReceived, TaskAccepted, TaskRejected, TaskReady, TaskCancelled,
		TaskInProgress, TaskOnHold, TaskFailed, TaskCompleted, TaskEnteredInError}
	allowed := map[[2]TaskStatus]bool{
		{TaskDraft, TaskRequested}:    true,
		{TaskRequested, TaskAccepted}: true, {TaskRequested, TaskRejected}: true, {TaskRequested, TaskCancelled}: true,
		{TaskAccepted, TaskInProgress}: true, {TaskAccepted, TaskOnHold}: true, {TaskAccepted, TaskCompleted}: true,
		{TaskAccepted, TaskFailed}: true, {TaskAccepted, TaskCancelled}: true,
		{TaskInProgress, TaskOnHold}: true, {TaskInProgress, TaskCompleted}: true, {TaskInProgress, TaskFailed}: true,
		{TaskInProgress, TaskCancelled}: true,
		{TaskOnHold, TaskInProgress}:    true, {TaskOnHold, TaskCompleted}: true, {TaskOnHold, TaskFailed}: true,
		{TaskOnHold, TaskCancelled}: true,
	}
	for _, from := range all {
		for _, to := range all {
			want := from == to || allowed[[2]TaskStatus{from, to}] || (to == TaskEnteredInError && from != TaskEnteredInError)
			if got := from.CanMoveTo(to); got != want {
				t.Errorf("%s → %s: %v, want %v", from, to, got, want)
			}
		}
		if from.Terminal() {
			for _, to := range all {
				if to != from && to != TaskEnteredInError && from.CanMoveTo(to) {
					t.Errorf("terminal %s may move to %s", from, to)
				}
			}
		}
		if !from.SetByRequester() && !from.SetByPerformer() && from != TaskReceived && from != TaskReady {
			t.Errorf("%s is nobody's to set", from)
		}
	}
}

// A referral's status: a terminal one (revoked, completed,
// entered-in-error) is kept or corrected to entered-in-error, never left
// for another; the others move freely.
func TestRequestStatusMachine(t *testing.T) {
	t.Parallel()
	all := []RequestStatus{RequestDraft, RequestActive, RequestOnHold, RequestRevoked, RequestCompleted, RequestEnteredInError, RequestUnknown}
	if len(all) != len(RequestStatuses.Has) {
		t.Fatalf("%d statuses here, %d in RequestStatuses", len(all), len(RequestStatuses.Has))
	}
	terminal := map[RequestStatus]bool{RequestRevoked: true, RequestCompleted: true, RequestEnteredInError: true}
	for _, from := range all {
		if from.Terminal() != terminal[from] {
			t.Errorf("%s: Terminal %v", from, from.Terminal())
		}
		for _, to := range all {
			want := to == from || to == RequestEnteredInError || (!terminal[from] && to != RequestDraft)
			if got := from.CanMoveTo(to); got != want {
				t.Errorf("%s → %s: %v, want %v", from, to, got, want)
			}
		}
		if from.Withdraws() != (from == RequestRevoked || from == RequestEnteredInError) {
			t.Errorf("%s: Withdraws %v", from, from.Withdraws())
		}
	}
}
