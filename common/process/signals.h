// Termination signals for server processes: block SIGINT/SIGTERM in every thread at start, then
// wait for one synchronously in main (no async-signal handlers, no flags polled in loops).
#ifndef RLHF_COMMON_PROCESS_SIGNALS_H_
#define RLHF_COMMON_PROCESS_SIGNALS_H_

namespace rlhf::process {

// Blocks SIGINT and SIGTERM for this thread and the threads it creates later.
// Call first thing in main, before any thread starts.
void BlockTerminationSignals();

// Waits until SIGINT or SIGTERM arrives; returns the signal number.
// REQUIRES: BlockTerminationSignals() was called.
int WaitForTerminationSignal();

// Sends SIGTERM to this process, so that a WaitForTerminationSignal() in main returns: how a
// worker thread ends a server process that has finished its work.
void RequestTermination();

}  // namespace rlhf::process

#endif  // RLHF_COMMON_PROCESS_SIGNALS_H_
